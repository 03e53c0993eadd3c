import { Exit } from '../../../common/src/exit-codes.js';
import { writeRecords } from '../../../common/src/cli/json-records.js';
import { checkTargets, type TargetRequest } from '../../../common/src/targets.js';
import { ago, table } from '../../../common/src/table.js';
import type { Admin } from './admin-client.js';

/**
 * The targeting flags of exec, run and bundle prefetch: `--selector/-l`,
 * `--host` (repeatable), `--all`, and `--list-hosts` (alias `--dry-run`).
 */
export const targetFlags = {
  selector: { type: 'string' as const, short: 'l' as const },
  host: { type: 'string' as const, multiple: true as const },
  all: { type: 'boolean' as const },
  'list-hosts': { type: 'boolean' as const },
  'dry-run': { type: 'boolean' as const },
};

/** Parsed values of {@link targetFlags}. */
export interface TargetValues {
  selector?: string;
  host?: string[];
  all?: boolean;
  'list-hosts'?: boolean;
  'dry-run'?: boolean;
}

/**
 * The targets from flags, checked before anything connects: no targets,
 * an empty selector, --all with others, or a malformed selector exit 2
 * here, with the controller's own words (common/src/targets.ts).
 */
export function targetsFromFlags(v: TargetValues, command: string, example: string): TargetRequest {
  return checkTargets({ selector: v.selector, hosts: v.host ?? [], all: Boolean(v.all) }, command, example);
}

/** Whether the operator asked only to see the targets. */
export const wantsHostList = (v: TargetValues): boolean => Boolean(v['list-hosts'] || v['dry-run']);

/**
 * `--list-hosts`: who the command would act on, resolved by the controller
 * exactly as the command itself resolves them (ResolveTargets, the same
 * function), so the list cannot drift from what a run does. Nothing runs.
 */
export async function listHosts(admin: Admin, targets: TargetRequest, json: boolean): Promise<number> {
  const { agents } = await admin.call(admin.client.resolveTargets, targets);
  if (json) {
    writeRecords(agents.map((a) => ({ id: a.id, hostname: a.hostname, connected: a.connected })));
    return Exit.Ok;
  }
  process.stdout.write(table([['HOSTNAME', 'ID', 'STATE', 'LAST SEEN'],
    ...agents.map((a) => [a.hostname, a.id, a.connected ? 'connected' : 'offline', a.connected ? 'now' : ago(a.lastSeenMs)])]));
  const offline = agents.filter((a) => !a.connected).length;
  process.stderr.write(`${agents.length} host(s) would be targeted${offline ? `, ${offline} of them offline now` : ''}; nothing was run\n`);
  return Exit.Ok;
}
