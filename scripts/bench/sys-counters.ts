/**
 * Machine-wide counters for the benchmark suites: CPU use of all cores and
 * disk traffic from /proc, between two snapshots. Apart from the kit
 * (kit.ts), whose readings are per process; these see everything on the
 * machine, the peers and other work included.
 */
import { readFileSync } from 'node:fs';

export interface SysSnap { t: number; cpu: number[]; readBytes: number; writtenBytes: number }

/** /proc/stat's cpu line and the whole disks' byte counters from /proc/diskstats. */
export function sysSnap(): SysSnap {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  let readBytes = 0;
  let writtenBytes = 0;
  for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^((vd|sd|xvd|hd)[a-z]+|nvme\d+n\d+)$/.test(f[2]!)) continue;
    readBytes += Number(f[5]) * 512;
    writtenBytes += Number(f[9]) * 512;
  }
  return { t: performance.now(), cpu, readBytes, writtenBytes };
}

export interface SysDelta {
  wallMs: number;
  busyPct: number;
  iowaitPct: number;
  /** CPU ms used on all cores by everything (USER_HZ = 100). */
  busyCpuMs: number;
  diskReadBytes: number;
  diskWrittenBytes: number;
}

/** Machine CPU use (all cores = 100%) and disk traffic between two snapshots. */
export function sysDelta(a: SysSnap, b: SysSnap): SysDelta {
  const d = b.cpu.map((x, i) => x - (a.cpu[i] ?? 0));
  const total = d.slice(0, 8).reduce((s, x) => s + x, 0) || 1;
  const idle = (d[3] ?? 0) + (d[4] ?? 0);
  return {
    wallMs: b.t - a.t, busyPct: ((total - idle) / total) * 100, iowaitPct: ((d[4] ?? 0) / total) * 100, busyCpuMs: (total - idle) * 10,
    diskReadBytes: b.readBytes - a.readBytes, diskWrittenBytes: b.writtenBytes - a.writtenBytes,
  };
}
