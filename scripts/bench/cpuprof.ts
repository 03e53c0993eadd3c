/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and sums self time by function
 * and by area (package, node core module, Ferry source tree), so a slow
 * phase says where its CPU went.
 */
import { readFileSync } from 'node:fs';
import { sumSelfTime, type CpuProfile } from './prof-summary.js';

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

/**
 * `window` is in microseconds of the monotonic clock, which is what both V8's
 * profile timestamps and process.hrtime() read on Linux; samples outside it
 * are left out (start-up, idle phases).
 */
export function summarizeCpuProfile(path: string, top = 15, window?: { fromUs: number; toUs: number }): CpuSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const windowed = window !== undefined && window.fromUs >= p.startTime && window.toUs <= p.endTime;
  const r = sumSelfTime(p, area, top, windowed ? window : undefined);
  return { busyMs: r.busyMs, windowed, byArea: r.byGroup, byFunction: r.byFunction };
}
