import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecords } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { AuditEntry } from '../../../common/src/gen/ferry/v1/admin.js';
import { table } from '../../../common/src/table.js';
import { Admin, adminFlags } from './admin-client.js';

const USAGE = 'use `ferry audit ls [--limit N] [--json]`';

/** The `--json` record of one audit entry (docs/json.md, "audit"): detail as an object, time in epoch ms. */
export function auditRecord(e: AuditEntry): Record<string, unknown> {
  let detail: unknown = {};
  try { detail = JSON.parse(e.detailJson || '{}'); } catch { detail = { raw: e.detailJson }; }
  return { atMs: e.atMs, actor: e.actor, action: e.action, subject: e.subject, detail };
}

/** Detail in one short cell: key=value pairs, long values cut. */
function detailCell(json: string): string {
  let d: unknown;
  try { d = JSON.parse(json); } catch { return json; }
  if (!d || typeof d !== 'object') return String(d);
  const text = Object.entries(d as Record<string, unknown>).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
  return text.length > 60 ? `${text.slice(0, 59)}…` : text;
}

/** `ferry audit ls [--limit N] [--json]`: who changed what, newest first. */
export async function cmdAudit(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'ls') throw new FerryError(ErrorCode.InvalidArgument, `unknown audit command "${sub ?? ''}"`, USAGE);
  const { values, positionals } = parseFlags(rest, { ...adminFlags, limit: { type: 'string' }, json: { type: 'boolean' } });
  if (positionals.length) throw new FerryError(ErrorCode.InvalidArgument, `audit ls takes no arguments, not ${positionals.join(' ')}`, USAGE);
  const limit = Number(values.limit ?? '100');
  if (!Number.isInteger(limit) || limit < 1) throw new FerryError(ErrorCode.InvalidArgument, `--limit "${values.limit}" is not a positive whole number`, USAGE);
  const admin = Admin.connect(values);
  try {
    const { entries } = await admin.call(admin.client.listAudit, { limit });
    if (values.json) {
      writeRecords(entries.map(auditRecord));
    } else {
      process.stdout.write(table([
        ['TIME', 'ACTOR', 'ACTION', 'SUBJECT', 'DETAIL'],
        ...entries.map((e) => [new Date(e.atMs).toISOString().slice(0, 19), e.actor, e.action, e.subject, detailCell(e.detailJson)]),
      ]));
    }
    return Exit.Ok;
  } finally {
    admin.close();
  }
}
