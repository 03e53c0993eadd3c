/**
 * The foundation run's results: the rows, notes and raw figures its phases
 * collect, the number formats of its table, and the markdown it writes
 * (with the heap and CPU breakdowns of --profile). Kept apart from the
 * suites' Report (report.ts) because the foundation table has no ratio
 * column and its own header; its text must stay as it is for comparisons
 * with earlier runs.
 */
import type { CpuSummary } from './cpuprof.js';
import type { FoundationOptions } from './foundation-options.js';
import type { HeapGrowth } from './heap.js';
import type { Stats } from './lib.js';

/** One row of the table. */
export interface Row {
  metric: string;
  goal: string;
  measured: string;
  result: 'PASS' | 'FAIL' | 'info';
  value?: number;
  unit?: string;
}

/** The table's rows, its notes and the JSON's raw figures, filled in by the phases as they go. */
export const rows: Row[] = [];
export const notes: string[] = [];
export const raw: Record<string, unknown> = {};

/** An info row, unless `extra` says otherwise. */
export function row(metric: string, measured: string, extra: Partial<Row> = {}): void {
  rows.push({ metric, goal: '—', result: 'info', measured, ...extra });
}

export const ms = (x: number) => (Number.isFinite(x) ? (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x)} ms`) : 'n/a');
export const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
export const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
export const pct = (s: Stats) => `p50 ${ms(s.p50)} · p99 ${ms(s.p99)} · max ${ms(s.max)}`;

/** The markdown of the whole run: header, table, breakdowns, notes. */
export function markdown(o: FoundationOptions, meta: Record<string, unknown>, profile?: { growth: HeapGrowth[]; n: number }, cpu?: CpuSummary & { enrollments: number }): string {
  const { agents: N, procs: PROCS, rounds: ROUNDS } = o;
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const lines = [
    `# Ferry foundation benchmark — ${N} agents`,
    '',
    `Source: ${meta['source']}`,
    '',
    `${meta['date']} · node ${meta['node']} · ${meta['cpus']} CPU(s) (${meta['cpuModel']}) · ${meta['memGiB']} GiB RAM · ` +
      `load average before/after ${meta['loadBefore']} / ${meta['loadAfter']} · open-files limit ${meta['fdLimit']} · ` +
      `${PROCS} agent process(es) · ${ROUNDS} fan-out round(s)`,
    '',
    '| Metric | Goal | Measured | Result |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${esc(r.metric)} | ${esc(r.goal)} | ${esc(r.measured)} | ${r.result} |`),
    '',
  ];
  if (profile) {
    lines.push(`## Where the controller's heap goes per session (V8 heap snapshots without and with ${profile.n} sessions; native objects count only the memory Node reports to V8)`, '',
      '| Object group (self size) | Count / session | Bytes / session |', '|---|---|---|',
      ...profile.growth.map((g) => `| ${esc(g.what)} | ${(g.countDelta / profile.n).toFixed(2)} | ${(g.bytesDelta / profile.n).toFixed(0)} |`), '');
  }
  if (cpu) {
    const per = (x: number) => (x / Math.max(1, cpu.enrollments)).toFixed(2);
    const share = (x: number) => `${((x / cpu.busyMs) * 100).toFixed(0)}%`;
    lines.push(`## Where the controller's CPU goes during enrollment (${cpu.windowed ? 'samples from the concurrent joins' : 'whole process life'}: ${(cpu.busyMs / 1000).toFixed(1)} s busy on the main thread for ${cpu.enrollments} enrollments)`, '',
      '| Area (self time) | ms / enrollment | Share |', '|---|---|---|',
      ...cpu.byArea.map((a) => `| ${esc(a.what)} | ${per(a.ms)} | ${share(a.ms)} |`), '',
      '| Function (self time) | ms / enrollment | Share |', '|---|---|---|',
      ...cpu.byFunction.map((f) => `| ${esc(f.what)} | ${per(f.ms)} | ${share(f.ms)} |`), '');
  }
  if (notes.length) lines.push('## Notes', '', ...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}
