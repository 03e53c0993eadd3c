/**
 * A synthetic offline package for the bundle and step benchmarks: image
 * tars (docker-archive, what `docker save` writes, built with the e2e
 * harness's tar and image code) whose layers are incompressible seeded
 * random bytes, a few "binaries" of random bytes and a small manifest.
 * Deterministic: the same seeds give the same bytes, so version B of the
 * package shares every unchanged byte with version A.
 *
 * Layout (sizes for scale 1):
 *   images/app-1.tar … app-6.tar   3 layers each (64 + 48 + 48 MiB)
 *   bin/ferry-tool-a, -b, -c        16 + 12 + 12 MiB, mode 0755
 *   manifests/app.yaml              a few hundred bytes
 * ≈ 1000 MiB in all.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dockerArchive, normalizeRef, ociArch, sha256, type BuiltImage } from '../../test/e2e/harness/oci-image.js';
import { buildTar } from '../../test/e2e/harness/tar.js';

export const MiB = 1024 * 1024;

/** `n` incompressible bytes, the same for the same seed (AES-128-CTR keystream). */
export function seededBytes(n: number, seed: string): Buffer {
  const key = createHash('sha256').update(`ferry-bench:${seed}`).digest().subarray(0, 16);
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(n)), c.final()]);
}

export interface PackageSpec {
  images: number;
  /** Layer payload sizes of every image, bottom first. */
  layerBytes: number[];
  binBytes: number[];
}

/** full ≈ 1000 MiB; mid ≈ 250 MiB (same shape, a quarter: for iterating on the chunk path); quick ≈ 64 MiB. */
export function packageSpec(scale: 'full' | 'mid' | 'quick'): PackageSpec {
  if (scale === 'full') return { images: 6, layerBytes: [64 * MiB, 48 * MiB, 48 * MiB], binBytes: [16 * MiB, 12 * MiB, 12 * MiB] };
  if (scale === 'mid') return { images: 6, layerBytes: [16 * MiB, 12 * MiB, 12 * MiB], binBytes: [4 * MiB, 3 * MiB, 3 * MiB] };
  return { images: 6, layerBytes: [4 * MiB, 3 * MiB, 3 * MiB], binBytes: [1 * MiB, 1 * MiB, 1 * MiB] };
}

/** The full package's shape scaled to about `bytes` (images and binaries alike; at least 1 MiB per piece). */
export function packageSpecOfSize(bytes: number): PackageSpec {
  const full = packageSpec('full');
  const k = bytes / (1000 * MiB);
  const scale = (xs: number[]) => xs.map((x) => Math.max(MiB, Math.round((x * k) / 4096) * 4096));
  return { images: full.images, layerBytes: scale(full.layerBytes), binBytes: scale(full.binBytes) };
}

