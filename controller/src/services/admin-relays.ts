import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { AdminServer, RelayInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import { parseSelector } from '../../../common/src/labels.js';
import type { AgentRecord } from '../store/agents.js';
import type { RelayRecord } from '../store/relays.js';
import type { ControllerContext } from './context.js';
import type { OperatorCalls } from './operator-call.js';
import { resolveTargets } from '../store/resolve-targets.js';

type RelayHandlers = Pick<AdminServer, 'enableRelay' | 'disableRelay' | 'listRelays'>;

/** Cache bound when the operator gives none. */
export const DEFAULT_RELAY_CACHE_BYTES = 10 * 1024 ** 3;
/** The smallest cache worth running: a few of the chunker's largest (4 MiB) chunks. */
export const MIN_RELAY_CACHE_BYTES = 64 * 1024 ** 2;
/** Where a relay listens when the operator gives no address. */
export const DEFAULT_RELAY_LISTEN = '0.0.0.0:7444';

function info(ctx: ControllerContext, r: RelayRecord, agents: readonly AgentRecord[]): RelayInfo {
  const host = agents.find((a) => a.id === r.agentId);
  const sel = parseSelector(r.serves);
  return {
    agentId: r.agentId, hostname: host?.hostname ?? '', serves: r.serves, cacheBytes: r.cacheBytes, listen: r.listen, advertise: r.advertise, registryListen: r.registryListen,
    enabledBy: r.enabledBy, enabledAtMs: r.enabledAt, connected: Boolean(ctx.sessions.get(r.agentId)),
    hostsServed: agents.filter((a) => a.id !== r.agentId && a.revokedAt === null && sel.matches(a.labels)).map((a) => a.hostname),
    status: r.status ?? undefined, statusAtMs: r.statusAt ?? 0,
  };
}

/** host:port with a port 0-65535 (0: any free port); the host may be a name, an IPv4 or a bracketed IPv6 address. */
function checkAddress(text: string, flag: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535) {
    throw new FerryError(ErrorCode.InvalidArgument, `${flag} "${text}" is not HOST:PORT`, `e.g. ${flag} 0.0.0.0:7444`);
  }
  return text;
}

/**
 * `ferry relay enable|disable` and `ferry relays ls` (docs/relays.md). Both
 * changes are audited with the operator's name and pushed to every
 * connected host at once.
 */
export function relayHandlers(ctx: ControllerContext, kit: OperatorCalls): RelayHandlers {
  const relayHost = async (name: string): Promise<AgentRecord> => {
    if (!name) throw new FerryError(ErrorCode.InvalidArgument, 'no relay host given', 'e.g. ferry relay enable edge-gw-7 --serves site=plant-7');
    const [a] = resolveTargets(await ctx.agents.list(true), { selector: null, hosts: [name], exclude: [] }, { hosts: 'relay host', exclude: '' });
    return a!;
  };
  return {
    enableRelay: kit.unary(async (req, who) => {
      const host = await relayHost(req.host);
      if (host.revokedAt !== null) {
        throw new FerryError(ErrorCode.AgentRevoked, `agent ${host.hostname} (${host.id}) was revoked; a revoked host cannot be a relay`, 'enroll it again, then enable the relay');
      }
      if (!req.serves.trim()) {
        throw new FerryError(ErrorCode.InvalidArgument, 'a relay needs --serves: the hosts it serves, as a label selector', 'e.g. --serves site=plant-7');
      }
      parseSelector(req.serves);
      const cacheBytes = req.cacheBytes === 0 ? DEFAULT_RELAY_CACHE_BYTES : req.cacheBytes;
      if (cacheBytes < MIN_RELAY_CACHE_BYTES) {
        throw new FerryError(ErrorCode.InvalidArgument, `--cache-size ${cacheBytes} bytes is below the minimum of 64 MiB`, 'give the relay room for a bundle, e.g. --cache-size 20G');
      }
      const listen = checkAddress(req.listen || DEFAULT_RELAY_LISTEN, '--listen');
      const advertise = req.advertise ? checkAddress(req.advertise, '--advertise') : '';
      const registryListen = req.registryListen ? checkAddress(req.registryListen, '--registry-listen') : '';
      const r = await ctx.relays.store.enable({ agentId: host.id, serves: req.serves.trim(), cacheBytes, listen, advertise, registryListen, enabledBy: who, enabledAt: Date.now() });
      await ctx.audit.record(who, 'relay.enable', host.id, { hostname: host.hostname, serves: r.serves, cacheBytes, listen, advertise, registryListen });
      await ctx.relays.pushAll();
      return info(ctx, r, await ctx.agents.list(true));
    }),
    disableRelay: kit.unary(async (req, who) => {
      const host = await relayHost(req.host);
      const r = await ctx.relays.store.get(host.id);
      if (!r || !(await ctx.relays.store.disable(host.id))) {
        throw new FerryError(ErrorCode.NotFound, `${host.hostname} (${host.id}) is not a relay`, 'list relays with `ferry relays ls`');
      }
      await ctx.audit.record(who, 'relay.disable', host.id, { hostname: host.hostname, serves: r.serves });
      await ctx.relays.pushAll();
      return info(ctx, r, await ctx.agents.list(true));
    }),
    listRelays: kit.unary(async () => {
      const agents = await ctx.agents.list(true);
      return { relays: (await ctx.relays.store.list()).map((r) => info(ctx, r, agents)) };
    }),
  };
}
