import { jobHandlers } from './admin-jobs.js';
import type { AgentUpgradeReport } from '../../../common/src/gen/ferry/v1/session.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type {
  AdminServer, AgentInfo, ExecEvent, ExecRequest, TokenInfo,
} from '../../../common/src/gen/ferry/v1/admin.js';
import { formatJoinString } from '../../../common/src/join-string.js';
import { checkLabel, labelsToList, listToLabels, parseSelector } from '../../../common/src/labels.js';
import { describeTargets } from '../../../common/src/targets.js';
import type { AgentRecord } from '../store/agents.js';
import type { TokenRecord } from '../store/tokens.js';
import type { ControllerContext } from './context.js';
import { operatorCalls, type OperatorCallOptions } from './operator-call.js';
import { bundleHandlers, type AdminKit } from './admin-bundles.js';
import { selectTargets } from '../store/resolve-targets.js';
import { planHandlers } from './admin-plans.js';
import { operatorHandlers } from './admin-operators.js';
import { registryHandlers } from './admin-registry.js';
import { relayHandlers } from './admin-relays.js';

const MAX_TOKEN_USES = 100_000;
const RESERVED_PREFIX = 'ferry/';

function tokenInfo(t: TokenRecord): TokenInfo {
  return {
    id: t.id, labels: labelsToList(t.labels), maxUses: t.maxUses, uses: t.uses,
    expiresAtMs: t.expiresAt, createdAtMs: t.createdAt, revokedAtMs: t.revokedAt ?? 0,
  };
}

function agentInfo(ctx: ControllerContext, a: AgentRecord, held: Map<string, string[]> = new Map(), upgrades: Map<string, AgentUpgradeReport> = new Map()): AgentInfo {
  const live = ctx.sessions.get(a.id);
  return {
    id: a.id, hostname: a.hostname, labels: labelsToList(a.labels), connected: Boolean(live),
    lastSeenMs: live ? Date.now() : (a.lastSeenAt ?? 0), agentVersion: a.agentVersion, protocolVersion: a.protocolVersion, previousAgentVersion: a.previousVersion, facts: a.facts,
    enrolledAtMs: a.enrolledAt, revokedAtMs: a.revokedAt ?? 0, certNotAfterMs: a.certNotAfter,
    peerAddress: live?.peerAddress ?? '', reauthAllowedAtMs: a.reauthAllowedAt ?? 0,
    bundles: held.get(a.id) ?? [],
    lastUpgrade: upgrades.get(a.id),
  };
}

/**
 * The operators' API. With `requireOperatorCert` (the TLS port) every call
 * must present an operator certificate; on the local Unix socket the
 * socket's file mode (0600) is the access control.
 */
