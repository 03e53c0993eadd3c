import { onInterrupt, parseFlags } from '../../../common/src/cli-support.js';
import { execRecord, writeRecord } from '../../../common/src/cli/json-records.js';
import { formatDuration, parseDuration } from '../../../common/src/duration.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { ExecEvent, ExecHostFinished, ExecSummary } from '../../../common/src/gen/ferry/v1/admin.js';
import { fromServiceError } from '../../../common/src/grpc-status.js';
import { table } from '../../../common/src/table.js';
import { Admin, adminFlags } from './admin-client.js';
import { listHosts, targetFlags, targetsFromFlags, wantsHostList } from './targets-cli.js';

function outcome(f: ExecHostFinished): string {
  if (f.offline) return 'offline';
  if (f.cancelled) return 'cancelled';
  if (f.timedOut) return 'timed out';
  if (f.error) return 'error';
  return f.exitCode === 0 ? 'ok' : 'failed';
}

/** What the operator is told when a host's session drops or comes back mid-job (exec and run). */
export function linkNotice(connected: boolean, what: 'command' | 'plan'): string {
  return connected
    ? `session back; its ${what}'s output follows`
    : `lost its session to the controller; the ${what} goes on there and its output arrives when the host reconnects`;
}

const EXAMPLE = 'ferry exec --selector role=edge -- uptime';

/**
 * `ferry exec (--selector S | --host H... | --all) [--timeout 30s] [--concurrency N] [--json] -- argv...`:
 * streams every host's output live, prefixed by host, then a summary. Exits 1
 * if any host failed, timed out or was offline; 2 without targets or when
 * they match no agent. `--list-hosts` (`--dry-run`) only lists the targets.
 */
export async function cmdExec(args: string[]): Promise<number> {
  const dash = args.indexOf('--');
  const { values } = parseFlags(dash < 0 ? args : args.slice(0, dash), {
    ...adminFlags, ...targetFlags, timeout: { type: 'string' }, concurrency: { type: 'string' }, json: { type: 'boolean' },
  }, false);
  const targets = targetsFromFlags(values, 'exec', EXAMPLE);
  const argv = dash < 0 ? [] : args.slice(dash + 1);
  const listOnly = wantsHostList(values);
  if (argv.length === 0 && !listOnly) {
    throw new FerryError(ErrorCode.InvalidArgument, 'no command given', `put the command after --, e.g. ${EXAMPLE}`);
  }
  const concurrency = Number(values.concurrency ?? '0');
  if (!Number.isInteger(concurrency) || concurrency < 0) throw new FerryError(ErrorCode.InvalidArgument, `--concurrency "${values.concurrency}" is not a whole number`);
  const admin = Admin.connect(values);
  if (listOnly) {
    try {
      return await listHosts(admin, targets, Boolean(values.json));
    } finally {
      admin.close();
    }
  }
  const finished: ExecHostFinished[] = [];
  // Hosts are named by hostname; where two share one, the agent id tells them apart.
  const idsByHost = new Map<string, Set<string>>();
  const name = (agentId: string, hostname: string) =>
    (idsByHost.get(hostname)?.size ?? 0) > 1 ? `${hostname}[${agentId}]` : hostname;
  let summary: ExecSummary | undefined;
  const stream = admin.exec({
    ...targets, argv, timeoutMs: values.timeout ? parseDuration(values.timeout, '--timeout') : 0,
    concurrency, env: {}, cwd: '',
  });
  // Ctrl-C cancels the command on every host (the controller sends the cancels).
  const offInterrupt = onInterrupt(() => stream.cancel(), 'cancelling the command on every host');
  try {
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (ev: ExecEvent) => {
        const record = values.json ? execRecord(ev) : undefined;
        if (record) writeRecord(record);
        switch (ev.event?.$case) {
          case 'started': {
            const { hostname, agentId } = ev.event.value;
            idsByHost.set(hostname, (idsByHost.get(hostname) ?? new Set()).add(agentId));
            break;
          }
          case 'line': {
            const l = ev.event.value;
            if (!values.json) (l.stderr ? process.stderr : process.stdout).write(`${name(l.agentId, l.hostname)} | ${l.line}\n`);
            break;
          }
          case 'finished':
            finished.push(ev.event.value);
            break;
          case 'summary':
            summary = ev.event.value;
            break;
          case 'link': {
            const l = ev.event.value;
            if (!values.json) process.stderr.write(`${name(l.agentId, l.hostname)}: ${linkNotice(l.connected, 'command')}\n`);
            break;
          }
          default:
            break;
        }
      });
      stream.on('error', (e) => reject(admin.explain(fromServiceError(e))));
      stream.on('end', () => resolve());
    });
  } finally {
    offInterrupt();
    admin.close();
  }
  if (!summary) throw new FerryError(ErrorCode.Unavailable, 'the controller ended the exec stream without a summary');
  // (Targets that match no agent never get here: the controller refuses them, exit 2.)
  if (!values.json) {
    process.stderr.write('\n' + table([
      ['HOST', 'RESULT', 'EXIT', 'TIME', 'DETAIL'],
      ...finished.sort((a, b) => a.hostname.localeCompare(b.hostname)).map((f) => [
        name(f.agentId, f.hostname), outcome(f), f.offline ? '-' : String(f.exitCode), f.offline ? '-' : formatDuration(f.durationMs), f.error || f.signal,
      ]),
    ]));
    process.stderr.write(`${summary.matched} host(s): ${summary.succeeded} ok, ${summary.failed} failed, ${summary.offline} offline\n`);
  }
  return summary.matched > 0 && summary.failed === 0 && summary.offline === 0 ? Exit.Ok : Exit.Failure;
}
