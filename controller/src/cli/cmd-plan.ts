import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { onInterrupt, parseFlags } from '../../../common/src/cli-support.js';
import { runRecord, writeRecord, writeRecords } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { JobEvent, JobSummary } from '../../../common/src/gen/ferry/v1/admin.js';
import type { JobResult } from '../../../common/src/gen/ferry/v1/session.js';
import { fromServiceError } from '../../../common/src/grpc-status.js';
import { parsePlan } from '../../../common/src/plan/parse.js';
import { formatProblems } from '../../../common/src/plan/plan-problems.js';
import { signPlan } from '../../../common/src/plan/signed-plan.js';
import { readSigningKey } from '../../../common/src/bundle/manifest.js';
import { table } from '../../../common/src/table.js';
import { formatDuration, parseDuration } from '../../../common/src/duration.js';
import { Admin, adminFlags } from './admin-client.js';
import { linkNotice } from './cmd-exec.js';
import { planDetailRecord, planPushedRecord, planRecord } from './records-delivery.js';
import { listHosts, targetFlags, targetsFromFlags, wantsHostList } from './targets-cli.js';

function readPlanFile(file: string | undefined): string {
  if (!file) throw new FerryError(ErrorCode.InvalidArgument, 'no plan file given', 'e.g. ferry plan validate examples/kubeedge-edge/plan.yaml');
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new FerryError(ErrorCode.InvalidArgument, `cannot read ${file}: ${(err as Error).message}`);
  }
}

/** `ferry plan validate FILE | push FILE --key K | ls | show NAME`. */
export async function cmdPlan(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseFlags(rest, { ...adminFlags, key: { type: 'string' }, json: { type: 'boolean' } });
  if (sub === 'validate') {
    const file = positionals[0];
    const { plan, problems } = parsePlan(readPlanFile(file), file!);
    if (problems.length > 0 || !plan) {
      process.stderr.write(`${formatProblems(problems)}\n${problems.length} problem(s) in ${file}\n`);
      return Exit.Usage;
    }
    process.stdout.write(`${file}: plan ${plan.name} is valid: ${plan.steps.length} steps, ${plan.params.length} params, bundles ${plan.bundles.map((b) => `${b.name}:${b.version}`).join(', ') || 'none'}\n`);
    return Exit.Ok;
  }
  const admin = Admin.connect(values);
  try {
    switch (sub) {
      case 'push': {
        const file = positionals[0];
        const text = readPlanFile(file);
        if (!values.key) throw new FerryError(ErrorCode.InvalidArgument, 'plan push needs --key operator.key', 'plans are signed; agents refuse unsigned ones');
        const signed = signPlan(text, basename(file!), readSigningKey(values.key));
        // The latest version before this push: the same id after it means the text was already current.
        const name = parsePlan(text, file!).plan?.name;
        const before = (await admin.call(admin.client.listPlans, {})).plans.find((p) => p.name === name)?.id;
        const info = await admin.call(admin.client.pushPlan, { signed });
        const unchanged = before === info.id;
        if (values.json) writeRecord(planPushedRecord(info, unchanged));
        else process.stdout.write(unchanged ? `plan ${info.name} is already on the controller with the same text (id ${info.id}); nothing to do\n`
          : `pushed plan ${info.name} (${info.steps} steps, id ${info.id}, signed by ${info.keyId})\n`);
        return Exit.Ok;
      }
      case 'ls': {
        const { plans } = await admin.call(admin.client.listPlans, {});
        if (values.json) writeRecords(plans.map(planRecord));
        else process.stdout.write(table([['NAME', 'STEPS', 'BUNDLES', 'PARAMS', 'ID', 'PUSHED'],
          ...plans.map((p) => [p.name, String(p.steps), p.bundles.join(','), p.params.join(','), p.id, new Date(p.createdAtMs).toISOString()])]));
        return Exit.Ok;
      }
      case 'show': {
        const { info, signed } = await admin.call(admin.client.getPlan, { name: positionals[0] ?? '' });
        if (values.json) writeRecord(planDetailRecord(info!, signed!));
        else process.stdout.write(`# ${info!.name} (id ${info!.id}, signed by ${info!.keyId})\n${signed!.plan}`);
        return Exit.Ok;
      }
      default:
        throw new FerryError(ErrorCode.InvalidArgument, `unknown plan command "${sub ?? ''}"`, 'use validate, push, ls or show');
    }
  } finally {
    admin.close();
  }
}

/**
 * `ferry run PLAN (--selector S | --host H... | --all) [--param k=v ...] [--check] [--concurrency N] [--json]`;
 * `--list-hosts` (`--dry-run`) only lists the targets. Exits 2 without
 * targets or when they match no agent.
 */