export function adminService(ctx: ControllerContext, opts: OperatorCallOptions): AdminServer {
  const kit = operatorCalls(ctx, opts, 'admin');
  const { unary, serverStream } = kit;

  /** The agents a targeted command acts on; refuses no targets and an empty result (common/src/targets.ts). */
  const selectAgents: AdminKit['selectAgents'] = async (req, command, example) =>
    selectTargets(await ctx.agents.list(), req, command, example);

  /** `agents label`: exact ids and/or a selector (both: agents that are in both). */
  /** The agents `agents label` changes: ids/hostnames and selector matches (their union), or all; as every targeted command resolves them. */
  async function labelTargets(req: { selector: string; ids: string[]; all: boolean }): Promise<AgentRecord[]> {
    return selectTargets(await ctx.agents.list(), { selector: req.selector, hosts: req.ids, all: req.all },
      'agents label', 'ferry agents label --selector site=plant-7 ring=canary');
  }

  return {
    ...bundleHandlers(ctx, { ...kit, selectAgents }),
    ...planHandlers(ctx, { ...kit, selectAgents }),
    ...jobHandlers(ctx, { ...kit, selectAgents }),
    ...operatorHandlers(ctx, kit),
    ...registryHandlers(ctx, kit),
    ...relayHandlers(ctx, kit),
    controllerStatus: unary(async () => ctx.status()),
    resolveTargets: unary(async (req) => {
      const targets = await selectAgents(req, 'list-hosts', 'ferry exec --selector role=edge --list-hosts');
      const held = await ctx.prefetch.heldNames();
      const upgrades = await ctx.agentUpgrades.latestByAgent();
      return { agents: targets.map((a) => agentInfo(ctx, a, held, upgrades)) };
    }),
    createToken: unary(async (req, who) => {
      if (req.ttlMs <= 0) throw new FerryError(ErrorCode.InvalidArgument, 'token TTL must be positive', 'e.g. --ttl 2h');
      if (req.maxUses < 1 || req.maxUses > MAX_TOKEN_USES) {
        throw new FerryError(ErrorCode.InvalidArgument, `token uses must be between 1 and ${MAX_TOKEN_USES}`, 'e.g. --uses 200');
      }
      const labels = listToLabels(req.labels);
      for (const [k, v] of Object.entries(labels)) {
        checkLabel(k, v);
        if (k.startsWith(RESERVED_PREFIX)) throw new FerryError(ErrorCode.InvalidArgument, `label ${k}: the ferry/ prefix is reserved`);
      }
      const { token, record } = await ctx.tokens.create({ ttlMs: req.ttlMs, maxUses: req.maxUses, labels });
      await ctx.audit.record(who, 'token.create', record.id, { maxUses: req.maxUses, ttlMs: req.ttlMs, labels });
      return {
        token: tokenInfo(record),
        joinString: formatJoinString({ addresses: ctx.joinAddresses(), token, caPin: ctx.ca.pin }),
      };
    }),
    listTokens: unary(async () => ({ tokens: (await ctx.tokens.list()).map(tokenInfo) })),
    revokeToken: unary(async (req, who) => {
      const t = await ctx.tokens.revoke(req.id);
      await ctx.audit.record(who, 'token.revoke', req.id);
      return { token: tokenInfo(t) };
    }),
    listAgents: unary(async (req) => {
      const sel = parseSelector(req.selector);
      const all = await ctx.agents.list(req.includeRevoked);
      const held = await ctx.prefetch.heldNames();
      const upgrades = await ctx.agentUpgrades.latestByAgent();
      return { agents: all.filter((a) => sel.matches(a.labels)).map((a) => agentInfo(ctx, a, held, upgrades)) };
    }),
    labelAgents: unary(async (req, who) => {
      for (const l of req.set) checkLabel(l.key, l.value);
      for (const k of [...req.set.map((l) => l.key), ...req.remove]) {
        if (k.startsWith(RESERVED_PREFIX)) throw new FerryError(ErrorCode.InvalidArgument, `label ${k}: the ferry/ prefix is reserved`);
      }
      const targets = await labelTargets(req);
      for (const a of targets) {
        const labels = { ...a.labels, ...listToLabels(req.set) };
        for (const k of req.remove) delete labels[k];
        await ctx.agents.setLabels(a.id, labels);
        await ctx.audit.record(who, 'agent.label', a.id, { set: listToLabels(req.set), remove: req.remove });
      }
      // Labels decide which relays serve a host.
      await ctx.relays.pushAll();
      const updated = await Promise.all(targets.map((a) => ctx.agents.require(a.id)));
      return { agents: updated.map((a) => agentInfo(ctx, a)) };
    }),
    revokeAgent: unary(async (req, who) => {
      const a = await ctx.agents.revoke(req.id, Date.now());
      ctx.sessions.get(req.id)?.close('agent revoked by an operator');
      await ctx.audit.record(who, 'agent.revoke', req.id);
      // Relays refuse it from now on; if it was a relay, hosts stop using it.
      await ctx.relays.pushAll();
      return { agent: agentInfo(ctx, a) };
    }),
    removeAgent: unary(async (req, who) => {
      const a = await ctx.agents.remove(req.id);
      await ctx.audit.record(who, 'agent.rm', req.id, { hostname: a.hostname });
      return { agent: agentInfo(ctx, a) };
    }),
    allowReauth: unary(async (req, who) => {
      const before = await ctx.agents.require(req.id);
      if (before.revokedAt !== null) {
        throw new FerryError(ErrorCode.AgentRevoked, `agent ${req.id} was revoked; re-authentication cannot bring it back`,
          'enroll the host again with a new token (`ferry token create`, then `ferry-agent join --force` on the host)');
      }
      const a = await ctx.agents.allowReauth(req.id, Date.now());
      await ctx.audit.record(who, 'agent.allow-reauth', req.id);
      return { agent: agentInfo(ctx, a) };
    }),
    exec: serverStream<ExecRequest, ExecEvent>(async (call, { who, signal }) => {
      const req = call.request;
      if (req.argv.length === 0 || !req.argv[0]) {
        throw new FerryError(ErrorCode.InvalidArgument, 'no command given', 'put the command after --, e.g. ferry exec -- uname -a');
      }
      const targets = await selectAgents(req, 'exec', 'ferry exec --selector role=edge -- uptime');
      await ctx.audit.record(who, 'exec', describeTargets(req), { argv: req.argv, hosts: targets.length });
      const summary = await ctx.exec.run(req, who, targets.map((a) => ({ agentId: a.id, hostname: a.hostname })),
        (ev) => { if (!signal.aborted) call.write(ev); }, signal);
      if (!signal.aborted) call.write({ event: { $case: 'summary', value: summary } });
    }),
  };
}
