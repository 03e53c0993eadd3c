/**
 * What one pass over an image tar leaves behind: per file its size and digests, small JSON
 * files' bytes, and link targets. The OCI and docker-archive resolvers work from this alone, so
 * tars are read exactly once and layers are never held in memory.
 */
import { createHash, type Hash } from 'node:crypto';
import { isSha256Hex } from './digest.js';
import { ImageBlobDigestMismatchError, ImageBlobMissingError, ImageMetadataError } from './errors.js';
import type { TarEntry, TarEntrySink } from './tar-reader.js';

/** Per-image result. Digests are OCI-style strings: `"sha256:<64 hex>"`. */
export interface ImageInfo {
  /**
   * Image references as written in the tar, not normalised (`nginx:1.27` and
   * `docker.io/library/nginx:1.27` may both appear). From `io.containerd.image.name`, then
   * `org.opencontainers.image.ref.name` (a bare tag only if nothing better exists), then
   * docker-archive RepoTags / `repositories`. May be empty for untagged images.
   */
  refs: string[];
  platform: ImagePlatform;
  manifestDigest: string;
  /** True for docker-archive, where no manifest exists and the digest is computed (see image-docker.ts). */
  manifestDigestSynthetic: boolean;
  configDigest: string;
  layers: ImageLayer[];
  /** `rootfs.diff_ids` from the config: digests of the uncompressed layers. */
  diffIds: string[];
  /** Config size plus the sizes of all layers, as stored (compressed if they are compressed). */
  totalSize: number;
}

/** os/architecture/variant from the image config. */
export interface ImagePlatform {
  os: string;
  architecture: string;
  variant?: string;
}

/** One layer as stored in the tar. */
export interface ImageLayer {
  digest: string;
  size: number;
  mediaType: string;
}

/** Recorded per regular file. */
export interface IndexedFile {
  size: number;
  /** Where the file's bytes start in the (uncompressed) tar. */
  offset: number;
  sha256: string;
  /** Hex digest in the algorithm named by a `blobs/<alg>/` path, when that is not sha256. */
  altDigest?: string;
  /** First bytes, for compression sniffing. */
  head: Buffer;
  /** Full content if the file is small and looks like JSON; undefined otherwise. */
  json?: Buffer;
}

const BLOB_PATH = /^blobs\/([a-z0-9]+)\/([^/]+)$/;
const ALG_HEX_LEN: Record<string, number> = { sha256: 64, sha512: 128 };
const MAX_LINK_HOPS = 40;

/** Parse `"sha256:<hex>"`; throws ImageMetadataError for anything else. */
export function parseDigest(d: unknown, where: string): { alg: string; hex: string } {
  const m = typeof d === 'string' ? /^([a-z0-9]+):([0-9a-f]+)$/.exec(d) : null;
  if (!m || ALG_HEX_LEN[m[1]!] !== m[2]!.length) throw new ImageMetadataError(`${where}: unsupported or malformed digest ${JSON.stringify(d)}`);
  return { alg: m[1]!, hex: m[2]! };
}

/** Files and links of one image tar, plus lookups that throw the right typed errors. */
export class TarIndex {
  readonly files = new Map<string, IndexedFile>();
  readonly links = new Map<string, string>();
  private metadataBytes = 0;

  constructor(private readonly maxMetadataBytes: number) {}

  /** TarReader handler: hash every file, keep small JSON, verify `blobs/<alg>/<hex>` names. */
  onEntry(e: TarEntry): TarEntrySink | undefined {
    this.files.delete(e.name);
    this.links.delete(e.name);
    if (e.type === 'symlink' || e.type === 'hardlink') this.links.set(e.name, e.linkTarget!);
    if (e.type !== 'file') return undefined;
    const blob = BLOB_PATH.exec(e.name);
    const sha = createHash('sha256');
    const alt: Hash | undefined = blob && blob[1] !== 'sha256' && ALG_HEX_LEN[blob[1]!] ? createHash(blob[1]!) : undefined;
    let json: Buffer[] | undefined = e.size <= this.maxMetadataBytes ? [] : undefined;
    let head = Buffer.alloc(0);
    return {
      data: (chunk) => {
        sha.update(chunk);
        alt?.update(chunk);
        if (head.length < 4) head = Buffer.concat([head, chunk.subarray(0, 4 - head.length)]);
        // Manifests/configs/index.json start with '{' or '['; layers never do, so this keeps
        // small layers out of memory.
        if (json && json.length === 0 && head[0] !== 0x7b && head[0] !== 0x5b) json = undefined;
        if (json) {
          this.metadataBytes += chunk.length;
          if (this.metadataBytes > 16 * this.maxMetadataBytes) throw new ImageMetadataError('image tar holds too many JSON files');
          json.push(Buffer.from(chunk));
        }
      },
      end: () => {
        const f: IndexedFile = { size: e.size, offset: e.dataOffset, sha256: sha.digest('hex'), head, json: json && Buffer.concat(json) };
        if (alt) f.altDigest = alt.digest('hex');
        if (blob) checkBlobName(e.name, blob[1]!, blob[2]!, f);
        this.files.set(e.name, f);
      },
    };
  }

