/**
 * Executor for `systemd.unit` (args: common/src/plan/steps/systemd-unit.ts). Drives the host's
 * real systemctl. Order: write changed files → daemon-reload (only then) → enable/disable →
 * start/restart/reload/stop → wait until active and stable → health check. When anything
 * after the first change fails, the status and journal tail are collected first, then the
 * host is put back: enablement undone, previous files restored, the previous version
 * restarted if it was running (or the unit stopped if it was not).
 */
import { ErrorCode } from '../../../common/src/errors.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDuration } from '../../../common/src/duration.js';
import type { SystemdUnitArgs } from '../../../common/src/plan/steps/systemd-unit.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { StepContext, StepExecutor } from './step.js';
import { writeFileAtomicAsync } from '../../../common/src/secure-fs.js';
import { readTextIfExists, restoreText, SYSTEM_DIR_MODE } from './util/file-ops.js';
import { fileDiff } from './util/text-diff.js';
import { resolveBundleFiles } from './sys/paths.js';
import { failureEvidence, healthCheck, probeUnit, systemctl, waitActive, type UnitProbe } from './sys/systemctl.js';
import { guarded, StepError } from './step-error.js';

interface FileChange { path: string; label: string; old?: string; next: string }
type StateAction = 'start' | 'restart' | 'reload' | 'stop' | undefined;

const RUNNING = new Set(['active', 'activating', 'reloading']);
/** UnitFileStates that need no `systemctl enable` (static units have no [Install] section). */
const ENABLED_LIKE = new Set(['enabled', 'enabled-runtime', 'static', 'indirect', 'generated', 'alias', 'linked', 'linked-runtime']);

/** The `systemd.unit` step executor. */
export const systemdUnitExecutor: StepExecutor<SystemdUnitArgs> = {
  type: 'systemd.unit',
  run: (args, ctx) => guarded(ctx.signal, () => runUnit(args, ctx)),
};

/** The unit file and drop-ins the plan wants, with what is on disk now. */
function desiredFiles(args: SystemdUnitArgs, ctx: StepContext): FileChange[] {
  const dir = join(ctx.root, args.unitDir);
  const out: FileChange[] = [];
  let text = args.content;
  if (args.bundle !== undefined && args.src !== undefined) {
    const [f] = resolveBundleFiles(ctx, args.bundle, [args.src], 'unit file');
    text = readFileSync(f!.path, 'utf8');
  }
  const add = (rel: string, next: string) => {
    const path = join(dir, rel);
    out.push({ path, label: join(args.unitDir, rel), old: readTextIfExists(path), next: next.endsWith('\n') ? next : `${next}\n` });
  };
  if (text !== undefined) add(args.name, text);
  for (const d of args.dropIns) add(join(`${args.name}.d`, d.name), d.content);
  return out;
}

function stateAction(args: SystemdUnitArgs, before: UnitProbe, filesChanged: boolean): StateAction {
  const running = RUNNING.has(before.activeState);
  switch (args.state) {
    case 'started': return running ? undefined : 'start';
    case 'restarted': return !running || filesChanged || args.always ? 'restart' : undefined;
    case 'reloaded': return !running ? 'start' : filesChanged || args.always ? 'reload' : undefined;
    case 'stopped': return running ? 'stop' : undefined;
    default: return undefined;
  }
}

function enableAction(args: SystemdUnitArgs, p: UnitProbe): 'enable' | 'disable' | undefined {
  if (args.enabled === true && !ENABLED_LIKE.has(p.unitFileState)) return 'enable';
  if (args.enabled === false && (p.unitFileState === 'enabled' || p.unitFileState === 'enabled-runtime')) return 'disable';
  return undefined;
}

