import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { stringify } from 'yaml';
import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecord, writeRecords } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { RolloutInfo } from '../../../common/src/gen/ferry/v1/rollouts.js';
import { Admin, adminFlags } from './admin-client.js';
import { Rollouts } from './cmd-rollout-client.js';
import { countsText, listTable, nextCommand, showText, stateText } from './cmd-rollout-render.js';
import { watchRollout } from './cmd-rollout-watch.js';
import { rolloutDetailRecord, rolloutLogRecord, rolloutRecord } from './records-rollout.js';

const FLAGS = {
  ...adminFlags, json: { type: 'boolean' as const }, file: { type: 'string' as const, short: 'f' }, watch: { type: 'boolean' as const },
  name: { type: 'string' as const }, plan: { type: 'string' as const }, param: { type: 'string' as const, multiple: true },
  selector: { type: 'string' as const, short: 'l' }, host: { type: 'string' as const, multiple: true }, exclude: { type: 'string' as const, multiple: true },
  waves: { type: 'string' as const }, 'max-concurrency': { type: 'string' as const }, 'error-budget': { type: 'string' as const },
  'wave-error-budget': { type: 'string' as const }, 'on-failure': { type: 'string' as const }, wait: { type: 'string' as const },
  approval: { type: 'boolean' as const }, 'offline-timeout': { type: 'string' as const }, offline: { type: 'string' as const },
  prefetch: { type: 'boolean' as const }, reason: { type: 'string' as const }, attempt: { type: 'string' as const },
  'exit-on-pause': { type: 'boolean' as const }, force: { type: 'boolean' as const },
};

/** `ferry agents upgrade`: the rollout flags plus what to install (the spec's `upgrade:`). */
export const UPGRADE_FLAGS = {
  ...FLAGS, to: { type: 'string' as const }, all: { type: 'boolean' as const }, 'retry-failed': { type: 'boolean' as const }, window: { type: 'string' as const },
};

type Values = ReturnType<typeof parseFlags<typeof FLAGS>>['values'];

/** Amounts from flags: "5" stays a number, "10%" a string; the server validates both. */
const amount = (v: string): number | string => (/^\d+$/.test(v.trim()) ? Number(v) : v.trim());

/**
 * A spec document from flags (the server parses and validates it like a
 * file, so flags and files cannot drift apart).
 */
export function specFromFlags(v: Values, upgrade?: Record<string, unknown>): string {
  if (!v.plan && !upgrade) throw new FerryError(ErrorCode.InvalidArgument, 'rollout create needs -f rollout.yaml or --plan NAME', 'see `ferry --help` (Rollouts)');
  const params: Record<string, string> = {};
  for (const p of v.param ?? []) {
    const i = p.indexOf('=');
    if (i <= 0) throw new FerryError(ErrorCode.InvalidArgument, `--param "${p}" is not name=value`);
    params[p.slice(0, i)] = p.slice(i + 1);
  }
  const strategy: Record<string, unknown> = {};
  if (v.waves) strategy['waves'] = v.waves.split(',').map(amount);
  if (v['max-concurrency']) strategy['maxConcurrency'] = amount(v['max-concurrency']);
  if (v['error-budget'] || v['wave-error-budget']) {
    strategy['errorBudget'] = { ...(v['error-budget'] ? { total: amount(v['error-budget']) } : {}), ...(v['wave-error-budget'] ? { perWave: amount(v['wave-error-budget']) } : {}) };
  }
  if (v['on-failure']) strategy['onFailure'] = v['on-failure'];
  if (v.wait) strategy['wait'] = v.wait;
  if (v.approval) strategy['approval'] = true;
  if (v['offline-timeout']) strategy['offlineTimeout'] = v['offline-timeout'];
  if (v.offline) strategy['offline'] = v.offline;
  if (v.prefetch) strategy['prefetch'] = true;
  const targets: Record<string, unknown> = {};
  if (v.selector !== undefined) targets['selector'] = v.selector;
  if (v.host?.length) targets['hosts'] = v.host;
  if (v.exclude?.length) targets['exclude'] = v.exclude;
  if (upgrade) return stringify({ ...(v.name ? { name: v.name } : {}), upgrade, targets, strategy });
  return stringify({ ...(v.name ? { name: v.name } : {}), plan: v.plan, params, targets, strategy });
}

function infoLine(i: RolloutInfo): string {
  const next = nextCommand(i);
  return `rollout ${i.id} ${i.name}: ${stateText(i)} — ${countsText(i.counts)}\n${next ? `  next: ${next}\n` : ''}`;
}

