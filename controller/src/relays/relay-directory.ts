/**
 * Which relays each host uses, and what each relay serves (docs/relays.md).
 * The assignment is computed from the store on every change and pushed to
 * every connected agent of this replica (and to each agent after its
 * hello), so hosts follow an operator's change without being touched.
 */
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { RelayConfig, RelayStatus } from '../../../common/src/gen/ferry/v1/session.js';
import { parseSelector } from '../../../common/src/labels.js';
import type { Logger } from '../../../common/src/log.js';
import type { CertificateAuthority } from '../pki/ca.js';
import { checkCsr } from '../pki/csr.js';
import type { SessionRegistry } from '../sessions/registry.js';
import { isIP } from 'node:net';
import type { AgentRecord, AgentStore } from '../store/agents.js';
import type { Db } from '../store/db.js';
import { RelayStore, type RelayRecord } from '../store/relays.js';
import type { BundleStore } from '../bundles/bundle-store.js';
import { RelayPinning } from './relay-pins.js';

/** The relays `agent` should use, most preferred first, and its own relay role if it is one. Pure: the rule in one place. */
export function relayConfigFor(agent: AgentRecord, relays: readonly RelayRecord[], agents: ReadonlyMap<string, AgentRecord>, connected: (id: string) => boolean): RelayConfig {
  const live = relays.filter((r) => {
    const host = agents.get(r.agentId);
    // Used only once it reported where it serves, and never once revoked.
    return r.address !== '' && host !== undefined && host.revokedAt === null;
  });
  const serves = (r: RelayRecord, id: string) => parseSelector(r.serves).matches(agents.get(id)?.labels ?? {});
  // A relay's upstream may be another relay (a region relay in front of site relays), never one
  // that fetches through it, directly or down a chain: that would be a loop.
  const reaches = (from: string, to: string, seen = new Set<string>()): boolean => {
    if (from === to) return true;
    seen.add(from);
    return live.some((u) => !seen.has(u.agentId) && u.agentId !== from && serves(u, from) && reaches(u.agentId, to, seen));
  };
  const usable = live.filter((r) => r.agentId !== agent.id && parseSelector(r.serves).matches(agent.labels) && !reaches(r.agentId, agent.id));
  // Relays with a live session first (more likely up); otherwise in the order they were enabled.
  usable.sort((a, b) => Number(connected(b.agentId)) - Number(connected(a.agentId)));
  const own = relays.find((r) => r.agentId === agent.id);
  return {
    relays: usable.map((r) => ({ agentId: r.agentId, address: r.address, registryAddress: r.status?.registryAddress ?? '' })),
    role: own && agent.revokedAt === null ? {
      listen: own.listen, cacheBytes: own.cacheBytes, advertise: own.advertise, registryListen: own.registryListen,
      revokedAgentIds: [...agents.values()].filter((a) => a.revokedAt !== null).map((a) => a.id).sort(),
    } : undefined,
  };
}

/**
 * Names a relay's certificate carries for clients that check the address
 * they dial (containerd, skopeo and curl on its registry endpoints; agents
 * check the CN and role instead): its hostname, the addresses its facts
 * report, the hosts of its listen and advertise addresses, and loopback for
 * runtimes on the relay host itself.
 */
export function relayNames(relay: RelayRecord, agent: AgentRecord): { dnsNames: string[]; ipAddresses: string[] } {
  const hosts = new Set<string>(['localhost', '127.0.0.1', '::1']);
  if (agent.hostname) hosts.add(agent.hostname);
  for (const i of agent.facts?.interfaces ?? []) for (const a of i.addresses) hosts.add(a.replace(/\/\d+$/, ''));
  for (const addr of [relay.listen, relay.advertise, relay.registryListen]) {
    const host = addr.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    if (host && host !== '0.0.0.0' && host !== '::') hosts.add(host);
  }
  const all = [...hosts];
  return { dnsNames: all.filter((h) => !isIP(h)), ipAddresses: all.filter((h) => isIP(h) !== 0) };
}

