import { parseFlags } from '../../../common/src/cli-support.js';
import { countsByState, writeRecord, writeRecords } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { JobHostInfo, JobInfo, JobLogLine } from '../../../common/src/gen/ferry/v1/admin.js';
import { ago, fit, table } from '../../../common/src/table.js';
import { Admin, adminFlags } from './admin-client.js';

function counts(j: JobInfo): string {
  return j.counts.map((c) => `${c.count} ${c.state}`).join(', ') || '-';
}

/** `ferry jobs ls | show ID | logs ID [--host H]`: every exec and plan run, kept for the job retention. */
export async function cmdJobs(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseFlags(rest, {
    ...adminFlags, json: { type: 'boolean' }, limit: { type: 'string' }, kind: { type: 'string' }, host: { type: 'string' },
  });
  const admin = Admin.connect(values);
  try {
    switch (sub) {
      case 'ls': case 'list': {
        if (positionals.length > 0) throw new FerryError(ErrorCode.InvalidArgument, `jobs ls takes no arguments (got ${positionals.join(' ')})`);
        const limit = Number(values.limit ?? '50');
        if (!Number.isInteger(limit) || limit < 1) throw new FerryError(ErrorCode.InvalidArgument, `--limit "${values.limit}" is not a positive whole number`);
        if (values.kind && !['exec', 'plan'].includes(values.kind)) throw new FerryError(ErrorCode.InvalidArgument, `--kind ${values.kind}: expected exec or plan`);
        const { jobs } = await admin.call(admin.client.listJobs, { limit, kind: values.kind ?? '', agentId: '' });
        if (values.json) {
          writeRecords(jobs.map(jobJson));
          return Exit.Ok;
        }
        process.stdout.write(table([
          ['ID', 'KIND', 'STARTED', 'BY', 'HOSTS', 'WHAT'],
          ...jobs.map((j) => [j.id, j.check ? `${j.kind} (check)` : j.kind, ago(j.createdAtMs), fit(j.createdBy, 16), counts(j), fit(j.what, 40)]),
        ]));
        return Exit.Ok;
      }
      case 'show': {
        if (positionals.length !== 1) throw new FerryError(ErrorCode.InvalidArgument, 'jobs show takes one job id', 'list jobs with `ferry jobs ls`');
        const { info, hosts } = await admin.call(admin.client.getJob, { id: positionals[0]! });
        if (values.json) {
          writeRecord({ ...jobJson(info!), hosts: hosts.map(jobHostJson) });
          return Exit.Ok;
        }
        const j = info!;
        process.stdout.write(`job ${j.id}: ${j.kind}${j.check ? ' (check mode)' : ''} ${j.what}\nstarted ${new Date(j.createdAtMs).toISOString()} by ${j.createdBy}; hosts: ${counts(j)}\n\n`);
        process.stdout.write(table([
          ['HOSTNAME', 'AGENT', 'STATE', 'STEP', 'UPDATED', 'MESSAGE'],
          ...hosts.map((h) => [h.hostname, h.agentId, h.state, h.stepId || '-', ago(h.updatedAtMs), fit(h.message.split('\n')[0] ?? '', 60)]),
        ]));
        return Exit.Ok;
      }
      case 'logs': {
        if (positionals.length !== 1) throw new FerryError(ErrorCode.InvalidArgument, 'jobs logs takes one job id', 'e.g. ferry jobs logs ID --host edge-7');
        const { lines } = await admin.call(admin.client.jobLogs, { id: positionals[0]!, host: values.host ?? '' });
        const many = new Set(lines.map((l) => l.agentId)).size > 1;
        if (values.json) {
          writeRecords(lines.map(jobLogJson));
          return Exit.Ok;
        }
        for (const l of lines) {
          (l.stderr ? process.stderr : process.stdout).write(`${many ? `${l.hostname} | ` : ''}${l.text}\n`);
        }
        return Exit.Ok;
      }
      default:
        throw new FerryError(ErrorCode.InvalidArgument, `unknown jobs command "${sub ?? ''}"`, 'use ferry jobs ls | show ID | logs ID [--host H]');
    }
  } finally {
    admin.close();
  }
}

/** One host of `jobs show --json` (docs/json.md, "job.host"). */
function jobHostJson(h: JobHostInfo) {
  return { agentId: h.agentId, hostname: h.hostname, hostJobId: h.hostJobId, state: h.state, stepId: h.stepId || null, message: h.message || null, updatedAtMs: h.updatedAtMs };
}

/** One line of `jobs logs --json` (docs/json.md, "job.log"). */
function jobLogJson(l: JobLogLine) {
  return { agentId: l.agentId, hostname: l.hostname, atMs: l.atMs, kind: l.kind, stream: l.stderr ? 'stderr' : 'stdout', text: l.text };
}

/** The documented JSON record of a job (docs/json.md, "job"; `jobs show` adds `hosts`, "job.detail"): counts as a map of state to hosts. */
function jobJson(j: JobInfo) {
  return { id: j.id, kind: j.kind, what: j.what, check: j.check, createdAtMs: j.createdAtMs, createdBy: j.createdBy,
    counts: countsByState(j.counts) };
}