/** `ferry rollout create | ls | show | pause | resume | abort | approve | retry | logs | watch`. */
export async function cmdRollout(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values: v, positionals } = parseFlags(rest, FLAGS);
  const id = positionals[0] ?? '';
  const needId = () => {
    if (!id) throw new FerryError(ErrorCode.InvalidArgument, `rollout ${sub} needs a rollout id`, 'list rollouts with `ferry rollout ls`');
  };
  const admin = Admin.connect(v);
  const ro = new Rollouts(admin);
  const print = (i: RolloutInfo) => (v.json ? writeRecord(rolloutRecord(i)) : process.stdout.write(infoLine(i)));
  try {
    switch (sub) {
      case 'create': {
        let spec: string;
        let file = '(flags)';
        if (v.file) {
          file = basename(v.file);
          try { spec = readFileSync(v.file, 'utf8'); } catch (err) { throw new FerryError(ErrorCode.InvalidArgument, `cannot read ${v.file}: ${(err as Error).message}`); }
        } else spec = specFromFlags(v);
        const i = await ro.call(ro.client.create, { spec, file });
        if (v.json && !v.watch) writeRecord(rolloutRecord(i));
        else if (!v.json) process.stdout.write(`created rollout ${i.id} (${i.name}, plan ${i.plan}): ${i.hosts} hosts in ${i.waveCount} waves\n  ${i.strategy}\n${v.watch ? '' : `  watch it: ferry rollout watch ${i.id}\n`}`);
        return v.watch ? await watchRollout(ro, i.id, { json: Boolean(v.json), exitOnPause: Boolean(v['exit-on-pause']) }) : Exit.Ok;
      }
      case 'ls': {
        const { rollouts } = await ro.call(ro.client.list, { limit: 50 });
        if (v.json) writeRecords(rollouts.map(rolloutRecord));
        else process.stdout.write(listTable(rollouts));
        return Exit.Ok;
      }
      case 'show': {
        needId();
        const s = await ro.call(ro.client.get, { id, afterSeq: 0 });
        if (v.json) writeRecord(rolloutDetailRecord(s));
        else process.stdout.write(showText(s));
        return Exit.Ok;
      }
      case 'pause': needId(); print(await ro.call(ro.client.pause, { id, reason: v.reason ?? '', hosts: [], force: false })); return Exit.Ok;
      case 'resume': needId(); print(await ro.call(ro.client.resume, { id, reason: '', hosts: [], force: false })); return Exit.Ok;
      case 'abort': needId(); print(await ro.call(ro.client.abort, { id, reason: v.reason ?? '', hosts: [], force: Boolean(v.force) })); return Exit.Ok;
      case 'approve': needId(); print(await ro.call(ro.client.approve, { id, reason: '', hosts: [], force: false })); return Exit.Ok;
      case 'retry': needId(); print(await ro.call(ro.client.retry, { id, reason: '', hosts: (v.host as string[] | undefined) ?? [], force: false })); return Exit.Ok;
      case 'logs': {
        needId();
        if (!v.host?.[0]) throw new FerryError(ErrorCode.InvalidArgument, 'rollout logs needs --host HOST', `e.g. ferry rollout logs ${id || 'ID'} --host edge-7`);
        const { lines } = await ro.call(ro.client.logs, { id, host: v.host[0], attempt: Number(v.attempt ?? 0) });
        if (v.json) {
          writeRecords(lines.map(rolloutLogRecord));
          return Exit.Ok;
        }
        for (const l of lines) {
          (l.stderr ? process.stderr : process.stdout).write(`${l.attempt > 1 ? `[try ${l.attempt}] ` : ''}${l.kind === 'output' ? '| ' : ''}${l.text}\n`);
        }
        return Exit.Ok;
      }
      case 'watch':
        needId();
        return await watchRollout(ro, id, { json: Boolean(v.json), exitOnPause: Boolean(v['exit-on-pause']) });
      default:
        throw new FerryError(ErrorCode.InvalidArgument, `unknown rollout command "${sub ?? ''}"`, 'use create, ls, show, pause, resume, abort, approve, retry, logs or watch');
    }
  } finally {
    admin.close();
  }
}

/**
 * `ferry agents upgrade --to VERSION (--selector S | --host H | --all) [rollout flags]`:
 * a rollout whose hosts install the agent release VERSION (docs/agent-upgrade.md).
 * The spec is built from flags and validated by the controller like any rollout's.
 */
export async function cmdAgentsUpgrade(args: string[]): Promise<number> {
  const { values: v } = parseFlags(args, UPGRADE_FLAGS);
  if (!v.to) throw new FerryError(ErrorCode.InvalidArgument, 'agents upgrade needs --to VERSION', 'e.g. ferry agents upgrade --to 0.2.0 --selector ring=canary (ferry agents release ls lists releases)');
  if (v.all && (v.selector !== undefined || v.host?.length)) throw new FerryError(ErrorCode.InvalidArgument, '--all cannot be combined with --selector or --host');
  if (!v.all && v.selector === undefined && !v.host?.length) {
    throw new FerryError(ErrorCode.InvalidArgument, 'agents upgrade needs --selector, --host or --all', `e.g. ferry agents upgrade --to ${v.to} --selector ring=canary --waves 1,10%,100%`);
  }
  const upgrade: Record<string, unknown> = { version: v.to };
  if (v['retry-failed']) upgrade['retryFailed'] = true;
  if (v.window) upgrade['connectWindow'] = v.window;
  const spec = specFromFlags({ ...v, ...(v.all ? { selector: '' } : {}) }, upgrade);
  const admin = Admin.connect(v);
  const ro = new Rollouts(admin);
  try {
    const i = await ro.call(ro.client.create, { spec, file: '(flags)' });
    if (v.json && !v.watch) writeRecord(rolloutRecord(i));
    else if (!v.json) process.stdout.write(`created rollout ${i.id} (${i.name}): ${i.hosts} hosts to ferry-agent ${i.agentVersion} in ${i.waveCount} waves\n  ${i.strategy}\n${v.watch ? '' : `  watch it: ferry rollout watch ${i.id}\n`}`);
    return v.watch ? await watchRollout(ro, i.id, { json: Boolean(v.json), exitOnPause: Boolean(v['exit-on-pause']) }) : Exit.Ok;
  } finally {
    admin.close();
  }
}