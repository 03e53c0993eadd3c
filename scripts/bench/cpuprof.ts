/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and sums self time by function
 * and by area (package, node core module, Ferry source tree), so a slow
 * phase says where its CPU went.
 */
import { readFileSync } from 'node:fs';

interface CpuProfile {
  startTime: number;
  endTime: number;
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

export interface CpuSummary {
  /** Sampled time that was not idle, ms. */
  busyMs: number;
  /** False when the window given was not inside the profile, so the whole profile was summed. */
  windowed: boolean;
  byArea: Array<{ what: string; ms: number }>;
  byFunction: Array<{ what: string; ms: number }>;
}

function area(functionName: string, url: string): string {
  if (!url) {
    if (functionName === '(garbage collector)') return 'V8 garbage collector';
    if (functionName === '(program)') return 'native (V8/Node/OpenSSL outside JS)';
    return functionName || '(native)';
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return `node:${url.replace(/^node:(internal\/)?/, '').split('/')[0]}`;
  const ferry = /\/build\/([^/]+\/[^/]+)/.exec(url);
  if (ferry) return `ferry ${ferry[1]}`;
  return url.split('/').slice(-2).join('/');
}

function shortUrl(url: string): string {
  const nm = /node_modules\/(.*)$/.exec(url);
  if (nm) return nm[1]!;
  const b = /\/build\/(.*)$/.exec(url);
  if (b) return b[1]!;
  return url.replace(/^file:\/\//, '');
}

/**
 * `window` is in microseconds of the monotonic clock, which is what both V8's
 * profile timestamps and process.hrtime() read on Linux; samples outside it
 * are left out (start-up, idle phases).
 */
export function summarizeCpuProfile(path: string, top = 15, window?: { fromUs: number; toUs: number }): CpuSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const windowed = window !== undefined && window.fromUs >= p.startTime && window.toUs <= p.endTime;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const d = p.timeDeltas[i] ?? 0;
    t += d;
    if (windowed && (t < window.fromUs || t > window.toUs)) continue;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + d / 1000);
  }
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  let busyMs = 0;
  for (const [id, ms] of self) {
    const cf = byId.get(id)?.callFrame;
    if (!cf || cf.functionName === '(idle)') continue;
    busyMs += ms;
    const a = area(cf.functionName, cf.url);
    areas.set(a, (areas.get(a) ?? 0) + ms);
    const f = cf.url ? `${cf.functionName || '(anonymous)'} (${shortUrl(cf.url)}:${cf.lineNumber + 1})` : cf.functionName;
    fns.set(f, (fns.get(f) ?? 0) + ms);
  }
  const sorted = (m: Map<string, number>) => [...m].map(([what, ms]) => ({ what, ms })).sort((a, b) => b.ms - a.ms).slice(0, top);
  return { busyMs, windowed, byArea: sorted(areas), byFunction: sorted(fns) };
}