export async function cmdRun(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    ...adminFlags, ...targetFlags, param: { type: 'string', multiple: true }, check: { type: 'boolean' },
    concurrency: { type: 'string' }, json: { type: 'boolean' }, timeout: { type: 'string' },
  });
  const planName = positionals[0];
  if (!planName) throw new FerryError(ErrorCode.InvalidArgument, 'run needs a plan name', 'ferry run kubeedge-edge --selector role=edge');
  const targets = targetsFromFlags(values, 'run', `ferry run ${planName} --selector role=edge`);
  const params: Record<string, string> = {};
  for (const p of values.param ?? []) {
    const i = p.indexOf('=');
    if (i <= 0) throw new FerryError(ErrorCode.InvalidArgument, `--param "${p}" is not name=value`);
    params[p.slice(0, i)] = p.slice(i + 1);
  }
  const admin = Admin.connect(values);
  if (wantsHostList(values)) {
    try {
      return await listHosts(admin, targets, Boolean(values.json));
    } finally {
      admin.close();
    }
  }
  const results = new Map<string, JobResult & { hostname: string }>();
  const offline: string[] = [];
  let summary: JobSummary | undefined;
  const timeoutMs = values.timeout ? parseDuration(values.timeout, '--timeout') : 0;
  const stream = admin.client.runPlan({ plan: planName, params, ...targets, check: Boolean(values.check), concurrency: Number(values.concurrency ?? 0), timeoutMs });
  // Ctrl-C cancels the call; the controller then starts no further host and
  // cancels the plan on every host running it (each stops after its current
  // step's process is stopped; results are kept in the job history).
  let jobId = '';
  const offInterrupt = onInterrupt(() => stream.cancel(), () => `cancelling the plan on every host running it${jobId ? ` (ferry jobs show ${jobId})` : ''}`);
  try {
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (ev: JobEvent) => {
        const record = values.json ? runRecord(ev) : undefined;
        if (record) writeRecord(record);
        const e = ev.event;
        if (!e) return;
        const h = ev.hostname;
        // A host's job id is the run's id and the agent's id joined by "-".
        if (e.$case === 'started' && e.value.endsWith(`-${ev.agentId}`)) jobId = e.value.slice(0, -ev.agentId.length - 1);
        if (e.$case === 'summary') summary = e.value;
        else if (e.$case === 'offline') offline.push(h);
        else if (e.$case === 'result') results.set(ev.agentId, { ...e.value, hostname: h });
        if (values.json) return;
        if (e.$case === 'line') (e.value.stderr ? process.stderr : process.stdout).write(`${h} | ${e.value.line}\n`);
        else if (e.$case === 'link') process.stderr.write(`${h}: ${linkNotice(e.value.connected, 'plan')}\n`);
        else if (e.$case === 'step' && e.value.finished) {
          process.stdout.write(`${h} [${e.value.stepIndex + 1}/${e.value.stepCount}] ${e.value.stepId}: ${e.value.status}${e.value.resumed ? ' (resumed)' : ''}${e.value.message ? ` — ${e.value.message}` : ''}\n`);
          if (e.value.diff && (values.check || e.value.status === 'changed')) process.stdout.write(e.value.diff.split('\n').map((l) => `${h} |   ${l}`).join('\n') + '\n');
        }
      });
      stream.on('error', (e) => reject(admin.explain(fromServiceError(e))));
      stream.on('end', () => resolve());
    });
  } finally {
    offInterrupt();
    admin.close();
  }
  if (!summary) throw new FerryError(ErrorCode.Unavailable, 'the controller ended the run without a summary');
  if (!values.json) {
    process.stderr.write('\n' + table([['HOST', 'RESULT', 'CHANGED', 'UNCHANGED', 'TIME', 'DETAIL'],
      ...[...results.values()].sort((a, b) => a.hostname.localeCompare(b.hostname)).map((r) => [
        r.hostname, r.status, String(r.changed), String(r.unchanged), formatDuration(r.durationMs), r.status === 'succeeded' ? '' : r.message]),
      ...offline.map((h) => [h, 'offline', '-', '-', '-', 'not connected'])]));
    process.stderr.write(`job ${summary.jobId}: ${summary.matched} host(s): ${summary.succeeded} succeeded, ${summary.failed} failed, ${summary.offline} offline${values.check ? ' (check mode: nothing was changed)' : ''}\n`);
  }
  return summary.matched > 0 && summary.failed === 0 && summary.offline === 0 ? Exit.Ok : Exit.Failure;
}
