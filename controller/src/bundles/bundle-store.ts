import { createPublicKey } from 'node:crypto';
import { statSync } from 'node:fs';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { BundleInfo, SigningKeyInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import type { SignedManifest as WireSigned } from '../../../common/src/gen/ferry/v1/common.js';
import { ChunkStore } from '../../../common/src/bundle/chunk-store.js';
import { bundleId, contentDigest, keyIdOf, uniqueChunkDigests, verifyManifest, type BundleManifest, type SignedManifest } from '../../../common/src/bundle/manifest.js';
import { checkManifest } from '../../../common/src/bundle/manifest-checks.js';
import { ServedChunks } from '../../../common/src/bundle/served-chunks.js';
import { assertRelease } from '../../../common/src/bundle/agent-release.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import { checkFileDigests } from './file-digests.js';
import type { Db } from '../store/db.js';

interface BundleRow {
  id: string; name: string; version: string; signed_manifest: string; key_id: string; size_bytes: number; created_at: number;
}

/** A committed bundle: its row plus the parsed manifest. */
export interface StoredBundle {
  id: string;
  signed: SignedManifest;
  manifest: BundleManifest;
  createdAt: number;
}

/** Chunks uploaded less than this long ago are never collected: a push may still be about to commit them. */
const UPLOAD_GRACE_MS = 60 * 60_000;

export function bundleInfo(b: StoredBundle): BundleInfo {
  const m = b.manifest;
  return {
    bundleId: b.id, name: m.name, version: m.version, arch: m.arch, files: m.files.length, images: m.images.length,
    sizeBytes: m.files.reduce((n, f) => n + f.size, 0), chunks: new Set(m.files.flatMap((f) => f.chunks.map((c) => c.digest))).size,
    keyId: b.signed.keyId, createdAtMs: b.createdAt, imageRefs: m.images.flatMap((i) => i.refs),
  };
}

/**
 * The controller's bundles: signed manifests in the store, chunk bytes in a
 * content-addressed directory shared by every bundle. A bundle is committed
 * only when its signature verifies against a trusted operator key, every
 * chunk it references is present and every file's chunks produce its
 * manifest sha256, so agents are never sent a bundle the controller cannot
 * serve or one whose files do not match their own manifest.
 */
export class BundleStore {
  readonly chunks: ChunkStore;
  /** Reads chunks for agents (Chunks.Fetch), hashing each once per process; see served-chunks.ts. */
  readonly served: ServedChunks;
  /** Bundles being served right now: their chunks survive garbage collection even if the bundle is removed. */
  private readonly leases = new Map<string, number>();

  /** `controllerVersion` bounds the agent releases this store accepts (tests pass another). */
  constructor(private readonly db: Db, chunkDir: string, private readonly controllerVersion: string = FERRY_VERSION) {
    this.chunks = new ChunkStore(chunkDir);
    this.served = new ServedChunks(this.chunks);
  }

  async addKey(publicPem: string, name: string): Promise<SigningKeyInfo> {
    let keyId: string;
    try {
      const key = createPublicKey(publicPem);
      if (key.asymmetricKeyType !== 'ed25519') throw new Error(`a ${key.asymmetricKeyType} key`);
      keyId = keyIdOf(key);
    } catch (err) {
      throw new FerryError(ErrorCode.InvalidArgument, `not an ed25519 public key: ${(err as Error).message}`, 'use the .pub file written by `ferry key gen`');
    }
    const at = Date.now();
    const existing = await this.db.get<{ key_id: string }>('SELECT key_id FROM signing_keys WHERE key_id = ?', [keyId]);
    if (!existing) await this.db.run('INSERT INTO signing_keys (key_id, name, public_pem, added_at) VALUES (?, ?, ?, ?)', [keyId, name, publicPem, at]);
    return (await this.keys()).find((k) => k.keyId === keyId)!;
  }

  async keys(): Promise<SigningKeyInfo[]> {
    const rows = await this.db.all<{ key_id: string; name: string; public_pem: string; added_at: number }>('SELECT * FROM signing_keys ORDER BY added_at');
    return rows.map((r) => ({ keyId: r.key_id, name: r.name, publicPem: r.public_pem, addedAtMs: Number(r.added_at) }));
  }

  async missing(digests: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const d of new Set(digests)) if (!(await this.chunks.has(d))) out.push(d);
    return out;
  }

  async commit(signed: WireSigned): Promise<StoredBundle> {
    const trusted = (await this.keys()).map((k) => k.publicPem);
    if (trusted.length === 0) {
      throw new FerryError(ErrorCode.SignatureInvalid, 'the controller trusts no signing key yet',
        'add your public key first: `ferry key add operator.pub` (agents enrolled afterwards pin it)');
    }
    const manifest = verifyManifest(signed, trusted);
    checkManifest(manifest, 'it was not committed');
    // A bundle named like an agent release must be one hosts can install (agent-release.ts).
    assertRelease(manifest, this.controllerVersion);
    const digests = uniqueChunkDigests(manifest);
    const missing = await this.missing(digests);
    if (missing.length > 0) {
      throw new FerryError(ErrorCode.BundleInvalid, `${missing.length} of ${digests.length} chunks of ${manifest.name}:${manifest.version} are not on the controller (first: ${missing[0]})`,
        'upload the chunks before committing (`ferry bundle push` does this)');
    }
    const id = bundleId(signed);
    const dup = await this.db.get<BundleRow>('SELECT * FROM bundles WHERE name = ? AND version = ?', [manifest.name, manifest.version]);
    // Same files, images and rewrites under a new createdAt or signature: the
    // stored bundle stays as it is (agents may hold it by id) and the push is a no-op.
    if (dup && dup.id !== id && contentDigest(fromRow(dup).manifest) !== contentDigest(manifest)) {
      throw new FerryError(ErrorCode.AlreadyExists, `${manifest.name}:${manifest.version} already exists with different content`,
        `bump the version, or remove the old one first: ferry bundle rm ${manifest.name}:${manifest.version}`);
    }
    if (!dup) {
      // The one whole-file check of this bundle's bytes (file-digests.ts); agents rely on it.
      await checkFileDigests(manifest, this.chunks);
      await this.db.run('INSERT INTO bundles (id, name, version, signed_manifest, key_id, size_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        [id, manifest.name, manifest.version, JSON.stringify(signed), signed.keyId, manifest.files.reduce((n, f) => n + f.size, 0), Date.now()]);
    }
    return (await this.get(manifest.name, manifest.version))!;
  }

  async list(): Promise<StoredBundle[]> {
    return (await this.db.all<BundleRow>('SELECT * FROM bundles ORDER BY name, created_at')).map(fromRow);
  }

  async get(name: string, version: string): Promise<StoredBundle | undefined> {
    const r = await this.db.get<BundleRow>('SELECT * FROM bundles WHERE name = ? AND version = ?', [name, version]);
    return r && fromRow(r);
  }

  async require(name: string, version: string): Promise<StoredBundle> {
    const b = await this.get(name, version);
    if (!b) throw new FerryError(ErrorCode.NotFound, `no bundle ${name}:${version}`, 'list bundles with `ferry bundle ls`');
    return b;
  }

  async byId(id: string): Promise<StoredBundle | undefined> {
    const r = await this.db.get<BundleRow>('SELECT * FROM bundles WHERE id = ?', [id]);
    return r && fromRow(r);
  }

  /** Holds a bundle's chunks against collection while it is being served. */
  lease(id: string): () => void {
    this.leases.set(id, (this.leases.get(id) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.leases.get(id) ?? 1) - 1;
      if (n <= 0) this.leases.delete(id);
      else this.leases.set(id, n);
    };
  }

  /**
   * What in the store still needs bundle `id`: rollouts not finished and
   * host jobs under way (dispatched or running) whose job names it. The
   * store is what every replica sees, so this holds whichever replica is
   * streaming the bundle's chunks to those hosts; the in-memory leases
   * above only protect streams on this replica. Each entry reads like
   * "rollout ro-1a2b (running)".
   */
  async usedBy(id: string): Promise<string[]> {
    const like = `%${id}%`; // a prefilter; the JSON is checked below
    const names = (json: string | null) => {
      try {
        const v = JSON.parse(json ?? 'null') as { bundleId?: string }[] | { bundles?: { bundleId?: string }[] } | null;
        return (Array.isArray(v) ? v : v?.bundles ?? []).some((b) => b.bundleId === id);
      } catch {
        return false;
      }
    };
    const rollouts = await this.db.all<{ id: string; state: string; bundles: string }>(
      "SELECT id, state, bundles FROM rollouts WHERE state NOT IN ('succeeded', 'failed', 'aborted') AND bundles LIKE ? ORDER BY id", [like]);
    const jobs = await this.db.all<{ id: string; dispatch: string | null; n: number }>(
      `SELECT j.id AS id, j.dispatch AS dispatch, COUNT(*) AS n FROM job_hosts h JOIN jobs j ON j.id = h.job_id
        WHERE h.state IN ('dispatched', 'running') AND j.dispatch LIKE ? GROUP BY j.id, j.dispatch ORDER BY j.id`, [like]);
    const inRollouts = new Set(rollouts.filter((r) => names(r.bundles)).map((r) => r.id));
    const rolloutJobs = inRollouts.size === 0 ? new Set<string>()
      : new Set((await this.db.all<{ job_id: string }>(`SELECT job_id FROM rollouts WHERE id IN (${[...inRollouts].map(() => '?').join(', ')})`, [...inRollouts])).map((r) => r.job_id));
    return [
      ...rollouts.filter((r) => inRollouts.has(r.id)).map((r) => `rollout ${r.id} (${r.state})`),
      // A rollout's own job is named by the rollout already.
      ...jobs.filter((j) => names(j.dispatch) && !rolloutJobs.has(j.id)).map((j) => `job ${j.id} (${Number(j.n)} host${Number(j.n) === 1 ? '' : 's'} under way)`),
    ];
  }

  /**
   * Removes a bundle and collects chunks nothing references any more. Chunks
   * of bundles being served (leases) and recently uploaded chunks (a push in
   * flight) are kept.
   */
  async remove(name: string, version: string, leasedManifests: () => Promise<BundleManifest[]> = async () => []): Promise<{ removed: StoredBundle; chunksDeleted: number; bytesFreed: number }> {
    const removed = await this.require(name, version);
    const leased = this.leases.has(removed.id) ? [removed.manifest] : [];
    await this.db.run('DELETE FROM bundles WHERE id = ?', [removed.id]);
    await this.db.run('DELETE FROM agent_bundles WHERE bundle_id = ?', [removed.id]);
    const keep = new Set<string>();
    const manifests = [...(await this.list()).map((b) => b.manifest), ...leased, ...(await leasedManifests())];
    for (const m of manifests) for (const f of m.files) for (const c of f.chunks) keep.add(c.digest);
    let chunksDeleted = 0;
    let bytesFreed = 0;
    const now = Date.now();
    for await (const d of this.chunks.list()) {
      if (keep.has(d)) continue;
      const st = statSync(this.chunks.pathOf(d), { throwIfNoEntry: false });
      if (!st || now - st.mtimeMs < UPLOAD_GRACE_MS) continue;
      await this.chunks.remove(d);
      chunksDeleted++;
      bytesFreed += st.size;
    }
    return { removed, chunksDeleted, bytesFreed };
  }
}

function fromRow(r: BundleRow): StoredBundle {
  const signed = JSON.parse(r.signed_manifest) as SignedManifest;
  return { id: r.id, signed, manifest: JSON.parse(signed.manifest) as BundleManifest, createdAt: Number(r.created_at) };
}
