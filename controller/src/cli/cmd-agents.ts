import { parseFlags } from '../../../common/src/cli-support.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { AgentInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import { labelsToList, listToLabels, parseLabel } from '../../../common/src/labels.js';
import { ago, bytes, table } from '../../../common/src/table.js';
import { Admin, adminFlags } from './admin-client.js';

function toJson(a: AgentInfo) {
  return { ...a, labels: listToLabels(a.labels) };
}

function userLabels(a: AgentInfo): string {
  return a.labels.filter((l) => !l.key.startsWith('ferry/')).map((l) => `${l.key}=${l.value}`).join(',');
}

/** `ferry agents ls | label | revoke | allow-reauth`. */
export async function cmdAgents(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseFlags(rest, {
    ...adminFlags, selector: { type: 'string', short: 'l' }, all: { type: 'boolean' }, json: { type: 'boolean' },
    remove: { type: 'string', multiple: true },
  });
  const admin = Admin.connect(values);
  try {
    switch (sub) {
      case 'ls': case 'list': {
        const { agents } = await admin.call(admin.client.listAgents, { selector: values.selector ?? '', includeRevoked: Boolean(values.all) });
        if (values.json) {
          process.stdout.write(JSON.stringify(agents.map(toJson)) + '\n');
          return Exit.Ok;
        }
        const tools = (a: AgentInfo) => (a.facts?.tools ?? []).filter((t) => t.present).map((t) => t.name).join(',');
        process.stdout.write(table([
          ['ID', 'HOSTNAME', 'STATE', 'LAST SEEN', 'VERSION', 'OS', 'ARCH', 'CPU', 'MEM', 'TOOLS', 'LABELS'],
          ...agents.map((a) => [
            a.id, a.hostname, a.revokedAtMs ? 'revoked' : a.connected ? 'connected' : 'offline', a.connected ? 'now' : ago(a.lastSeenMs),
            a.agentVersion, `${a.facts?.os ?? ''} ${a.facts?.osRelease ?? ''}`.trim(), a.facts?.arch ?? '', String(a.facts?.cpus ?? ''),
            bytes(a.facts?.memoryBytes ?? 0), tools(a), userLabels(a),
          ]),
        ]));
        process.stderr.write(`${agents.length} agent(s), ${agents.filter((a) => a.connected).length} connected\n`);
        return Exit.Ok;
      }
      case 'label': {
        // ferry agents label [ID...] [--selector S] k=v ... [--remove k]
        const ids = positionals.filter((p) => !p.includes('='));
        const set = positionals.filter((p) => p.includes('=')).map(parseLabel);
        if (set.length === 0 && !values.remove?.length) {
          throw new FerryError(ErrorCode.InvalidArgument, 'nothing to change', 'give labels as key=value and/or --remove key');
        }
        const { agents } = await admin.call(admin.client.labelAgents, {
          ids, selector: values.selector ?? '', set: labelsToList(Object.fromEntries(set)), remove: values.remove ?? [],
        });
        process.stdout.write(values.json ? JSON.stringify(agents.map(toJson)) + '\n' : `labelled ${agents.length} agent(s)\n`);
        return Exit.Ok;
      }
      case 'revoke': {
        if (positionals.length !== 1) throw new FerryError(ErrorCode.InvalidArgument, 'agents revoke takes one agent id');
        const { agent } = await admin.call(admin.client.revokeAgent, { id: positionals[0]! });
        process.stdout.write(values.json ? JSON.stringify(toJson(agent!)) + '\n'
          : `agent ${agent!.id} (${agent!.hostname}) revoked; its session was closed and it cannot reconnect\n`);
        return Exit.Ok;
      }
      case 'allow-reauth': {
        if (positionals.length !== 1) throw new FerryError(ErrorCode.InvalidArgument, 'agents allow-reauth takes one agent id');
        const { agent } = await admin.call(admin.client.allowReauth, { id: positionals[0]! });
        process.stdout.write(values.json ? JSON.stringify(toJson(agent!)) + '\n'
          : `agent ${agent!.id} (${agent!.hostname}) may re-authenticate with its enrolled key again; it comes back on its next attempt\n`);
        return Exit.Ok;
      }
      default:
        throw new FerryError(ErrorCode.InvalidArgument, `unknown agents command "${sub ?? ''}"`, 'use ls, label, revoke or allow-reauth');
    }
  } finally {
    admin.close();
  }
}
