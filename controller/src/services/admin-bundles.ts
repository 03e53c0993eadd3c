import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type {
  AdminServer, PrefetchEvent, PrefetchRequest, UploadChunksResponse,
} from '../../../common/src/gen/ferry/v1/admin.js';
import type { ChunkData } from '../../../common/src/gen/ferry/v1/common.js';
import { bundleInfo } from '../bundles/bundle-store.js';
import { lintStoredBundle } from '../bundles/bundle-lint.js';
import { describeTargets, type TargetRequest } from '../../../common/src/targets.js';
import type { AgentRecord } from '../store/agents.js';
import type { OperatorCalls } from './operator-call.js';
import type { ControllerContext } from './context.js';

/**
 * Chunks of one push verified and stored at once. libuv's pool has four
 * threads; more than that only queues, and each holds a chunk in memory.
 */
const UPLOAD_PUTS = 4;

/** What the admin service shares with its bundle handlers. */
export interface AdminKit extends OperatorCalls {
  /** The agents a targeted command acts on (see store/resolve-targets.ts); `command` and `example` word the refusals. */
  selectAgents(req: TargetRequest, command: string, example: string): Promise<AgentRecord[]>;
}

type BundleHandlers = Pick<AdminServer, 'addSigningKey' | 'listSigningKeys' | 'missingChunks' | 'uploadChunks' | 'commitBundle'
  | 'listBundles' | 'getBundle' | 'removeBundle' | 'prefetch' | 'lintBundle'>;