async function runUnit(args: SystemdUnitArgs, ctx: StepContext): Promise<StepOutcome> {
  const unit = args.name;
  const files = desiredFiles(args, ctx);
  const changes = files.filter((f) => f.old !== f.next);
  const before = await probeUnit(ctx, unit);
  if (before.loadState === 'masked' || before.unitFileState === 'masked') {
    throw new StepError(ErrorCode.StepCommandFailed, `${unit} is masked on this host, so systemd will not start or enable it`,
      `unmask it (systemctl unmask ${unit}) if it should run here, or drop this step for this host`);
  }
  const installsFile = files.some((f) => f.path.endsWith(`/${unit}`));
  if (!installsFile && before.loadState === 'not-found') {
    throw new StepError(ErrorCode.StepInputMissing, `${unit} is not installed on this host and the step gives no unit file`,
      'add "content" or "bundle" + "src" to install it, or install the package that provides it first');
  }
  const action = stateAction(args, before, changes.length > 0);
  // A unit file systemd has not seen yet counts as disabled.
  const enable = enableAction(args, installsFile && before.loadState === 'not-found' ? { ...before, unitFileState: 'disabled' } : before);
  const steps = [
    ...(changes.length ? ['daemon-reload'] : []),
    ...(enable ? [`${enable} ${unit}`] : []),
    ...(action ? [`${action} ${unit}`] : []),
  ];
  const diff = changes.map((c) => fileDiff(c.label, c.old, c.next)).join('') + steps.map((s) => `# systemctl ${s}\n`).join('');
  const fileWords = changes.map((c) => `${c.old === undefined ? 'install' : 'update'} ${c.label}`);

  if (ctx.check) {
    if (!diff) return { status: 'unchanged', message: `${unit}: up to date (${before.activeState}, ${before.unitFileState || 'unknown'})` };
    return { status: 'changed', diff, message: `${unit}: would ${[...fileWords, ...steps.map((s) => `systemctl ${s}`)].join(', ')}` };
  }

  const done: string[] = [];
  let enabledDone: 'enable' | 'disable' | undefined;
  let actionDone: StateAction;
  try {
    for (const c of changes) {
      await writeFileAtomicAsync(c.path, c.next, { mode: 0o644, dirMode: SYSTEM_DIR_MODE });
      done.push(fileWords[changes.indexOf(c)]!);
    }
    if (changes.length) { await systemctl(ctx, ['daemon-reload'], 'systemd could not reload unit files'); done.push('daemon-reload'); }
    const now = changes.length ? await probeUnit(ctx, unit) : before;
    const en = enableAction(args, now);
    if (en) { await systemctl(ctx, [en, unit], `could not ${en} ${unit}`); enabledDone = en; done.push(`${en}d`); }
    if (action) { actionDone = action; await systemctl(ctx, [action, unit], `could not ${action} ${unit}`); done.push(action === 'stop' ? 'stopped' : `${action}ed`); }
    const runs = args.state !== undefined && args.state !== 'stopped';
    if (runs && action && args.waitActiveMs > 0) done.push(`active in ${formatDuration(await waitActive(ctx, unit, args.waitActiveMs, args.stableForMs))}`);
    if (runs && args.healthCheck) done.push(`health check passed in ${formatDuration(await healthCheck(ctx, args.healthCheck, args.healthTimeoutMs))}`);
  } catch (err) {
    if (!(err instanceof StepError) && !ctx.signal.aborted) throw err;
    const evidence = await failureEvidence(ctx, unit);
    const undo = await rollBack(ctx, unit, changes, before, enabledDone, actionDone);
    const base = err instanceof StepError ? err : new StepError(ErrorCode.Cancelled, `${unit}: cancelled`);
    const what = base.message.startsWith(unit) ? base.message : `${unit}: ${base.message}`;
    throw new StepError(base.code, `${what}; ${undo}`, base.hint, [base.details, evidence].filter(Boolean).join('\n'));
  }
  const changed = changes.length > 0 || enabledDone !== undefined || actionDone !== undefined;
  if (!changed) {
    const extra = done.length ? `; ${done.join(', ')}` : '';
    return { status: 'unchanged', message: `${unit}: up to date (${before.activeState}, ${before.unitFileState || 'unknown'})${extra}` };
  }
  return { status: 'changed', diff, message: `${unit}: ${done.join(', ')}` };
}

/**
 * Puts the host back as it was before this run; best-effort, each part reported. Runs with
 * its own signal: a step that timed out must still be undone.
 */
async function rollBack(ctx: StepContext, unit: string, changes: FileChange[], before: UnitProbe,
  enabled: 'enable' | 'disable' | undefined, action: StateAction): Promise<string> {
  const own = { signal: AbortSignal.timeout(60_000), output: ctx.output };
  const notes: string[] = [];
  const failures: string[] = [];
  const attempt = async (what: string, f: () => Promise<unknown> | unknown) => {
    try { await f(); notes.push(what); } catch (e) { failures.push(`${what}: ${(e as Error).message}`); }
  };
  const wasRunning = RUNNING.has(before.activeState);
  if (action && !wasRunning) {
    await attempt(`stopped ${unit}`, () => systemctl(own, ['stop', unit], `could not stop ${unit}`));
    await attempt('reset-failed', () => systemctl(own, ['reset-failed', unit], 'reset-failed'));
  }
  if (enabled) await attempt(`${enabled === 'enable' ? 'disabled' : 'enabled'} again`, () => systemctl(own, [enabled === 'enable' ? 'disable' : 'enable', unit], 'undo enablement'));
  if (changes.length) {
    await attempt(`restored ${changes.map((c) => c.label).join(', ')}`, async () => { for (const c of changes) await restoreText(c.path, c.old); });
    await attempt('daemon-reload', () => systemctl(own, ['daemon-reload'], 'daemon-reload'));
  }
  if (action && wasRunning && action !== 'stop') {
    await attempt(`restarted the previous ${unit}`, () => systemctl(own, ['restart', unit], `could not restart the previous ${unit}`));
  } else if (action === 'stop') {
    await attempt(`started ${unit} again`, () => systemctl(own, ['start', unit], `could not start ${unit} again`));
  }
  if (!notes.length && !failures.length) return 'nothing to roll back (no file, enablement or state was changed)';
  const ok = notes.length ? `rolled back: ${notes.join(', ')}` : '';
  return failures.length ? `${ok}${ok ? '; ' : ''}ROLLBACK INCOMPLETE: ${failures.join('; ')}` : ok;
}