/** One image as a docker-archive; `layerSeeds` pick each layer's bytes. */
export function imageTar(ref: string, layerBytes: number[], layerSeeds: string[]): Buffer {
  const layerTars = layerBytes.map((n, i) => buildTar([{ path: `opt/bench/layer-${i}.bin`, content: seededBytes(n, layerSeeds[i]!) }]));
  const diffIds = layerTars.map(sha256);
  const architecture = ociArch();
  const created = '1970-01-01T00:00:00Z';
  const config = Buffer.from(JSON.stringify({
    created, architecture, os: 'linux', config: { Cmd: ['/bin/true'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layerTars.map(() => ({ created, created_by: 'ferry bench' })),
  }));
  // dockerArchive uses the uncompressed layers, the config and the ref only.
  const img: BuiltImage = {
    ref: normalizeRef(ref), architecture, os: 'linux', manifest: Buffer.alloc(0), manifestDigest: '', config, configDigest: sha256(config),
    layers: [], layerDigests: [], layerTars, diffIds,
  };
  return dockerArchive([img]);
}

function writeSynced(path: string, data: Buffer | string, mode = 0o644): void {
  writeFileSync(path, data, { mode });
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export const imageRef = (i: number, version: string) => `bench.local/ferry/app-${i}:${version}`;
const layerSeeds = (i: number, changedLayer = -1) => [0, 1, 2].map((l) => (l === changedLayer ? `img${i}-layer${l}-v2` : `img${i}-layer${l}`));

/**
 * Writes package version A under `dir`; returns its total size in bytes.
 * `variant` (default none) gives every file other bytes of the same shape:
 * a package that shares no chunk with the default one.
 */
export function writePackage(dir: string, spec: PackageSpec, variant = ''): number {
  mkdirSync(join(dir, 'images'), { recursive: true });
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'manifests'), { recursive: true });
  const v = (seed: string) => (variant ? `${variant}-${seed}` : seed);
  for (let i = 1; i <= spec.images; i++) writeSynced(join(dir, 'images', `app-${i}.tar`), imageTar(imageRef(i, '1.0'), spec.layerBytes, layerSeeds(i).map(v)));
  spec.binBytes.forEach((n, k) => writeSynced(join(dir, 'bin', `ferry-tool-${'abc'[k]}`), seededBytes(n, v(`bin-${k}`)), 0o755));
  writeSynced(join(dir, 'manifests', 'app.yaml'), `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  images: "${spec.images}"\n`);
  return dirBytes(dir);
}

/**
 * Version B next to A: every file hard-linked from A except image
 * `changed`, whose middle layer has new bytes and whose tag is 2.0 (the
 * layer above it keeps its bytes but gets a new id, as `docker save` does).
 */
export function writeUpgrade(dirA: string, dirB: string, spec: PackageSpec, changed: number): { changedFile: string } {
  const rel = `images/app-${changed}.tar`;
  for (const sub of ['images', 'bin', 'manifests']) {
    mkdirSync(join(dirB, sub), { recursive: true });
    for (const f of readdirSync(join(dirA, sub))) if (`${sub}/${f}` !== rel) linkSync(join(dirA, sub, f), join(dirB, sub, f));
  }
  writeSynced(join(dirB, rel), imageTar(imageRef(changed, '2.0'), spec.layerBytes, layerSeeds(changed, 1)));
  return { changedFile: rel };
}

export function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  return n;
}

export function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();
}

/** Entries of a ustar archive: name, where its data starts, size, sha256 of the data. */
export function tarEntries(buf: Buffer): Array<{ name: string; size: number; sha: string; headerSha: string }> {
  const out: Array<{ name: string; size: number; sha: string; headerSha: string }> = [];
  for (let off = 0; off + 512 <= buf.length;) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const cstr = (a: number, n: number) => h.subarray(a, a + n).toString('utf8').replace(/\0.*$/s, '');
    const prefix = cstr(345, 155);
    const name = (prefix ? `${prefix}/` : '') + cstr(0, 100);
    const size = parseInt(cstr(124, 12).trim() || '0', 8);
    const data = buf.subarray(off + 512, off + 512 + size);
    out.push({ name, size, sha: createHash('sha256').update(data).digest('hex'), headerSha: createHash('sha256').update(h).digest('hex') });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/**
 * Bytes of `after` that are not in `before`: per entry, its 512-byte header
 * unless `before` has the very same header (names and layer ids change), and
 * its padded data unless some entry of `before` has the same data. The
 * end-of-archive blocks are equal.
 */
export function changedTarBytes(before: Buffer, after: Buffer): number {
  const a = tarEntries(before);
  const oldData = new Set(a.map((e) => e.sha));
  const oldHeaders = new Set(a.map((e) => e.headerSha));
  let n = 0;
  for (const e of tarEntries(after)) n += (oldHeaders.has(e.headerSha) ? 0 : 512) + (oldData.has(e.sha) ? 0 : Math.ceil(e.size / 512) * 512);
  return n;
}
