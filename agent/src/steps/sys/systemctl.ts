/**
 * What the systemd.unit executor asks systemd: a unit's load/active/enablement state, waiting
 * until it is active and stays so, and the evidence for a failure (status + journal tail).
 */
import { ErrorCode } from '../../../../common/src/errors.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCommand, runOk, type RunContext } from './run.js';
import { section, StepError, throwIfAborted } from '../step-error.js';

/** The properties of `systemctl show` the executor decides on. */
export interface UnitProbe {
  /** loaded, not-found, masked, bad-setting, error. */
  loadState: string;
  /** active, inactive, failed, activating, deactivating, reloading. */
  activeState: string;
  subState: string;
  /** enabled, disabled, static, masked, indirect, generated, alias, "" (unknown unit). */
  unitFileState: string;
  /** How the last run ended: success, exit-code, signal, timeout, ... */
  result: string;
  /** Service type (simple, exec, forking, oneshot, notify, ...); "" for non-services. */
  type: string;
}

const HINT_NO_SYSTEMD = 'this step needs systemd as init; check `systemctl is-system-running` on the host';

/** `systemctl show` for the properties in {@link UnitProbe}. */
export async function probeUnit(ctx: RunContext, unit: string): Promise<UnitProbe> {
  const r = await runOk(ctx, ['systemctl', 'show', unit, '--property=LoadState,ActiveState,SubState,UnitFileState,Result,Type'],
    `cannot ask systemd about ${unit}`, HINT_NO_SYSTEMD, { stream: false, tool: 'systemctl' });
  const p: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) p[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return {
    loadState: p.LoadState ?? '', activeState: p.ActiveState ?? '', subState: p.SubState ?? '',
    unitFileState: p.UnitFileState ?? '', result: p.Result ?? '', type: p.Type ?? '',
  };
}

/** `systemctl ARGS...`, failing with systemctl's own words. */
export async function systemctl(ctx: RunContext, args: string[], what: string): Promise<void> {
  await runOk(ctx, ['systemctl', ...args], what, 'see the status and journal lines, fix the unit, and run the step again', { tool: 'systemctl' });
}

/**
 * Waits until the unit is active and has stayed active for `stableForMs` (a Type=simple
 * service is "active" the moment it forks, even if it dies a millisecond later). Throws
 * StepError(UnitFailed) when it fails, falls back to inactive, or the time runs out.
 */
export async function waitActive(ctx: RunContext, unit: string, timeoutMs: number, stableForMs: number): Promise<number> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let activeSince: number | undefined;
  let last: UnitProbe | undefined;
  for (;;) {
    throwIfAborted(ctx.signal);
    last = await probeUnit(ctx, unit);
    const now = Date.now();
    if (last.activeState === 'active') {
      activeSince ??= now;
      if (now - activeSince >= stableForMs) return now - started;
    } else if (last.type === 'oneshot' && last.activeState === 'inactive' && last.result === 'success') {
      return now - started; // a oneshot without RemainAfterExit is done, not dead: systemctl start waited for it
    } else {
      activeSince = undefined;
      // activating/reloading are on the way; failed or inactive after a start means it died.
      if (last.activeState === 'failed' || (last.activeState === 'inactive' && now - started > 200)) {
        throw new StepError(ErrorCode.StepUnitFailed, `${unit} did not stay active: ActiveState=${last.activeState} SubState=${last.subState} Result=${last.result}`,
          'read the status and journal lines below, fix the unit or the program it runs, and run the step again');
      }
    }
    if (now >= deadline) {
      throw new StepError(ErrorCode.StepUnitFailed, `${unit} was not active after ${timeoutMs} ms: ActiveState=${last.activeState} SubState=${last.subState}`,
        'raise waitActive if the service is just slow to start, or read the status and journal lines below');
    }
    await sleep(Math.min(200, Math.max(10, deadline - now)), undefined, { signal: ctx.signal }).catch(() => undefined);
  }
}

/**
 * Runs the health check until it exits 0 or `timeoutMs` passes. Each attempt is silent; the
 * last failing attempt's output is the error's evidence.
 */
export async function healthCheck(ctx: RunContext, argv: string[], timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const left = started + timeoutMs - Date.now();
    const r = await runCommand(ctx, argv, { stream: false, timeoutMs: Math.max(1000, Math.min(left, 10_000)) });
    if (r.exitCode === 0) return Date.now() - started;
    if (Date.now() - started >= timeoutMs) {
      const said = (r.stderr + r.stdout).trim();
      throw new StepError(ErrorCode.StepHealthCheckFailed, `health check \`${argv.join(' ')}\` still failing after ${timeoutMs} ms (last exit ${r.timedOut ? 'timeout' : r.exitCode})`,
        'read the check\'s output, status and journal below; raise healthTimeout if the service is just slow',
        section('health check output', said.split('\n').slice(-20).join('\n')));
    }
    await sleep(500, undefined, { signal: ctx.signal }).catch(() => undefined);
    throwIfAborted(ctx.signal);
  }
}

/**
 * `systemctl status` (without its own log lines) and `journalctl -u UNIT -n 30`, streamed to
 * the controller and returned for the outcome message. Never throws: evidence is best-effort.
 */
export async function failureEvidence(ctx: RunContext, unit: string): Promise<string> {
  const quiet: RunContext = { signal: new AbortController().signal, output: ctx.output };
  const parts: string[] = [];
  for (const argv of [
    ['systemctl', 'status', '--no-pager', '--full', '--lines=0', unit],
    ['journalctl', '-u', unit, '-n', '30', '--no-pager'],
  ]) {
    try {
      ctx.output(`[ferry] ${argv.join(' ')}`, 'stderr');
      const r = await runCommand(quiet, argv, { stream: true, timeoutMs: 10_000 });
      parts.push(section(argv.join(' '), `${r.stdout}${r.stderr}`));
    } catch (err) {
      parts.push(section(argv.join(' '), `(could not run: ${(err as Error).message})`));
    }
  }
  return parts.join('\n');
}
