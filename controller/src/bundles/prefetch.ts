import { BundleState, type BundleProgress, type HeldBundle } from '../../../common/src/gen/ferry/v1/session.js';
import { ErrorCode } from '../../../common/src/errors.js';
import type { PrefetchEvent } from '../../../common/src/gen/ferry/v1/admin.js';
import type { Logger } from '../../../common/src/log.js';
import type { Db } from '../store/db.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { BundleStore, StoredBundle } from './bundle-store.js';
import type { RelayPinning } from '../relays/relay-pins.js';

const STATE_NAMES: Record<number, string> = {
  [BundleState.BUNDLE_STATE_FETCHING]: 'fetching',
  [BundleState.BUNDLE_STATE_READY]: 'ready',
  [BundleState.BUNDLE_STATE_FAILED]: 'failed',
};

type Listener = (p: BundleProgress) => void;

/** How often a prefetch started here reads back the progress of a host on another replica (that replica writes it every ~2 s). */
const FOLLOW_MS = 500;
/** How often it checks that such a host still has a session somewhere. */
const PRESENCE_MS = 2000;

/**
 * Several replicas (docs/ha.md): which agents have a session on another
 * live replica, and a wake-up for those replicas' mailboxes.
 */
export interface PrefetchElsewhere {
  connected(): Promise<Set<string>>;
  hint(): void;
}

/**
 * Stages bundles on agents and tracks which host holds what. A stage that a
 * dropped link interrupted is sent again when the agent says hello, and the
 * agent resumes from its staging cache, so nothing verified is fetched twice.
 */
export class PrefetchCoordinator {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly lastWrite = new Map<string, number>();
  /** Site relays (set once the relay directory exists): a prefetch pins its bundle on them and warms them first. */
  relays: Pick<RelayPinning, 'pin' | 'warm'> | undefined;
  /** Set with several replicas: hosts on other replicas are staged through the store (deliver() there). */
  elsewhere: PrefetchElsewhere | undefined;
  /** The stages each live session was sent, so the mailbox sends each once per session. */
  private readonly sent = new WeakMap<object, Set<string>>();

  constructor(private readonly db: Db, private readonly sessions: SessionRegistry, private readonly bundles: BundleStore, private readonly log: Logger) {}

  /** Bundles (name:version) each agent holds, for `ferry agents ls`. */
  async heldNames(): Promise<Map<string, string[]>> {
    const rows = await this.db.all<{ agent_id: string; name: string; version: string }>(
      `SELECT ab.agent_id, b.name, b.version FROM agent_bundles ab JOIN bundles b ON b.id = ab.bundle_id
       WHERE ab.state = 'ready' ORDER BY b.name, b.version`);
    const out = new Map<string, string[]>();
    for (const r of rows) out.set(r.agent_id, [...(out.get(r.agent_id) ?? []), `${r.name}:${r.version}`]);
    return out;
  }

  async isHeld(agentId: string, bundleId: string): Promise<boolean> {
    return Boolean(await this.db.get('SELECT 1 AS x FROM agent_bundles WHERE agent_id = ? AND bundle_id = ? AND state = ?', [agentId, bundleId, 'ready']));
  }

  /** Hello: record what the agent holds, and resend stages it did not finish. */
  async onHello(agentId: string, held: HeldBundle[]): Promise<void> {
    const now = Date.now();
    const heldIds = new Set(held.map((h) => h.bundleId));
    const rows = await this.db.all<{ bundle_id: string; state: string }>('SELECT bundle_id, state FROM agent_bundles WHERE agent_id = ?', [agentId]);
    for (const r of rows) {
      if (r.state === 'ready' && !heldIds.has(r.bundle_id)) await this.db.run('DELETE FROM agent_bundles WHERE agent_id = ? AND bundle_id = ?', [agentId, r.bundle_id]);
    }
    for (const h of held) {
      if (!(await this.bundles.byId(h.bundleId))) continue; // staged from a bundle since removed here
      await this.upsert(agentId, h.bundleId, 'ready', 0, 0, '', now);
    }
    for (const r of rows.filter((x) => x.state === 'fetching' && !heldIds.has(x.bundle_id))) {
      const b = await this.bundles.byId(r.bundle_id);
      if (b) this.sendStage(agentId, b);
    }
  }

