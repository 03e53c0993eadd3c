/**
 * Which bundles site relays must keep, and warming them ahead of the hosts
 * (docs/relays.md). A bundle is pinned while an unfinished rollout or a
 * prefetch needs it (each holds a pin, as each holds a lease on the bundle's
 * chunks here); every connected relay gets the whole pin set, with each
 * bundle's chunk digests, whenever it changes and after its hello, and never
 * evicts those chunks. A prefetch first asks the relays its hosts use to
 * fetch the bundle (`warm`) and waits for their answers, so the bundle
 * crosses each site's link once before any host asks for it.
 */
import { uniqueChunkDigests } from '../../../common/src/bundle/manifest.js';
import type { RelayPins, RelayWarmReport } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import type { BundleStore } from '../bundles/bundle-store.js';
import type { SessionRegistry } from '../sessions/registry.js';

/** What pinning needs from the relay directory. */
export interface RelayLookup {
  /** Agent ids of every enabled relay. */
  relayIds(): Promise<string[]>;
  /** The relays (most preferred per host, connected) the hosts `agentIds` fetch through. */
  firstRelaysOf(agentIds: readonly string[]): Promise<string[]>;
}

/** See module comment. One per controller process. */
export class RelayPinning {
  private readonly pins = new Map<string, { count: number; digests: string[] | undefined }>();
  /** Warm-ups waiting for a relay's answer, by `relay/bundle`. */
  private readonly waiters = new Map<string, Set<(r: RelayWarmReport | undefined) => void>>();

  constructor(
    private readonly lookup: RelayLookup,
    private readonly bundles: Pick<BundleStore, 'byId'>,
    private readonly sessions: SessionRegistry,
    private readonly log: Logger,
  ) {
    // A relay whose session drops answers no warm-up: its waiters go on without it.
    sessions.onChange((agentId, up) => {
      if (up) return;
      for (const [key, set] of this.waiters) if (key.startsWith(`${agentId}/`)) for (const w of set) w(undefined);
    });
  }

  /** Pins `bundleId` until the returned function is called (idempotent). */
  pin(bundleId: string): () => void {
    const had = this.pins.get(bundleId);
    if (had) had.count++;
    else {
      const entry: { count: number; digests: string[] | undefined } = { count: 1, digests: undefined };
      this.pins.set(bundleId, entry);
      void this.bundles.byId(bundleId).then((b) => {
        entry.digests = b ? uniqueChunkDigests(b.manifest) : [];
        if (this.pins.get(bundleId) === entry) return this.pushAll();
      }).catch((err: unknown) => this.log.warn({ err, bundleId }, 'could not pin a bundle on the relays'));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const e = this.pins.get(bundleId);
      if (!e) return;
      if (--e.count > 0) return;
      this.pins.delete(bundleId);
      void this.pushAll().catch((err: unknown) => this.log.warn({ err }, 'could not tell the relays a bundle is no longer pinned'));
    };
  }

  /** Pinned bundle ids (status, tests). */
  pinned(): string[] {
    return [...this.pins.keys()];
  }

  /** The pin set as a relay gets it, asking it to warm `warm`. */
  private message(warm: string[] = []): RelayPins {
    const pins = [...this.pins.entries()].filter(([, e]) => e.digests !== undefined).map(([bundleId, e]) => ({ bundleId, digests: e.digests! }));
    return { pins, warmBundleIds: warm };
  }

  /** Sends the pin set to one agent if it is an enabled relay (after its hello). */
  async push(agentId: string): Promise<void> {
    if (!(await this.lookup.relayIds()).includes(agentId)) return;
    this.sessions.get(agentId)?.send({ msg: { $case: 'relayPins', value: this.message() } });
  }

  /** Sends the pin set to every connected relay. */
  async pushAll(): Promise<void> {
    const msg = this.message();
    for (const id of await this.lookup.relayIds()) this.sessions.get(id)?.send({ msg: { $case: 'relayPins', value: msg } });
  }

  /**
   * Asks the relays that `targets` fetch through to cache `bundleId` (pinned
   * by the caller) and waits until each answered, dropped its session, or
   * `signal` aborted. A relay that could not warm is logged; its hosts then
   * fetch through it as usual (it fetches on demand) or fall back.
   */
  async warm(bundleId: string, targets: readonly string[], signal: AbortSignal): Promise<Array<{ relay: string; report: RelayWarmReport | undefined }>> {
    const relays = (await this.lookup.firstRelaysOf(targets)).filter((id) => this.sessions.get(id));
    if (relays.length === 0) return [];
    const entry = this.pins.get(bundleId);
    if (!entry) return [];
    if (entry.digests === undefined) {
      const b = await this.bundles.byId(bundleId);
      entry.digests = b ? uniqueChunkDigests(b.manifest) : [];
    }
    const answers = relays.map((relay) => new Promise<{ relay: string; report: RelayWarmReport | undefined }>((resolve) => {
      const key = `${relay}/${bundleId}`;
      const set = this.waiters.get(key) ?? new Set();
      const done = (report: RelayWarmReport | undefined) => {
        set.delete(done);
        if (set.size === 0) this.waiters.delete(key);
        signal.removeEventListener('abort', onAbort);
        resolve({ relay, report });
      };
      const onAbort = () => done(undefined);
      set.add(done);
      this.waiters.set(key, set);
      signal.addEventListener('abort', onAbort, { once: true });
    }));
    this.log.info({ bundleId, relays }, 'warming the relays before the hosts');
    for (const id of relays) this.sessions.get(id)?.send({ msg: { $case: 'relayPins', value: this.message([bundleId]) } });
    const out = await Promise.all(answers);
    for (const { relay, report } of out) {
      if (!report) this.log.warn({ relay, bundleId }, 'relay did not finish warming (disconnected or cancelled); its hosts fetch on demand');
      else if (report.error) this.log.warn({ relay, bundleId, err: report.error }, 'relay could not warm the bundle; its hosts fetch on demand or fall back');
    }
    return out;
  }

  /** A relay's answer to a warm-up. */
  onWarmReport(agentId: string, r: RelayWarmReport): void {
    for (const w of [...(this.waiters.get(`${agentId}/${r.bundleId}`) ?? [])]) w(r);
  }
}
