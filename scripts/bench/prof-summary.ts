/**
 * Sums a V8 CPU profile (from `node --cpu-prof` or the inspector) by self
 * time, grouped into the buckets that matter on a data path: hashing, TLS
 * and other native work, gRPC / HTTP/2 framing, protobuf, file system, GC,
 * Ferry's own code. Samples outside an optional monotonic-clock window (µs,
 * what process.hrtime and V8's profile timestamps both read on Linux) are
 * left out.
 */
import { readFileSync } from 'node:fs';

export interface CpuProfile {
  startTime: number;
  endTime: number;
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Sampled non-idle time on the main thread, ms. */
  busyMs: number;
  /** Sampled wall time in the window, ms. */
  spanMs: number;
  windowed: boolean;
  windowAsked: boolean;
  byBucket: Array<{ what: string; ms: number }>;
  byFunction: Array<{ what: string; ms: number }>;
}

function bucket(fn: string, url: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'native, outside JS (OpenSSL TLS, libuv, V8)';
  if (url.includes('node:internal/crypto/hash') || (!url && /^(update|digest)$/.test(fn))) return 'sha256 (crypto Hash)';
  // Native bindings show without a url in inspector profiles.
  if (!url && /^(read|readFileHandle|writeBuffer|writeBuffers|writeString|open|openFileHandle|close|fstat|stat|lstat|fsync|fdatasync|mkdir|rename|unlink|readdir|chmod|fchmod)$/.test(fn)) return 'fs calls (main-thread part)';
  if (/@grpc\/grpc-js/.test(url)) return 'grpc-js (framing, calls, streams)';
  if (/@bufbuild\/protobuf|gen\/ferry/.test(url)) return 'protobuf encode/decode';
  if (/node:internal\/http2|node:http2/.test(url)) return 'node http2';
  if (/node:internal\/(tls|stream_base_commons)|node:_tls|node:tls/.test(url)) return 'node tls / socket writes';
  if (/node:internal\/fs|node:fs/.test(url)) return 'node fs (main-thread part)';
  if (/node:internal\/streams|node:stream/.test(url)) return 'node streams';
  if (/node:internal\/buffer|node:buffer/.test(url)) return 'Buffer copies/allocs';
  if (/\/build\/(common|agent|controller)\//.test(url)) return `ferry ${/\/build\/([^/]+\/src\/[^/]+)/.exec(url)?.[1] ?? 'code'}`;
  if (url.startsWith('node:')) return `node:${url.replace(/^node:(internal\/)?/, '').split('/')[0]}`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  return fn || '(native)';
}

function shortUrl(url: string): string {
  const nm = /node_modules\/(.*)$/.exec(url);
  if (nm) return nm[1]!;
  const b = /\/build\/(.*)$/.exec(url);
  if (b) return b[1]!;
  return url.replace(/^file:\/\//, '');
}

/**
 * Self time per group (`group(functionName, url)`) and per function, idle
 * left out; with `window` (µs, monotonic) only the samples inside it.
 */
export function sumSelfTime(prof: CpuProfile, group: (fn: string, url: string) => string, top: number, window?: { fromUs: number; toUs: number }):
  { busyMs: number; spanMs: number; byGroup: Array<{ what: string; ms: number }>; byFunction: Array<{ what: string; ms: number }> } {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let t = prof.startTime;
  let spanUs = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const d = prof.timeDeltas[i] ?? 0;
    t += d;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    spanUs += d;
    self.set(prof.samples[i]!, (self.get(prof.samples[i]!) ?? 0) + d / 1000);
  }
  const groups = new Map<string, number>();
  const fns = new Map<string, number>();
  let busyMs = 0;
  for (const [id, ms] of self) {
    const cf = byId.get(id)?.callFrame;
    if (!cf || cf.functionName === '(idle)') continue;
    busyMs += ms;
    const g = group(cf.functionName, cf.url);
    groups.set(g, (groups.get(g) ?? 0) + ms);
    const f = cf.url ? `${cf.functionName || '(anonymous)'} (${shortUrl(cf.url)}:${cf.lineNumber + 1})` : cf.functionName;
    fns.set(f, (fns.get(f) ?? 0) + ms);
  }
  const sorted = (m: Map<string, number>) => [...m].map(([what, ms]) => ({ what, ms })).sort((a, b) => b.ms - a.ms).slice(0, top);
  return { busyMs, spanMs: spanUs / 1000, byGroup: sorted(groups), byFunction: sorted(fns) };
}

/** Summary by data-path bucket; a window that overlaps the profile at all is applied. */
export function summarizeProfile(p: CpuProfile | string, top = 12, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const prof: CpuProfile = typeof p === 'string' ? JSON.parse(readFileSync(p, 'utf8')) as CpuProfile : p;
  const windowed = window !== undefined && window.fromUs < prof.endTime && window.toUs > prof.startTime;
  const r = sumSelfTime(prof, bucket, top, windowed ? window : undefined);
  return { busyMs: r.busyMs, spanMs: r.spanMs, windowed, windowAsked: window !== undefined, byBucket: r.byGroup, byFunction: r.byFunction };
}

/** Markdown tables for a summary; shares are of the window's wall time (one core = 100%). */
export function profileMarkdown(title: string, s: ProfileSummary): string[] {
  const esc = (x: string) => x.replace(/\|/g, '\\|');
  const share = (ms: number) => `${((ms / Math.max(1, s.spanMs)) * 100).toFixed(1)}%`;
  return [
    `### ${title}`, '',
    `Main thread busy ${(s.busyMs / 1000).toFixed(2)} s of ${(s.spanMs / 1000).toFixed(2)} s sampled (${share(s.busyMs)})${s.windowed || !s.windowAsked ? '' : ' — whole profile, the window did not fit'}. ` +
      'Work on libuv\'s thread pool (file writes, fsync) is not on the main thread and does not show here.', '',
    '| Bucket (self time) | ms | Share of wall |', '|---|---|---|',
    ...s.byBucket.map((b) => `| ${esc(b.what)} | ${b.ms.toFixed(0)} | ${share(b.ms)} |`), '',
    '| Function (self time) | ms | Share of wall |', '|---|---|---|',
    ...s.byFunction.map((f) => `| ${esc(f.what)} | ${f.ms.toFixed(0)} | ${share(f.ms)} |`), '',
  ];
}
