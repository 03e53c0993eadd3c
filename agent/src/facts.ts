import si from 'systeminformation';
import { runProcess } from '../../common/src/proc/run-process.js';
import { platformArch } from '../../common/src/arch.js';
import type { HostFacts, Tool } from '../../common/src/gen/ferry/v1/common.js';

/** Programs Ferry's steps drive, and how to ask each for its version. */
const TOOLS: Array<{ name: string; argv: string[] }> = [
  { name: 'systemd', argv: ['systemctl', '--version'] },
  { name: 'containerd', argv: ['containerd', '--version'] },
  { name: 'ctr', argv: ['ctr', '--version'] },
  { name: 'k3s', argv: ['k3s', '--version'] },
  { name: 'iptables', argv: ['iptables', '--version'] },
  { name: 'kubectl', argv: ['kubectl', 'version', '--client'] },
];

async function probeTool(name: string, argv: string[]): Promise<Tool> {
  const r = await runProcess({ argv, timeoutMs: 5000, plainLocale: true });
  if (r.exitCode === undefined) return { name, present: false, version: '' };
  const first = `${r.stdout}\n${r.stderr}`.split('\n').find((l) => l.trim()) ?? '';
  const version = /v?(\d+\.\d+(?:\.\d+)?[^\s,)]*)/.exec(first)?.[1] ?? first.trim().slice(0, 80);
  return { name, present: r.exitCode === 0, version };
}

let cached: Promise<HostFacts> | undefined;

/**
 * Collects host facts once per process (they change rarely; a restart
 * refreshes them). Every probe is bounded, so a hung program cannot block
 * enrollment.
 */
export function collectFacts(): Promise<HostFacts> {
  cached ??= collect();
  return cached;
}

async function collect(): Promise<HostFacts> {
  const [os, cpu, mem, disks, ifaces, time, tools] = await Promise.all([
    si.osInfo(), si.cpu(), si.mem(), si.fsSize().catch(() => []), si.networkInterfaces().catch(() => []),
    Promise.resolve(si.time()), Promise.all(TOOLS.map((t) => probeTool(t.name, t.argv))),
  ]);
  const ifaceList = Array.isArray(ifaces) ? ifaces : [ifaces];
  return {
    hostname: os.hostname,
    os: os.distro,
    osRelease: os.release,
    kernel: os.kernel,
    // Image-platform names (amd64, not Node's x64), as bundles name them.
    arch: platformArch(process.arch),
    cpus: cpu.cores,
    memoryBytes: mem.total,
    disks: disks
      .filter((d) => d.mount.startsWith('/') && !d.mount.startsWith('/proc') && !d.mount.startsWith('/sys'))
      .slice(0, 32)
      .map((d) => ({ mount: d.mount, fsType: d.type, sizeBytes: d.size, availableBytes: d.available })),
    interfaces: ifaceList.slice(0, 32).map((i) => ({
      name: i.iface, mac: i.mac, addresses: [i.ip4, i.ip6].filter((a): a is string => Boolean(a)),
    })),
    tools,
    bootTimeMs: Math.round(Date.now() - Number(time.uptime) * 1000),
  };
}