  async onProgress(agentId: string, p: BundleProgress): Promise<void> {
    const key = `${agentId}/${p.bundleId}`;
    const state = STATE_NAMES[p.state] ?? 'fetching';
    // Progress arrives a few times a second; the store needs state changes and an occasional update.
    const last = this.lastWrite.get(key) ?? 0;
    if (state !== 'fetching' || Date.now() - last > 2000) {
      this.lastWrite.set(key, Date.now());
      await this.upsert(agentId, p.bundleId, state, p.bytesDone, p.bytesTotal, p.error, Date.now());
    }
    // The agent found a chunk that does not hash to its digest: the controller
    // serves chunks it verified once without hashing them again, so hash
    // every chunk again on its next serve; the bad one is then dropped (DATA_LOSS).
    if (p.state === BundleState.BUNDLE_STATE_FAILED && p.errorCode === ErrorCode.ChunkDigestMismatch) {
      this.log.warn({ agent: agentId, bundleId: p.bundleId, err: p.error }, 'an agent received a corrupt chunk; chunks are verified again on their next serve');
      this.bundles.served.forget();
    }
    for (const l of this.listeners.get(key) ?? []) l(p);
  }

  /** Stages `bundle` on `targets`, streaming progress until every host is ready, failed or offline. */
  async run(bundle: StoredBundle, targets: Array<{ agentId: string; hostname: string }>, sink: (ev: PrefetchEvent) => void, signal: AbortSignal): Promise<void> {
    const total = bundle.manifest.files.reduce((n, f) => n + f.size, 0);
    const base = (t: { agentId: string; hostname: string }): PrefetchEvent => ({
      agentId: t.agentId, hostname: t.hostname, state: BundleState.BUNDLE_STATE_FETCHING, bytesDone: 0, bytesTotal: total,
      bytesFetched: 0, error: '', offline: false, final: false,
    });
    const release = this.bundles.lease(bundle.id);
    const unpin = this.relays?.pin(bundle.id);
    try {
      // The relays first, then the hosts: each site's link carries the bundle once, at the relay's (capped) upstream rate.
      const remote = this.elsewhere && targets.some((t) => !this.sessions.get(t.agentId)) ? await this.elsewhere.connected() : new Set<string>();
      const wanted = [];
      for (const t of targets) if ((this.sessions.get(t.agentId) || remote.has(t.agentId)) && !(await this.isHeld(t.agentId, bundle.id))) wanted.push(t.agentId);
      if (this.relays && wanted.length > 0) await this.relays.warm(bundle.id, wanted, signal);
      if (signal.aborted) return; // cancelled while the relays warmed: no host was asked yet
      await Promise.all(targets.map(async (t) => {
        if (!this.sessions.get(t.agentId) && !remote.has(t.agentId)) {
          sink({ ...base(t), state: BundleState.BUNDLE_STATE_FAILED, offline: true, error: 'not connected' });
          return;
        }
        if (await this.isHeld(t.agentId, bundle.id)) {
          sink({ ...base(t), state: BundleState.BUNDLE_STATE_READY, bytesDone: total });
          return;
        }
        if (!this.sessions.get(t.agentId)) {
          await this.runElsewhere(t.agentId, bundle, total, (p) => sink({ ...base(t), ...p }), signal);
          return;
        }
        await new Promise<void>((resolve) => {
          const key = `${t.agentId}/${bundle.id}`;
          const l: Listener = (p) => {
            sink({ ...base(t), state: p.state, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal || total, bytesFetched: p.bytesFetched, error: p.error });
            if (p.state === BundleState.BUNDLE_STATE_READY || p.state === BundleState.BUNDLE_STATE_FAILED) done();
          };
          // A host whose session drops mid-stage is reported offline at once rather than
          // waited for: its stage resumes from its cache when it reconnects (onHello).
          const off = this.sessions.onChange((agentId, up) => {
            if (agentId !== t.agentId || up) return;
            sink({ ...base(t), state: BundleState.BUNDLE_STATE_FAILED, offline: true,
              error: 'disconnected while staging; it resumes from what it has when it reconnects' });
            done();
          });
          const done = () => {
            this.listeners.get(key)?.delete(l);
            signal.removeEventListener('abort', done);
            off();
            resolve();
          };
          this.listeners.set(key, (this.listeners.get(key) ?? new Set()).add(l));
          signal.addEventListener('abort', done, { once: true });
          void this.upsert(t.agentId, bundle.id, 'fetching', 0, total, '', Date.now()).then(() => this.sendStage(t.agentId, bundle));
        });
      }));
    } finally {
      unpin?.();
      release();
    }
  }

