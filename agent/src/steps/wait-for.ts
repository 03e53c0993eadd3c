/**
 * `wait.for` on the host: probes a condition every interval until it holds
 * or the timeout passes. `unchanged` when it already held at the first probe,
 * `changed` when the step had to wait (so a rollout can see who waited).
 * HTTP probes refuse names that resolve to public addresses: plans run
 * offline, and a probe must never reach for the internet.
 */
import { existsSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode } from '../../../common/src/errors.js';
import { formatDuration } from '../../../common/src/duration.js';
import { isInternalAddress, type WaitCondition, type WaitForArgs } from '../../../common/src/plan/steps/wait-for.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { StepContext, StepExecutor } from './step.js';
import { hostPath } from './util/host-path.js';
import { commandText, runPlanCommand } from './sys/run.js';
import { guarded, StepError } from './step-error.js';

/** One probe's verdict; `detail` says why not, for the timeout message. */
interface Probe { ok: boolean; detail: string }

/** No single probe may take longer than this, so the overall timeout stays honest. */
const PROBE_MAX_MS = 10_000;
/** Every probe gets at least this long, so the last one before the deadline is not starved into a meaningless failure. */
const PROBE_MIN_MS = 500;

function describe(c: WaitCondition): string {
  switch (c.kind) {
    case 'tcp': return `tcp ${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.port}`;
    case 'http': return `http ${c.url}`;
    case 'command': return `command ${commandText(c.command)}`;
    case 'file': return `file ${c.path}`;
  }
}

function probeTcp(host: string, port: number, ms: number): Promise<Probe> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (p: Probe) => { s.destroy(); clearTimeout(t); resolve(p); };
    const t = setTimeout(() => done({ ok: false, detail: `no answer within ${formatDuration(ms)}` }), ms);
    s.once('connect', () => done({ ok: true, detail: 'connected' }));
    s.once('error', (e) => done({ ok: false, detail: e.message }));
  });
}

async function probeHttp(c: Extract<WaitCondition, { kind: 'http' }>, ms: number): Promise<Probe> {
  const u = new URL(c.url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!isIP(host)) {
    const addrs = await lookup(host, { all: true }).catch(() => []);
    if (addrs.length === 0) return { ok: false, detail: `${host} does not resolve` };
    const outside = addrs.find((a) => !isInternalAddress(a.address));
    if (outside) {
      throw new StepError(ErrorCode.InvalidArgument, `refusing to probe ${c.url}: ${host} resolves to ${outside.address}, a public address`,
        'wait.for http only probes loopback, private or link-local addresses; use the service\'s internal address');
    }
  }
  return new Promise((resolve) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, { method: 'GET', timeout: ms, rejectUnauthorized: !c.insecure }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      const ok = c.status ? c.status.includes(code) : code >= 200 && code < 300;
      resolve({ ok, detail: `status ${code}${ok ? '' : ` (want ${c.status?.join(' or ') ?? '2xx'})`}` });
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${formatDuration(ms)}`)));
    req.once('error', (e) => resolve({ ok: false, detail: e.message }));
    req.end();
  });
}

async function probe(c: WaitCondition, ctx: StepContext, ms: number): Promise<Probe> {
  switch (c.kind) {
    case 'tcp': return probeTcp(c.host, c.port, ms);
    case 'http': return probeHttp(c, ms);
    case 'file': return existsSync(hostPath(ctx, c.path)) ? { ok: true, detail: 'exists' } : { ok: false, detail: 'does not exist' };
    case 'command': {
      const r = await runPlanCommand(ctx, c.command, { timeoutMs: ms, quiet: true });
      if (r.startError) throw new StepError(ErrorCode.NotFound, `${r.startError} (wait.for ${commandText(c.command)})`, 'install it or give its absolute path');
      const out = `${r.stdout}${r.stderr}`.trim().split('\n').pop();
      return { ok: r.exitCode === 0, detail: r.timedOut ? `probe timed out after ${formatDuration(ms)}` : `exit ${r.exitCode ?? r.signal}${out ? `: ${out}` : ''}` };
    }
  }
}

async function waitFor(args: WaitForArgs, ctx: StepContext): Promise<StepOutcome> {
  const what = describe(args.condition);
  const start = Date.now();
  const cancelled = () => new StepError(ErrorCode.Cancelled, `cancelled while waiting for ${what}`);
  for (let n = 1; ; n++) {
    if (ctx.signal.aborted) throw cancelled();
    const left = args.timeoutMs - (Date.now() - start);
    const p = await probe(args.condition, ctx, Math.max(PROBE_MIN_MS, Math.min(PROBE_MAX_MS, left)));
    if (ctx.signal.aborted) throw cancelled();
    if (p.ok) {
      return n === 1
        ? { status: 'unchanged', message: `${what} already ready (${p.detail})` }
        : { status: 'changed', message: `${what} ready after ${formatDuration(Date.now() - start)} (${n} probes)` };
    }
    if (ctx.check) return { status: 'changed', diff: `would wait up to ${formatDuration(args.timeoutMs)} for ${what}\n`, message: `check mode: ${what} not ready yet (${p.detail}); would wait up to ${formatDuration(args.timeoutMs)}` };
    if (n === 1) ctx.output(`waiting up to ${formatDuration(args.timeoutMs)} for ${what}: ${p.detail}`);
    const elapsed = Date.now() - start;
    if (elapsed >= args.timeoutMs) {
      throw new StepError(ErrorCode.DeadlineExceeded, `timed out after ${formatDuration(elapsed)} waiting for ${what} (${n} probes; last: ${p.detail})`,
        'check that the service started (systemctl status, journalctl -u) or raise "timeout"');
    }
    try {
      await sleep(Math.min(args.intervalMs, args.timeoutMs - elapsed), undefined, { signal: ctx.signal });
    } catch {
      throw cancelled();
    }
  }
}

/** The `wait.for` executor. */
export const waitForExecutor: StepExecutor<WaitForArgs> = {
  type: 'wait.for',
  run: (args, ctx) => guarded(ctx.signal, () => waitFor(args, ctx)),
};
