/**
 * The results of a benchmark suite: which code was measured, the table
 * (goal / measured / ratio / result) and notes as markdown + JSON, and the
 * number formats the tables use. Apart from the kit (kit.ts), which runs
 * processes; this only records and writes what they measured.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { GiB, MiB, REPO } from './kit.js';

/**
 * Which code was measured: HEAD and how many tracked files differ from it
 * (build/ is compiled from the work tree, which others may be editing).
 */
export function sourceVersion(): string {
  // A run from a copy of build/ (so the work tree can change meanwhile) names the commit it was built from.
  if (process.env['FERRY_BENCH_SOURCE']) return process.env['FERRY_BENCH_SOURCE'];
  return gitVersion();
}

/** The commit checked out at the repository and how many tracked files differ from it, without FERRY_BENCH_SOURCE. */
export function gitVersion(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', REPO, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const changed = git('status', '--porcelain', '--untracked-files=no').split('\n').filter(Boolean).length;
    return `commit ${git('rev-parse', '--short', 'HEAD')}${changed ? ` + ${changed} uncommitted file change(s)` : ''}`;
  } catch {
    return 'not a git checkout';
  }
}

export interface Row {
  metric: string;
  goal: string;
  measured: string;
  ratio: string;
  result: 'PASS' | 'FAIL' | 'info';
  value?: number;
  unit?: string;
}

export class Report {
  readonly rows: Row[] = [];
  readonly notes: string[] = [];
  readonly sections: string[] = [];
  readonly raw: Record<string, unknown> = {};
  readonly meta: Record<string, unknown>;

  constructor(readonly suite: string, readonly title: string, extra: Record<string, unknown>) {
    this.meta = {
      date: new Date().toISOString(), node: process.versions.node, cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? '?',
      memGiB: (totalmem() / GiB).toFixed(1), loadBefore: loadavg().map((l) => l.toFixed(2)).join(' '), source: sourceVersion(), ...extra,
    };
  }

  row(r: Omit<Row, 'goal' | 'ratio' | 'result'> & Partial<Pick<Row, 'goal' | 'ratio' | 'result'>>): void {
    this.rows.push({ goal: '—', ratio: '—', result: 'info', ...r });
  }

  markdown(): string {
    const esc = (s: string) => s.replace(/\|/g, '\\|');
    const m = this.meta;
    const src = m['source'] === m['sourceAfter'] ? `Source: ${m['source']}` : `Source: ${m['source']} at the start, ${m['sourceAfter']} at the end (the tree changed during the run)`;
    return [
      `# ${this.title}`, '', src, '',
      `${m['date']} · node ${m['node']} · ${m['cpus']} CPU(s) (${m['cpuModel']}) · ${m['memGiB']} GiB RAM · load average before/after ${m['loadBefore']} / ${m['loadAfter']}` +
        (m['mode'] ? ` · ${m['mode']}` : ''), '',
      '| Metric | Goal | Measured | Ratio | Result |', '|---|---|---|---|---|',
      ...this.rows.map((r) => `| ${esc(r.metric)} | ${esc(r.goal)} | ${esc(r.measured)} | ${esc(r.ratio)} | ${r.result} |`), '',
      ...this.sections,
      ...(this.notes.length ? ['## Notes', '', ...this.notes.map((n) => `- ${n}`), ''] : []),
    ].join('\n');
  }

  write(outDir: string): string {
    this.meta['loadAfter'] = loadavg().map((l) => l.toFixed(2)).join(' ');
    this.meta['sourceAfter'] = sourceVersion();
    mkdirSync(outDir, { recursive: true });
    const md = this.markdown();
    writeFileSync(join(outDir, `${this.suite}.md`), md);
    writeFileSync(join(outDir, `${this.suite}.json`), JSON.stringify({ meta: this.meta, rows: this.rows, notes: this.notes, raw: this.raw }, null, 2) + '\n');
    return md;
  }
}

export const fmtMiB = (bytes: number, digits = 1) => `${(bytes / MiB).toFixed(digits)} MiB`;
export const fmtRate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;
export const fmtMs = (x: number) => (Number.isFinite(x) ? (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : x >= 100 ? `${Math.round(x)} ms` : `${x.toFixed(2)} ms`) : 'n/a');
export const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