  /** After the pass: a link under `blobs/` must resolve to content matching the link's own name. */
  checkLinkedBlobs(): void {
    for (const name of this.links.keys()) {
      const blob = BLOB_PATH.exec(name);
      const f = this.file(name);
      if (blob && f) checkBlobName(name, blob[1]!, blob[2]!, f);
    }
  }

  /** Look up a file by path, following symlinks and hardlinks. Undefined if absent. */
  file(name: string): IndexedFile | undefined {
    let cur = name;
    for (let hops = 0; hops <= MAX_LINK_HOPS; hops++) {
      const f = this.files.get(cur);
      if (f) return f;
      const next = this.links.get(cur);
      if (next === undefined) return undefined;
      cur = next;
    }
    throw new ImageMetadataError(`link loop at ${JSON.stringify(name)}`);
  }

  /** A blob by digest, checked against the descriptor size. Throws ImageBlobMissingError if absent. */
  blob(digest: string, size: number | undefined, referencedBy: string): IndexedFile {
    const { alg, hex } = parseDigest(digest, referencedBy);
    const f = this.file(`blobs/${alg}/${hex}`);
    if (!f) throw new ImageBlobMissingError(digest, referencedBy);
    if (size !== undefined && f.size !== size) throw new ImageBlobDigestMismatchError(digest, `${f.size} bytes, but ${referencedBy} says ${size}`);
    return f;
  }

  /** Parsed JSON of a file we buffered. */
  json(f: IndexedFile, what: string): unknown {
    if (!f.json) throw new ImageMetadataError(`${what} is not JSON or larger than ${this.maxMetadataBytes} bytes`);
    try {
      return JSON.parse(f.json.toString('utf8'));
    } catch (e) {
      throw new ImageMetadataError(`${what} is not valid JSON: ${(e as Error).message}`);
    }
  }
}

function checkBlobName(name: string, alg: string, hex: string, f: IndexedFile): void {
  const len = ALG_HEX_LEN[alg];
  if (len === undefined) return; // unknown algorithm: cannot check; referencing it fails in parseDigest
  const actual = alg === 'sha256' ? f.sha256 : f.altDigest;
  if (hex.length !== len || !/^[0-9a-f]+$/.test(hex)) throw new ImageBlobDigestMismatchError(name, 'file name is not a valid digest');
  if (actual !== hex) throw new ImageBlobDigestMismatchError(name, `content hashes to ${alg}:${actual}`);
}

/** Media type of a layer file, sniffed from its magic bytes. */
export function layerMediaType(head: Buffer): string {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'application/vnd.oci.image.layer.v1.tar+gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'application/vnd.oci.image.layer.v1.tar+zstd';
  return 'application/vnd.oci.image.layer.v1.tar';
}

/** Platform and diff_ids from an image config; throws ImageMetadataError if it is not one. */
export function readImageConfig(cfg: unknown, what: string): { platform: ImagePlatform; diffIds: string[] } {
  const c = cfg as { os?: unknown; architecture?: unknown; variant?: unknown; rootfs?: { diff_ids?: unknown } } | null;
  if (!c || typeof c !== 'object' || typeof c.os !== 'string' || typeof c.architecture !== 'string') {
    throw new ImageMetadataError(`${what} is not an image config (no os/architecture)`);
  }
  const ids = c.rootfs?.diff_ids;
  if (!Array.isArray(ids) || !ids.every((d) => typeof d === 'string' && d.startsWith('sha256:') && isSha256Hex(d.slice(7)))) {
    throw new ImageMetadataError(`${what} has no valid rootfs.diff_ids`);
  }
  const platform: ImagePlatform = { os: c.os, architecture: c.architecture };
  if (typeof c.variant === 'string' && c.variant !== '') platform.variant = c.variant;
  return { platform, diffIds: ids as string[] };
}
