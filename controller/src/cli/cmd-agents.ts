import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecords } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { labelsToList, parseLabel } from '../../../common/src/labels.js';
import { agentJson, agentState, parseListOptions, renderAgent, renderAgents, sortAgents } from './agents-view.js';
import { Admin, adminFlags } from './admin-client.js';

/** `ferry agents ls | show | label | revoke | allow-reauth | rm`. */
export async function cmdAgents(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseFlags(rest, {
    ...adminFlags, selector: { type: 'string', short: 'l' }, all: { type: 'boolean' }, json: { type: 'boolean' },
    remove: { type: 'string', multiple: true }, output: { type: 'string', short: 'o' }, sort: { type: 'string' }, state: { type: 'string' },
  });
  const admin = Admin.connect(values);
  try {
    switch (sub) {
      case 'ls': case 'list': {
        const o = parseListOptions(values);
        const { agents: listed } = await admin.call(admin.client.listAgents, {
          selector: values.selector ?? '', includeRevoked: Boolean(values.all) || o.state === 'revoked',
        });
        const agents = sortAgents(o.state ? listed.filter((a) => agentState(a) === o.state) : listed, o.sort);
        if (values.json || o.output === 'json') {
          writeRecords(agents.map(agentJson));
        } else if (o.output === 'name') {
          process.stdout.write(agents.map((a) => `${a.id}\n`).join(''));
        } else {
          process.stdout.write(renderAgents(agents, o.output, process.stdout.columns || 80));
          process.stderr.write(`${agents.length} agent(s), ${agents.filter((a) => a.connected).length} online\n`);
        }
        return Exit.Ok;
      }
      case 'show': {
        if (positionals.length !== 1) throw new FerryError(ErrorCode.InvalidArgument, 'agents show takes one agent id or hostname');
        const want = positionals[0]!;
        const { agents } = await admin.call(admin.client.listAgents, { selector: '', includeRevoked: true });
        const found = agents.filter((a) => a.id === want || a.hostname === want);
        if (found.length === 0) throw new FerryError(ErrorCode.NotFound, `no agent with id or hostname ${want}`, 'list agents with `ferry agents ls --all`');
        if (found.length > 1) {
          throw new FerryError(ErrorCode.InvalidArgument, `${found.length} agents have the hostname ${want}: ${found.map((a) => a.id).join(', ')}`, 'name one by its id');
        }
        process.stdout.write(values.json ? JSON.stringify(agentJson(found[0]!)) + '\n' : renderAgent(found[0]!));
        return Exit.Ok;
      }
      case 'rm': {
        if (positionals.length !== 1) throw new FerryError(ErrorCode.InvalidArgument, 'agents rm takes one agent id');
        const { agent } = await admin.call(admin.client.removeAgent, { id: positionals[0]! });
        process.stdout.write(values.json ? JSON.stringify(agentJson(agent!)) + '\n'
          : `agent ${agent!.id} (${agent!.hostname}) removed; its jobs and rollouts keep their history\n`);
        return Exit.Ok;
      }
      case 'label': {
        // ferry agents label [ID|HOSTNAME...] [--selector S | --all] k=v ... [--remove k]
        const ids = positionals.filter((p) => !p.includes('='));
        const set = positionals.filter((p) => p.includes('=')).map(parseLabel);
        if (set.length === 0 && !values.remove?.length) {
          throw new FerryError(ErrorCode.InvalidArgument, 'nothing to change', 'give labels as key=value and/or --remove key');
        }
        const { agents } = await admin.call(admin.client.labelAgents, {
          ids, selector: values.selector ?? '', all: Boolean(values.all), set: labelsToList(Object.fromEntries(set)), remove: values.remove ?? [],
        });
        if (values.json) writeRecords(agents.map(agentJson));
        else process.stdout.write(`labelled ${agents.length} agent(s)\n`);
        return Exit.Ok;
      }
      case 'revoke': {
        if (positionals.length !== 1) throw new FerryError(ErrorCode.InvalidArgument, 'agents revoke takes one agent id');
        const { agent } = await admin.call(admin.client.revokeAgent, { id: positionals[0]! });
        process.stdout.write(values.json ? JSON.stringify(agentJson(agent!)) + '\n'
          : `agent ${agent!.id} (${agent!.hostname}) revoked; its session was closed and it cannot reconnect\n`);
        return Exit.Ok;
      }
      case 'allow-reauth': {
        if (positionals.length !== 1) throw new FerryError(ErrorCode.InvalidArgument, 'agents allow-reauth takes one agent id');
        const { agent } = await admin.call(admin.client.allowReauth, { id: positionals[0]! });
        process.stdout.write(values.json ? JSON.stringify(agentJson(agent!)) + '\n'
          : `agent ${agent!.id} (${agent!.hostname}) may re-authenticate with its enrolled key again; it comes back on its next attempt\n`);
        return Exit.Ok;
      }
      default:
        throw new FerryError(ErrorCode.InvalidArgument, `unknown agents command "${sub ?? ''}"`, 'use ls, show, label, revoke, allow-reauth or rm');
    }
  } finally {
    admin.close();
  }
}
