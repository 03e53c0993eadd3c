/**
 * Agent releases are bundles. One release of one version is one signed
 * bundle per architecture, named `ferry-agent-linux-<arch>`, holding a single
 * file `ferry-agent` (mode 0755): the single executable for that CPU.
 *
 * Why a bundle per architecture and not one bundle with both binaries: a
 * host stages a whole bundle, so a two-binary bundle would move the other
 * architecture's ~90 MB to every host for nothing. Why a bundle at all: it
 * reuses everything bundles already have — signature by an operator key the
 * hosts pinned at enrollment, FastCDC chunks deduplicated on upload and on
 * the host (against the previous release's files and the running binary),
 * resumable staging, per-chunk digests (and whole-file digests checked at commit) — so a release needs no
 * second artifact format, store or transfer path. The name is reserved:
 * the controller checks every bundle with such a name with
 * {@link releaseProblem} before it commits it.
 */
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { archProblem } from '../arch.js';
import { ErrorCode, FerryError } from '../errors.js';
import { agentCompat, FERRY_VERSION, versionProblem } from '../version.js';
import { chunkFile } from './fastcdc.js';
import type { BundleManifest } from './manifest.js';

/** Bundle names of agent releases: `ferry-agent-linux-<arch>`. */
export const RELEASE_PREFIX = 'ferry-agent-linux-';
/** The path of the executable inside a release bundle. */
export const RELEASE_FILE = 'ferry-agent';

/** The bundle name of the release for `arch`. */
export function releaseName(arch: string): string {
  return `${RELEASE_PREFIX}${arch}`;
}

/** The architecture a release bundle name is for, or undefined when the name is not a release's. */
export function releaseArch(bundleName: string): string | undefined {
  return bundleName.startsWith(RELEASE_PREFIX) ? bundleName.slice(RELEASE_PREFIX.length) : undefined;
}

/**
 * Why `m` (named like a release) is not a release this controller may hold,
 * or undefined: exactly one file `ferry-agent` with mode 0755, `arch` equal
 * to the name's one architecture, a version, and that version within the
 * agent version rules against `controllerVersion` (never newer than the
 * controller, at most one minor behind: a release the controller would
 * refuse to talk to once installed is refused before any host gets it).
 */
export function releaseProblem(m: BundleManifest, controllerVersion: string = FERRY_VERSION): { message: string; hint: string } | undefined {
  const arch = releaseArch(m.name);
  if (arch === undefined) return undefined;
  const build = 'build it with `npm run build:agent` and add it with `ferry agents release add dist/ferry-agent-linux-ARCH --key KEY`';
  if (archProblem(arch)) return { message: `agent release ${m.name}: ${archProblem(arch)}`, hint: build };
  if (m.arch.length !== 1 || m.arch[0] !== arch) return { message: `agent release ${m.name} must be for exactly ${arch} (its manifest says ${JSON.stringify(m.arch)})`, hint: build };
  if (m.files.length !== 1 || m.files[0]!.path !== RELEASE_FILE) {
    return { message: `agent release ${m.name}:${m.version} must hold exactly one file, ${RELEASE_FILE} (it holds ${m.files.map((f) => f.path).join(', ') || 'none'})`, hint: build };
  }
  if (m.files[0]!.mode !== 0o755) return { message: `agent release ${m.name}:${m.version}: ${RELEASE_FILE} must have mode 0755 (it has 0${m.files[0]!.mode.toString(8)})`, hint: build };
  if (m.images.length > 0) return { message: `agent release ${m.name}:${m.version} must hold no images`, hint: build };
  const vp = versionProblem(m.version);
  if (vp) return { message: `agent release ${m.name}: ${vp}`, hint: build };
  const c = agentCompat(m.version, controllerVersion);
  if (!c.ok) {
    return c.reason === 'newer'
      ? { message: `agent release ${m.version} is newer than this controller (${controllerVersion}); an agent is never newer than its controller`, hint: `upgrade the controller to ${m.version} or later first, then add the release` }
      : { message: `agent release ${m.version} is too old for this controller (${controllerVersion}): it accepts agents of its own minor version and the one before`, hint: `add a release of ${controllerVersion}` };
  }
  return undefined;
}

/** Throws BUNDLE_INVALID when {@link releaseProblem} finds one. */
export function assertRelease(m: BundleManifest, controllerVersion: string = FERRY_VERSION): void {
  const p = releaseProblem(m, controllerVersion);
  if (p) throw new FerryError(ErrorCode.BundleInvalid, p.message, p.hint);
}

/** ELF e_machine values of the architectures agents are built for. */
const ELF_MACHINES: Readonly<Record<number, string>> = { 62: 'amd64', 183: 'arm64' };
/** The sentinel postject flips to `:1` when it injects the agent into node (scripts/build-agent.mjs). */
const SEA_FUSE_SET = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2:1';

/**
 * What an agent binary file is, read from its bytes without running it:
 * a little-endian 64-bit ELF executable for amd64 or arm64 with a Node
 * single-executable blob injected. Anything else is refused with the file's
 * name and what it is instead.
 */
export async function inspectAgentBinary(file: string): Promise<{ arch: string; size: number }> {
  const bad = (message: string) => new FerryError(ErrorCode.InvalidArgument, `${file} is not a ferry-agent binary: ${message}`,
    'pass the files `npm run build:agent` writes: dist/ferry-agent-linux-amd64, dist/ferry-agent-linux-arm64');
  let head: Buffer;
  try {
    const fh = await open(file, 'r');
    try {
      head = Buffer.alloc(20);
      await fh.read(head, 0, 20, 0);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new FerryError(ErrorCode.NotFound, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'check the path');
  }
  if (head.subarray(0, 4).toString('latin1') !== '\x7fELF') throw bad('not an ELF executable');
  if (head[4] !== 2 || head[5] !== 1) throw bad('not a 64-bit little-endian ELF file');
  const arch = ELF_MACHINES[head.readUInt16LE(18)];
  if (!arch) throw bad(`built for ELF machine ${head.readUInt16LE(18)}, not amd64 or arm64`);
  // A whole read of ~90 MB once per `release add` is cheap next to chunking it.
  const bytes = readFileSync(file);
  if (!bytes.includes(SEA_FUSE_SET)) throw bad('a plain executable (no agent injected: a bare node, or some other program)');
  return { arch, size: bytes.length };
}

/** The unsigned manifest of the release of `version` for `arch`, from the binary `file`. */
export async function buildReleaseManifest(file: string, version: string, arch: string, now: Date = new Date()): Promise<BundleManifest> {
  const fc = await chunkFile(file);
  return {
    schema: 'ferry.bundle/v1', name: releaseName(arch), version, arch: [arch], createdAt: now.toISOString(),
    files: [{ path: RELEASE_FILE, mode: 0o755, size: fc.size, sha256: fc.sha256, chunks: fc.chunks.map((c) => ({ digest: c.digest, size: c.length })) }],
    images: [], rewrites: [],
  };
}