  private sendStage(agentId: string, b: StoredBundle): void {
    const session = this.sessions.get(agentId);
    if (!session) return;
    this.log.info({ agent: agentId, bundle: `${b.manifest.name}:${b.manifest.version}` }, 'staging bundle');
    const sent = this.sent.get(session) ?? new Set<string>();
    this.sent.set(session, sent.add(b.id));
    session.send({ msg: { $case: 'bundleStage', value: { bundleId: b.id, signed: b.signed } } });
  }

  /**
   * The mailbox side (jobs/job-mailbox.ts polls and hints): stages recorded
   * in the store by a prefetch on another replica (agent_bundles rows in
   * state fetching) for agents connected here, each sent once per session.
   * The agent answers a stage it already runs or holds with its progress, so
   * a resend costs nothing but a message.
   */
  async deliver(): Promise<void> {
    if (this.sessions.size === 0) return;
    const rows = await this.db.all<{ agent_id: string; bundle_id: string }>("SELECT agent_id, bundle_id FROM agent_bundles WHERE state = 'fetching'");
    for (const r of rows) {
      const session = this.sessions.get(r.agent_id);
      if (!session || this.sent.get(session)?.has(r.bundle_id)) continue;
      const b = await this.bundles.byId(r.bundle_id);
      if (b) this.sendStage(r.agent_id, b);
    }
  }

  /**
   * A host whose session is on another replica: record the stage for that
   * replica's mailbox, wake it, and follow the host's progress in the store
   * until it is ready, failed, gone offline, or the caller stops.
   */
  private async runElsewhere(agentId: string, bundle: StoredBundle, total: number, sink: (p: Pick<PrefetchEvent, 'state' | 'bytesDone' | 'bytesTotal' | 'error' | 'offline'>) => void, signal: AbortSignal): Promise<void> {
    await this.upsert(agentId, bundle.id, 'fetching', 0, total, '', Date.now());
    this.elsewhere!.hint();
    let lastDone = -1;
    let lastPresence = Date.now();
    while (!signal.aborted) {
      await new Promise<void>((res) => { const t = setTimeout(res, FOLLOW_MS); signal.addEventListener('abort', () => { clearTimeout(t); res(); }, { once: true }); });
      if (signal.aborted) return;
      const row = await this.db.get<{ state: string; bytes_done: number; bytes_total: number; error: string }>(
        'SELECT state, bytes_done, bytes_total, error FROM agent_bundles WHERE agent_id = ? AND bundle_id = ?', [agentId, bundle.id]);
      const state = row?.state === 'ready' ? BundleState.BUNDLE_STATE_READY : row?.state === 'failed' ? BundleState.BUNDLE_STATE_FAILED : BundleState.BUNDLE_STATE_FETCHING;
      const done = row ? Number(row.bytes_done) : 0;
      if (state !== BundleState.BUNDLE_STATE_FETCHING || done !== lastDone) {
        lastDone = done;
        sink({ state, bytesDone: state === BundleState.BUNDLE_STATE_READY ? total : done, bytesTotal: Number(row?.bytes_total) || total, error: row?.error ?? '', offline: false });
        if (state !== BundleState.BUNDLE_STATE_FETCHING) return;
      }
      if (Date.now() - lastPresence >= PRESENCE_MS) {
        lastPresence = Date.now();
        if (!this.sessions.get(agentId) && !(await this.elsewhere!.connected()).has(agentId)) {
          sink({ state: BundleState.BUNDLE_STATE_FAILED, bytesDone: done, bytesTotal: total, error: 'disconnected while staging; it resumes from what it has when it reconnects', offline: true });
          return;
        }
      }
    }
  }

  private async upsert(agentId: string, bundleId: string, state: string, done: number, total: number, error: string, at: number): Promise<void> {
    const res = await this.db.run('UPDATE agent_bundles SET state = ?, bytes_done = ?, bytes_total = ?, error = ?, updated_at = ? WHERE agent_id = ? AND bundle_id = ?',
      [state, done, total, error, at, agentId, bundleId]);
    if (res.changes === 0) {
      await this.db.run('INSERT INTO agent_bundles (agent_id, bundle_id, state, bytes_done, bytes_total, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        [agentId, bundleId, state, done, total, error, at]);
    }
  }
}
