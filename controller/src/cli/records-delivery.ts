import type { Finding } from '../../../common/src/bundle/lint/index.js';
import type { BundleInfo, PlanInfo, SigningKeyInfo } from '../../../common/src/gen/ferry/v1/admin.js';

/**
 * The `--json` records of `ferry key`, `bundle` and `plan` (docs/json.md,
 * "key", "bundle", "bundle.*", "lint.*", "plan", "plan.*"). Each maps the
 * controller's message field by field, so a change to a generated message
 * cannot change what scripts read: ids as `id`, times as `...Ms`, optional
 * texts null rather than "".
 */

/** `ferry key ls | add` (docs/json.md, "key"). */
export function keyRecord(k: SigningKeyInfo) {
  return { id: k.keyId, name: k.name || null, publicPem: k.publicPem, addedAtMs: k.addedAtMs };
}

/** `ferry bundle ls` (docs/json.md, "bundle"). */
export function bundleRecord(b: BundleInfo) {
  return { id: b.bundleId, name: b.name, version: b.version, arch: b.arch, files: b.files, images: b.images, chunks: b.chunks,
    sizeBytes: b.sizeBytes, imageRefs: b.imageRefs, keyId: b.keyId, createdAtMs: b.createdAtMs };
}

/** The parts of a bundle manifest `bundle show` lists (the chunk lists are left out). */
export interface ManifestContents {
  files: Array<{ path: string; size: number; mode: number; sha256: string }>;
  images: Array<{ file: string; refs: string[]; platform: { os: string; architecture: string } }>;
  rewrites: Array<{ from: string; to: string }>;
}

/** `ferry bundle show` (docs/json.md, "bundle.detail", "bundle.file", "bundle.image", "bundle.rewrite"). */
export function bundleDetailRecord(b: BundleInfo, m: ManifestContents) {
  return {
    ...bundleRecord(b),
    fileList: m.files.map((f) => ({ path: f.path, mode: f.mode.toString(8).padStart(4, '0'), sizeBytes: f.size, sha256: f.sha256 })),
    imageList: m.images.map((i) => ({ file: i.file, refs: i.refs, os: i.platform.os, arch: i.platform.architecture })),
    rewrites: m.rewrites.map((r) => ({ from: r.from, to: r.to })),
  };
}

/** `ferry bundle rm` (docs/json.md, "bundle.removed"). */
export function bundleRemovedRecord(name: string, version: string, r: { removed?: BundleInfo | undefined; chunksDeleted: number; bytesFreed: number }) {
  return { id: r.removed?.bundleId ?? null, name, version, chunksDeleted: r.chunksDeleted, bytesFreed: r.bytesFreed };
}

/** `ferry bundle push` (docs/json.md, "bundle.pushed"). */
export function bundlePushedRecord(r: { info: BundleInfo; chunksTotal: number; chunksSent: number; bytesSent: number; unchanged: boolean }) {
  return { id: r.info.bundleId, name: r.info.name, version: r.info.version, sizeBytes: r.info.sizeBytes, unchanged: r.unchanged,
    chunksTotal: r.chunksTotal, chunksSent: r.chunksSent, bytesSent: r.bytesSent };
}

/** `ferry bundle build` (docs/json.md, "bundle.built"). */
export function bundleBuiltRecord(file: string, m: { id: string; name: string; version: string; keyId: string }, r: { bytes: number; chunks: number }) {
  return { file, id: m.id, name: m.name, version: m.version, keyId: m.keyId, sizeBytes: r.bytes, chunks: r.chunks };
}

/** One `ferry bundle lint` finding (docs/json.md, "lint.finding"). */
export function lintFindingRecord(f: Finding) {
  return { type: 'finding', severity: f.severity, rule: f.rule, file: f.file, line: f.line, col: f.col, message: f.message, hint: f.hint || null };
}

/** The last `ferry bundle lint` record (docs/json.md, "lint.summary"). */
export function lintSummaryRecord(target: string, findings: readonly Finding[]) {
  const errors = findings.filter((f) => f.severity === 'error').length;
  return { type: 'summary', target, errors, warnings: findings.length - errors };
}

/** `ferry plan ls` (docs/json.md, "plan"). */
export function planRecord(p: PlanInfo) {
  return { id: p.id, name: p.name, description: p.description || null, steps: p.steps, bundles: p.bundles, params: p.params, keyId: p.keyId, createdAtMs: p.createdAtMs };
}

/** `ferry plan push` (docs/json.md, "plan.pushed"). */
export function planPushedRecord(p: PlanInfo, unchanged: boolean) {
  return { ...planRecord(p), unchanged };
}

/** `ferry plan show` (docs/json.md, "plan.detail"). */
export function planDetailRecord(p: PlanInfo, signed: { plan: string; file: string }) {
  return { ...planRecord(p), file: signed.file || null, text: signed.plan };
}