/** Signing keys, bundle upload (only missing chunks), listing, removal with chunk collection, prefetch. */
export function bundleHandlers(ctx: ControllerContext, kit: AdminKit): BundleHandlers {
  return {
    addSigningKey: kit.unary(async (req, who) => {
      const k = await ctx.bundles.addKey(req.publicPem, req.name || 'operator');
      await ctx.audit.record(who, 'key.add', k.keyId, { name: k.name });
      return k;
    }),
    listSigningKeys: kit.unary(async () => ({ keys: await ctx.bundles.keys() })),
    missingChunks: kit.unary(async (req) => ({ missing: await ctx.bundles.missing(req.digests) })),
    uploadChunks: kit.clientStream<ChunkData, UploadChunksResponse>(async (call, { who }) => {
      // Verify and store UPLOAD_PUTS chunks at a time: one is hashed on this
      // thread while others are written and fsynced on libuv's pool, and the
      // stream is paused while all of them are busy. Each chunk's data is
      // fsynced before its rename; the shard directories are fsynced once,
      // at the end, before the call answers: nothing is reported stored
      // (and no commit can follow) before its name is durable.
      const chunks = ctx.bundles.chunks;
      let stored = 0;
      let bytes = 0;
      let failed: { err: unknown } | undefined;
      const added: string[] = [];
      const busy = new Map<string, Promise<void>>();
      for await (const c of call as AsyncIterable<ChunkData>) {
        if (failed) break;
        if (busy.has(c.digest)) continue; // the same chunk twice in one stream: one put
        const data = c.data;
        const p = chunks.put(c.digest, data, { deferDirSync: true }).then((isNew) => {
          if (!isNew) return;
          ctx.bundles.served.written(c.digest, data.length); // hashed by put: no second hash on its first serve
          added.push(c.digest);
          stored++;
          bytes += data.length;
        }, (err: unknown) => {
          failed ??= { err };
        }).finally(() => busy.delete(c.digest));
        busy.set(c.digest, p);
        if (busy.size >= UPLOAD_PUTS) await Promise.race(busy.values());
      }
      await Promise.all(busy.values());
      if (failed) {
        // What was stored before the failure stays, durable like any other (a retried push skips it).
        await chunks.syncShardsOf(added).catch(() => undefined);
        throw failed.err;
      }
      await chunks.syncShardsOf(added);
      await ctx.audit.record(who, 'chunks.upload', `${stored} chunks`, { stored, bytes });
      return { stored, bytes };
    }),
    commitBundle: kit.unary(async (req, who) => {
      if (!req.signed) throw new FerryError(ErrorCode.InvalidArgument, 'no signed manifest');
      const b = await ctx.bundles.commit(req.signed);
      await ctx.audit.record(who, 'bundle.push', `${b.manifest.name}:${b.manifest.version}`, { id: b.id, keyId: b.signed.keyId });
      return bundleInfo(b);
    }),
    listBundles: kit.unary(async () => ({ bundles: (await ctx.bundles.list()).map(bundleInfo) })),
    getBundle: kit.unary(async (req) => {
      const b = await ctx.bundles.require(req.name, req.version);
      return { info: bundleInfo(b), signed: b.signed };
    }),
    removeBundle: kit.unary(async (req, who) => {
      const b = await ctx.bundles.require(req.name, req.version);
      const pub = await ctx.registry.publication(b.id);
      if (pub && !req.force) {
        throw new FerryError(ErrorCode.InvalidArgument, `${req.name}:${req.version} is published on the registry (${pub.tags.length} tags); hosts may be pulling from it`,
          `unpublish it first (\`ferry registry unpublish ${req.name}:${req.version}\`), or remove it anyway with --force`);
      }
      // Hosts of an unfinished rollout or job may be fetching its chunks right now, through any replica.
      const users = await ctx.bundles.usedBy(b.id);
      if (users.length > 0 && !req.force) {
        throw new FerryError(ErrorCode.InvalidArgument, `${req.name}:${req.version} is in use by ${users.join(', ')}; hosts may be fetching its chunks (through any replica)`,
          'wait until they finish (ferry rollout ls, ferry jobs ls), abort them, or remove it anyway with --force (hosts still fetching it then fail)');
      }
      if (pub) {
        await ctx.registry.unpublish(b.id);
        await ctx.audit.record(who, 'registry.unpublish', `${req.name}:${req.version}`, { id: b.id, tags: pub.tags.length, by: 'bundle rm --force' });
      }
      const r = await ctx.bundles.remove(req.name, req.version);
      await ctx.audit.record(who, 'bundle.rm', `${req.name}:${req.version}`, { chunksDeleted: r.chunksDeleted, bytesFreed: r.bytesFreed, force: req.force, ...(users.length ? { inUseBy: users } : {}) });
      return { removed: bundleInfo(r.removed), chunksDeleted: r.chunksDeleted, bytesFreed: r.bytesFreed };
    }),
    lintBundle: kit.unary(async (req) => {
      const b = await ctx.bundles.require(req.name, req.version);
      // An image counts as available when this bundle holds it or the registry serves it under the rewritten name.
      const findings = await lintStoredBundle(ctx.bundles, b, {
        tagDigest: (r, t) => ctx.registry.tagDigest(r, t),
        hasManifest: async (r, d) => (await ctx.registry.manifest(r, d)) !== undefined,
      });
      return { findings: findings.map((f) => ({ ...f, hint: f.hint ?? '' })) };
    }),
    prefetch: kit.serverStream<PrefetchRequest, PrefetchEvent>(async (call, { who, signal }) => {
      const b = await ctx.bundles.require(call.request.name, call.request.version);
      const targets = await kit.selectAgents(call.request, 'bundle prefetch', `ferry bundle prefetch ${b.manifest.name}:${b.manifest.version} --selector role=edge`);
      await ctx.audit.record(who, 'bundle.prefetch', `${b.manifest.name}:${b.manifest.version}`, { targets: describeTargets(call.request), hosts: targets.length });
      await ctx.prefetch.run(b, targets.map((a) => ({ agentId: a.id, hostname: a.hostname })), (ev) => { if (!signal.aborted) call.write(ev); }, signal);
      if (!signal.aborted) {
        call.write({ agentId: '', hostname: '', state: 0, bytesDone: 0, bytesTotal: 0, bytesFetched: 0, error: '', offline: false, final: true });
      }
    }),
  };
}
