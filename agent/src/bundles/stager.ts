import { BundleState, type BundleStage, type BundleProgress } from '../../../common/src/gen/ferry/v1/session.js';
import { asFerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import type { AgentState } from '../state/agent-state.js';
import type { BundleCache } from './bundle-cache.js';
import type { ChunkSource } from './chunk-source.js';

/**
 * Stages bundles the controller asks for (prefetch, or a job's bundles),
 * one run per bundle at a time, reporting progress to whoever listens. The
 * chunk channel is separate from the session, so bulk bytes never delay
 * control messages.
 */
export class BundleStager {
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(
    private readonly cache: BundleCache,
    private readonly state: AgentState,
    /** Where chunks come from for one stage: the controller, through the host's relays first (session/agent-work.ts). */
    private readonly openSource: () => ChunkSource & { close(): void },
    private readonly log: Logger,
    private readonly bandwidthBytesPerSec = 0,
  ) {}

  /** Stages `req` unless it is staged or staging; progress and the final state go to `report`. */
  stage(req: BundleStage, report: (p: BundleProgress) => void, signal?: AbortSignal, localFiles?: readonly string[]): Promise<void> {
    const running = this.inFlight.get(req.bundleId);
    if (running) return running;
    const p = this.run(req, report, signal, localFiles).finally(() => this.inFlight.delete(req.bundleId));
    this.inFlight.set(req.bundleId, p);
    return p;
  }

  private async run(req: BundleStage, report: (p: BundleProgress) => void, signal?: AbortSignal, localFiles?: readonly string[]): Promise<void> {
    const base = { bundleId: req.bundleId, bytesFetched: 0, error: '', errorCode: '', relayFallbacks: [] };
    const loaded = this.state.load();
    const source = this.openSource();
    try {
      const r = await this.cache.stage(req.signed!, {
        trustedKeys: loaded.identity.operatorKeys, source, expectedBundleId: req.bundleId, signal,
        bandwidthBytesPerSec: this.bandwidthBytesPerSec, localFiles,
        onProgress: (p) => report({ ...base, state: BundleState.BUNDLE_STATE_FETCHING, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, bytesFetched: p.bytesFetched }),
      });
      const total = JSON.parse(req.signed!.manifest).files.reduce((n: number, f: { size: number }) => n + f.size, 0) as number;
      this.log.info({ bundleId: req.bundleId, fetched: r.bytesFetched, reused: r.bytesReused }, 'bundle staged');
      report({ ...base, state: BundleState.BUNDLE_STATE_READY, bytesDone: total, bytesTotal: total, bytesFetched: r.bytesFetched });
    } catch (err) {
      const fe = asFerryError(err);
      this.log.warn({ bundleId: req.bundleId, code: fe.code, err: fe.message }, 'staging failed');
      report({ ...base, state: BundleState.BUNDLE_STATE_FAILED, bytesDone: 0, bytesTotal: 0, error: fe.describe(), errorCode: fe.code });
      throw fe;
    } finally {
      source.close();
    }
  }
}
