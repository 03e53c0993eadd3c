import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { AgentMessage, AgentSessionServer, ControllerMessage, LeaveRequest, LeaveResponse } from '../../../common/src/gen/ferry/v1/session.js';
import { AgentUpgradeOutcome, type Hello } from '../../../common/src/gen/ferry/v1/session.js';
import { agentCompat } from '../../../common/src/version.js';
import { checkCsr } from '../pki/csr.js';
import { AgentConnection, type ConnectionHooks } from '../sessions/agent-connection.js';
import type { ControllerContext } from './context.js';
import { CallBoundary } from './call-boundary.js';
import { authenticatePeer, claimedPeer, type CallWithAuth, type Peer } from './peer-auth.js';

/** The versions a hello reports, as the agent store keeps them. */
function helloVersions(h: Hello): { agentVersion: string; protocolVersion: number; previousVersion: string } {
  return { agentVersion: h.agentVersion, protocolVersion: h.protocolVersion, previousVersion: h.previousAgentVersion };
}

/**
 * AgentSession.Connect: authenticates the agent by its certificate, refuses
 * revoked agents, and hands the stream to an AgentConnection.
 */
export function sessionService(ctx: ControllerContext): AgentSessionServer {
  const hooks: ConnectionHooks = {
    heartbeatIntervalMs: ctx.config.heartbeatIntervalMs,
    async onHello(conn, hello) {
      // The version rule (common/src/version.ts): refused before the agent
      // counts as connected, with what to do, in the agent's log and ours.
      const compat = agentCompat(hello.agentVersion);
      if (!compat.ok) {
        ctx.log.warn({ agent: conn.agentId, hostname: conn.hostname, agentVersion: hello.agentVersion, reason: compat.reason }, 'agent version refused');
        await ctx.agents.seen(conn.agentId, Date.now(), hello.facts, helloVersions(hello));
        throw new FerryError(ErrorCode.AgentVersionRefused, compat.message, compat.hint);
      }
      await ctx.agents.seen(conn.agentId, Date.now(), hello.facts, helloVersions(hello));
      if (hello.lastUpgrade) await ctx.agentUpgrades.record(conn.agentId, hello.lastUpgrade);
      ctx.sessions.attach(conn);
      ctx.log.info({ agent: conn.agentId, hostname: conn.hostname, peer: conn.peerAddress, agentVersion: hello.agentVersion }, 'agent connected');
      // Every job the agent holds or should hold, exec or plan, one reconciliation.
      const acked = await ctx.jobs.onHello(conn.agentId, hello.openJobs);
      await ctx.prefetch.onHello(conn.agentId, hello.bundles);
      // The agent handles its relay assignment whenever it arrives (before or after the welcome).
      await ctx.relays.push(conn.agentId);
      return { acked, advice: compat.advice };
    },
    async onMessage(conn, m) {
      switch (m.msg?.$case) {
        // Job messages of either kind: queued per job synchronously here, so
        // they are applied in the order the session delivered them.
        case 'output':
          await ctx.jobs.onMessage(conn.agentId, m.msg.value.jobId, m.msg.value.seq, { output: m.msg.value });
          break;
        case 'stepEvent':
          await ctx.jobs.onMessage(conn.agentId, m.msg.value.jobId, m.msg.value.seq, { step: m.msg.value });
          break;
        case 'jobResult':
          await ctx.jobs.onMessage(conn.agentId, m.msg.value.jobId, m.msg.value.seq, { result: m.msg.value });
          break;
        case 'upgradeReport':
          await ctx.agentUpgrades.record(conn.agentId, m.msg.value);
          // Sent after the commit, which came after this session's hello: the kept version changed since.
          if (m.msg.value.outcome === AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_COMMITTED) await ctx.agents.setPreviousVersion(conn.agentId, m.msg.value.fromVersion);
          break;
        case 'bundleProgress':
          if (m.msg.value.relayFallbacks.length > 0) {
            ctx.log.warn({ agent: conn.agentId, bundleId: m.msg.value.bundleId, fallbacks: m.msg.value.relayFallbacks }, 'host fell back from its relay while staging (docs/relays.md)');
          }
          await ctx.prefetch.onProgress(conn.agentId, m.msg.value);
          break;
        case 'renew': {
          const csr = await checkCsr(m.msg.value.csrPem);
          const issued = await ctx.ca.issue({ publicKey: csr.publicKey, commonName: conn.agentId, role: 'agent', ttlMs: ctx.config.agentCertTtlMs });
          await ctx.agents.setCert(conn.agentId, issued.serial, issued.notAfter.getTime());
          conn.send({ msg: { $case: 'renewed', value: { certPem: issued.certPem, caPem: ctx.ca.certPem } } });
          ctx.log.info({ agent: conn.agentId, notAfter: issued.notAfter.toISOString() }, 'agent certificate renewed');
          break;
        }
        case 'relayCertRequest':
          conn.send({ msg: { $case: 'relayCert', value: await ctx.relays.issueCert(conn.agentId, m.msg.value.csrPem) } });
          break;
        case 'relayStatus':
          await ctx.relays.onStatus(conn.agentId, m.msg.value);
          break;
        case 'relayWarm':
          ctx.relays.pins.onWarmReport(conn.agentId, m.msg.value);
          break;
        default:
          break;
      }
    },
    onClose(conn) {
      if (ctx.sessions.detach(conn)) {
        ctx.agents.seen(conn.agentId, Date.now()).catch(() => undefined);
      }
    },
  };

  /** The agent on the other end, by its certificate; an expired one is refused by name, since the agent renews it itself. */
  const agentPeer = (call: CallWithAuth): Peer => {
    try {
      return authenticatePeer(call, ctx.ca, 'agent');
    } catch (err) {
      const claimed = claimedPeer(call);
      if (claimed.tlsError === 'CERT_HAS_EXPIRED' && claimed.claimedId) {
        throw new FerryError(ErrorCode.Unauthenticated, `the certificate of agent ${claimed.claimedId} expired at ${claimed.notAfter}`,
          'the agent re-authenticates with its enrolled key by itself; nothing to do unless it was revoked');
      }
      throw err;
    }
  };
  const boundary = new CallBoundary({
    api: 'session', log: ctx.log, metrics: ctx.metrics,
    caller: (call) => `agent:${agentPeer(call).id}`,
    // Name the agent whenever its certificate does, verified or not (an expired one is the usual case).
    refusedCaller: (call) => (({ claimedId, ...rest }) => ({ agent: claimedId, ...rest }))(claimedPeer(call)),
  });
  return {
    connect: boundary.bidi<AgentMessage, ControllerMessage>(async (call) => {
      const peer = agentPeer(call);
      const agent = await ctx.agents.get(peer.id);
      if (!agent) throw new FerryError(ErrorCode.Unauthenticated, `agent ${peer.id} is not enrolled here`, 'enroll again with `ferry-agent join`');
      if (agent.revokedAt !== null) {
        throw new FerryError(ErrorCode.AgentRevoked, `agent ${peer.id} was revoked by an operator`,
          'ask the fleet operator; a revoked host must be enrolled again with a new token');
      }
      // The connection owns the stream from here; the call lasts as long as the session.
      await new AgentConnection(call, peer, hooks, ctx.log.child({ agent: peer.id })).closed;
    }),
    // `ferry-agent reset`: the agent revokes itself before deleting its key,
    // so the fleet does not keep a host that is gone. `who` is `agent:<id>`
    // from the verified certificate (the boundary's caller), never the request.
    leave: boundary.unary<LeaveRequest, LeaveResponse>(async (req, who) => {
      const id = who.slice('agent:'.length);
      await ctx.agents.revoke(id, Date.now());
      ctx.sessions.get(id)?.close('agent left the fleet');
      await ctx.relays.pushAll();
      await ctx.audit.record(who, 'agent.leave', id, { reason: req.reason.slice(0, 200) });
      ctx.log.info({ agent: id, reason: req.reason }, 'agent left the fleet');
      return {};
    }),
  };
}

