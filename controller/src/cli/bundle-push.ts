import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { BundleInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import { fromServiceError } from '../../../common/src/grpc-status.js';
import { contentDigest, uniqueChunkDigests, verifyManifest, type BundleManifest, type SignedManifest } from '../../../common/src/bundle/manifest.js';
import { checkManifest } from '../../../common/src/bundle/manifest-checks.js';
import { locateChunks, readChunk } from '../../../common/src/bundle/builder.js';
import { ProgressBar } from '../../../common/src/progress.js';
import type { Admin } from './admin-client.js';

/**
 * Where the pusher gets chunk bytes: given the digests the controller lacks,
 * yields each of them once (from the original files, or a bundle archive).
 */
export type ChunkReader = (missing: ReadonlySet<string>) => AsyncIterable<{ digest: string; data: Buffer }>;

/** A reader for chunks available by digest (files on disk, or memory). */
export function byDigest(read: (digest: string) => Promise<Buffer>): ChunkReader {
  return async function* (missing) {
    for (const digest of missing) yield { digest, data: await read(digest) };
  };
}

/**
 * A reader for the chunks of `manifest` straight from the package directory
 * it was built from. The bytes are not hashed here: the controller hashes
 * every chunk it stores (ChunkStore.put) and refuses one that does not
 * match, so a second hash on this side bought nothing but a sha256 pass over
 * the whole upload. A file changed since the build shows up as that refusal
 * (see {@link pushBundle}'s hint).
 */
export function dirReader(dir: string, manifest: BundleManifest): ChunkReader {
  const locs = locateChunks(manifest, dir);
  return byDigest((d) => readChunk(dir, locs.get(d)!));
}

export interface PushResult {
  info: BundleInfo;
  chunksTotal: number;
  chunksSent: number;
  bytesSent: number;
  /** The controller already held this name:version with the same content: nothing was sent or changed. */
  unchanged: boolean;
}

const BATCH = 5000;

/**
 * Pushes a signed bundle: checks the signature against the keys the
 * controller trusts and the manifest's shape before any byte moves (a push
 * the controller would refuse leaves nothing behind), stops there when the
 * controller already holds the same content under this name:version (see
 * contentDigest) and only re-sends chunks it lost, else asks which chunks
 * it lacks, uploads only those (one stream, honouring backpressure), then
 * commits the manifest. Re-running after an interruption sends only what is
 * still missing.
 */
export async function pushBundle(admin: Admin, signed: SignedManifest, read: ChunkReader, opts: { progress?: boolean } = {}): Promise<PushResult> {
  const { keys } = await admin.call(admin.client.listSigningKeys, {});
  if (!keys.some((k) => k.keyId === signed.keyId)) {
    throw new FerryError(ErrorCode.SignatureInvalid,
      keys.length === 0 ? 'the controller trusts no signing key yet' : `the controller does not trust ${signed.keyId}, the key this bundle is signed with`,
      'add the public key first: `ferry key add operator.pub` (hosts enrolled afterwards pin it)');
  }
  // The same checks the controller's commit makes, so they fail here and not after the upload.
  const manifest = verifyManifest(signed, keys.map((k) => k.publicPem));
  checkManifest(manifest, 'nothing was sent');
  const all = uniqueChunkDigests(manifest);
  const stored = await storedContent(admin, manifest);
  if (stored) {
    if (stored.digest !== contentDigest(manifest)) {
      throw new FerryError(ErrorCode.AlreadyExists, `${manifest.name}:${manifest.version} already exists on the controller with different content; nothing was sent`,
        `bump the version, or remove the old one first: ferry bundle rm ${manifest.name}:${manifest.version}`);
    }
  }
  const sizes = new Map<string, number>();
  for (const f of manifest.files) for (const c of f.chunks) sizes.set(c.digest, c.size);
  const missing: string[] = [];
  for (let i = 0; i < all.length; i += BATCH) {
    missing.push(...(await admin.call(admin.client.missingChunks, { digests: all.slice(i, i + BATCH) })).missing);
  }
  const toSend = missing.reduce((n, d) => n + sizes.get(d)!, 0);
  const bar = new ProgressBar(`push ${manifest.name}:${manifest.version}`, toSend, process.stderr, opts.progress !== false);
  let sent = 0;
  if (missing.length > 0) {
    await new Promise<void>((resolve, reject) => {
      const call = admin.client.uploadChunks((err) => {
        if (!err) return resolve();
        const fe = fromServiceError(err);
        if (fe.code !== ErrorCode.ChunkDigestMismatch) return reject(admin.explain(fe));
        // The controller hashes what it stores; read from a directory, this means a file changed after the build.
        reject(new FerryError(fe.code, `the controller refused a chunk: ${fe.message}; nothing of ${manifest.name}:${manifest.version} was committed`,
          'a file in the package changed since the manifest was built (or the archive is damaged): build the bundle again and push it', { cause: err }));
      });
      (async () => {
        const wanted = new Set(missing);
        for await (const { digest, data } of read(wanted)) {
          if (!wanted.delete(digest)) continue;
          if (!call.write({ digest, data })) await new Promise<void>((r) => call.once('drain', () => r()));
          sent += data.length;
          bar.update(sent);
        }
        if (wanted.size > 0) throw new FerryError(ErrorCode.BundleInvalid, `${wanted.size} chunks the manifest lists are not in the source (first: ${[...wanted][0]})`, 'rebuild the bundle');
        call.end();
      })().catch((err) => {
        call.cancel();
        reject(err instanceof FerryError ? err : new FerryError(ErrorCode.Internal, String(err)));
      });
    });
  }
  bar.finish(sent, `${missing.length} of ${all.length} chunks sent`);
  // The same content again: the stored manifest stays (agents hold it by id);
  // any chunks sent above were ones the controller had lost, now repaired.
  const info = stored ? stored.info : await admin.call(admin.client.commitBundle, { signed });
  return { info, chunksTotal: all.length, chunksSent: missing.length, bytesSent: sent, unchanged: Boolean(stored) };
}

/** The content digest and info of the bundle the controller holds under this name:version, if any. */
async function storedContent(admin: Admin, m: BundleManifest): Promise<{ digest: string; info: BundleInfo } | undefined> {
  const { bundles } = await admin.call(admin.client.listBundles, {});
  if (!bundles.some((b) => b.name === m.name && b.version === m.version)) return undefined;
  const { info, signed } = await admin.call(admin.client.getBundle, { name: m.name, version: m.version });
  return { digest: contentDigest(JSON.parse(signed!.manifest) as BundleManifest), info: info! };
}