/** See module comment. One per controller process. */
export class RelayDirectory {
  readonly store: RelayStore;
  /** Bundles the relays must keep, and warm-ups before a prefetch (relay-pins.ts). */
  readonly pins: RelayPinning;

  constructor(
    db: Db,
    private readonly agents: AgentStore,
    private readonly sessions: SessionRegistry,
    private readonly ca: CertificateAuthority,
    private readonly certTtlMs: () => number,
    private readonly log: Logger,
    bundles: Pick<BundleStore, 'byId'>,
  ) {
    this.store = new RelayStore(db);
    this.pins = new RelayPinning({
      relayIds: async () => (await this.store.list()).map((r) => r.agentId),
      firstRelaysOf: (ids) => this.firstRelaysOf(ids),
    }, bundles, sessions, log);
  }

  /** The relay each of `agentIds` prefers now (its first assigned one), without repeats. */
  async firstRelaysOf(agentIds: readonly string[]): Promise<string[]> {
    const [relays, all] = await Promise.all([this.store.list(), this.agents.list(true)]);
    const byId = new Map(all.map((a) => [a.id, a]));
    const out = new Set<string>();
    for (const id of agentIds) {
      const a = byId.get(id);
      const first = a && relayConfigFor(a, relays, byId, (x) => Boolean(this.sessions.get(x))).relays[0];
      if (first) out.add(first.agentId);
    }
    return [...out];
  }

  /** Sends every connected agent its assignment (after any change that may alter one). */
  async pushAll(): Promise<void> {
    const live = this.sessions.all();
    if (live.length === 0) return;
    const [relays, all] = await Promise.all([this.store.list(), this.agents.list(true)]);
    const byId = new Map(all.map((a) => [a.id, a]));
    for (const s of live) {
      const a = byId.get(s.agentId);
      if (a) s.send({ msg: { $case: 'relays', value: relayConfigFor(a, relays, byId, (id) => Boolean(this.sessions.get(id))) } });
    }
  }

  /** Sends one agent its assignment (after its hello). */
  async push(agentId: string): Promise<void> {
    const s = this.sessions.get(agentId);
    if (!s) return;
    const [relays, all] = await Promise.all([this.store.list(), this.agents.list(true)]);
    const byId = new Map(all.map((a) => [a.id, a]));
    const a = byId.get(agentId);
    if (a) s.send({ msg: { $case: 'relays', value: relayConfigFor(a, relays, byId, (id) => Boolean(this.sessions.get(id))) } });
    await this.pins.push(agentId);
  }

  /** A relay's report: stored for `ferry relays ls`; a new address is pushed to the hosts it serves. */
  async onStatus(agentId: string, status: RelayStatus): Promise<void> {
    const moved = await this.store.report(agentId, status, Date.now());
    if (moved) {
      this.log.info({ relay: agentId, address: status.address || null, error: status.error || undefined }, 'relay address changed; telling the hosts it serves');
      await this.pushAll();
    }
  }

  /**
   * A relay asks for its server certificate: issued (role relay, CN the
   * agent id) only while the agent is an enabled, unrevoked relay.
   */
  async issueCert(agentId: string, csrPem: string): Promise<{ certPem: string; error: string }> {
    const relay = await this.store.get(agentId);
    const agent = await this.agents.get(agentId);
    if (!relay || !agent || agent.revokedAt !== null) {
      return { certPem: '', error: `agent ${agentId} is not an enabled relay; enable it with \`ferry relay enable HOST --serves SELECTOR\`` };
    }
    try {
      const csr = await checkCsr(csrPem);
      const issued = await this.ca.issue({ publicKey: csr.publicKey, commonName: agentId, role: 'relay', ttlMs: this.certTtlMs(), ...relayNames(relay, agent) });
      this.log.info({ relay: agentId, notAfter: issued.notAfter.toISOString() }, 'relay certificate issued');
      return { certPem: issued.certPem, error: '' };
    } catch (e) {
      const fe = e instanceof FerryError ? e : new FerryError(ErrorCode.Internal, String(e));
      return { certPem: '', error: fe.message };
    }
  }
}
