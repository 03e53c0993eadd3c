/**
 * `ferry agents release add | ls | rm`: agent releases on the controller.
 * A release is one signed bundle per architecture (common/src/bundle/
 * agent-release.ts says why), pushed with the bundle push (only chunks the
 * controller lacks move) and listed and removed as bundles.
 */
import { open } from 'node:fs/promises';
import { platformArch } from '../../../common/src/arch.js';
import { buildReleaseManifest, inspectAgentBinary, releaseArch, releaseName } from '../../../common/src/bundle/agent-release.js';
import { locateChunks } from '../../../common/src/bundle/builder.js';
import { readSigningKey, signManifest } from '../../../common/src/bundle/manifest.js';
import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecord, writeRecords } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { BundleInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import { runProcess } from '../../../common/src/proc/run-process.js';
import { bytes, table } from '../../../common/src/table.js';
import { versionProblem } from '../../../common/src/version.js';
import { Admin, adminFlags } from './admin-client.js';
import { byDigest, pushBundle } from './bundle-push.js';

const FLAGS = { ...adminFlags, key: { type: 'string' as const }, version: { type: 'string' as const }, arch: { type: 'string' as const }, json: { type: 'boolean' as const } };

/** The `agent-release` record (docs/json.md): one per architecture. */
export function releaseRecord(b: BundleInfo) {
  return { version: b.version, arch: releaseArch(b.name) ?? '', name: b.name, bundleId: b.bundleId, sizeBytes: b.sizeBytes, chunks: b.chunks, keyId: b.keyId, createdAtMs: b.createdAtMs };
}

/** A binary checked for release: its architecture, and its version when it could be run here. */
interface Checked { file: string; arch: string; version?: string }

/**
 * Checks each file is an agent binary (agent-release.ts) and learns its
 * version: a binary for this machine's architecture is asked (`version
 * --json`); one for another architecture takes the version the others (or
 * --version) give. Every version must agree.
 */
async function checkBinaries(files: string[], flagVersion: string | undefined): Promise<{ version: string; binaries: Checked[] }> {
  if (flagVersion && versionProblem(flagVersion)) throw new FerryError(ErrorCode.InvalidArgument, `--version: ${versionProblem(flagVersion)}`);
  const binaries: Checked[] = [];
  for (const file of files) {
    const { arch } = await inspectAgentBinary(file);
    const twin = binaries.find((b) => b.arch === arch);
    if (twin) throw new FerryError(ErrorCode.InvalidArgument, `${file} and ${twin.file} are both for ${arch}`, 'give one binary per architecture');
    const c: Checked = { file, arch };
    if (arch === platformArch()) {
      const r = await runProcess({ argv: [file, 'version', '--json'], timeoutMs: 60_000, plainLocale: true });
      let info: { version?: string; arch?: string } = {};
      try { info = JSON.parse(r.stdout) as typeof info; } catch { /* checked below */ }
      if (r.exitCode !== 0 || typeof info.version !== 'string') {
        throw new FerryError(ErrorCode.InvalidArgument, `${file} is not a ferry-agent binary: \`${file} version --json\` ${r.startError ?? `exited ${r.exitCode}`}${r.stderr ? `: ${r.stderr.trim().slice(0, 200)}` : ''}`,
          'pass the files `npm run build:agent` writes: dist/ferry-agent-linux-ARCH');
      }
      if (info.arch !== arch) throw new FerryError(ErrorCode.InvalidArgument, `${file} says it is for ${info.arch}, but its ELF header says ${arch}`, 'rebuild it');
      c.version = info.version;
    }
    binaries.push(c);
  }
  const known = [...new Set(binaries.flatMap((b) => (b.version ? [b.version] : [])))];
  if (known.length > 1) throw new FerryError(ErrorCode.InvalidArgument, `the binaries are of different versions (${binaries.map((b) => `${b.file}: ${b.version ?? '?'}`).join(', ')})`, 'add one version at a time');
  if (flagVersion && known[0] && known[0] !== flagVersion) {
    throw new FerryError(ErrorCode.InvalidArgument, `--version ${flagVersion}, but the binary says it is ${known[0]}`, 'leave out --version (the binary\'s own version is used), or pass the right binary');
  }
  const version = known[0] ?? flagVersion;
  if (!version) {
    throw new FerryError(ErrorCode.InvalidArgument, `cannot run ${binaries.map((b) => b.file).join(', ')} on this ${platformArch()} machine to learn the version`,
      'add it together with this machine\'s binary, or pass --version (it is checked again on every host before the switch)');
  }
  return { version, binaries };
}

/** Reads a release's chunks straight from its binary. */
function fileReader(file: string, manifest: Parameters<typeof locateChunks>[0]) {
  const locs = locateChunks(manifest, '');
  return byDigest(async (d) => {
    const loc = locs.get(d)!;
    const fh = await open(file, 'r');
    try {
      const buf = Buffer.alloc(loc.size);
      const { bytesRead } = await fh.read(buf, 0, loc.size, loc.offset);
      if (bytesRead !== loc.size) throw new FerryError(ErrorCode.BundleInvalid, `${file} changed while it was being added`, 'add it again');
      return buf;
    } finally {
      await fh.close();
    }
  });
}

/** `ferry agents release add|ls|rm` (after `release`). */
export async function cmdAgentRelease(sub: string, args: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(args, FLAGS);
  if (sub === 'add') {
    if (positionals.length === 0) throw new FerryError(ErrorCode.InvalidArgument, 'agents release add needs the binaries', 'e.g. ferry agents release add dist/ferry-agent-linux-amd64 dist/ferry-agent-linux-arm64 --key ops.key');
    if (!v.key) throw new FerryError(ErrorCode.InvalidArgument, 'agents release add needs --key KEY: releases are signed like bundles', 'make a key with `ferry key gen` and add its .pub with `ferry key add`');
  }
  if (sub === 'rm' && positionals.length !== 1) throw new FerryError(ErrorCode.InvalidArgument, 'agents release rm takes one VERSION', 'list them with `ferry agents release ls`');
  // Local checks first: a file that is no agent fails before any connection.
  const checked = sub === 'add' ? await checkBinaries(positionals, v.version) : undefined;
  const privatePem = sub === 'add' ? readSigningKey(v.key!) : '';
  const admin = Admin.connect(v);
  try {
    switch (sub) {
      case 'add': {
        for (const b of checked!.binaries) {
          const signed = signManifest(await buildReleaseManifest(b.file, checked!.version, b.arch), privatePem);
          const r = await pushBundle(admin, signed, fileReader(b.file, JSON.parse(signed.manifest)), { progress: !v.json });
          if (v.json) writeRecord({ ...releaseRecord(r.info), bytesSent: r.bytesSent, chunksSent: r.chunksSent, unchanged: r.unchanged });
          else process.stdout.write(`agent release ${r.info.version} for ${b.arch}: ${r.unchanged ? 'already on the controller' : 'added'} (${bytes(r.info.sizeBytes)}, ${bytes(r.bytesSent)} sent)\n`);
        }
        if (!v.json) process.stdout.write(`upgrade hosts with: ferry agents upgrade --to ${checked!.version} --selector ... --waves 1,10%,100%\n`);
        return Exit.Ok;
      }
      case 'ls': {
        const { bundles } = await admin.call(admin.client.listBundles, {});
        const releases = bundles.filter((b) => releaseArch(b.name) !== undefined).map(releaseRecord);
        if (v.json) writeRecords(releases);
        else process.stdout.write(table([['VERSION', 'ARCH', 'SIZE', 'SIGNED BY', 'ID'], ...releases.map((r) => [r.version, r.arch, bytes(r.sizeBytes), r.keyId, r.bundleId.slice(0, 12)])]));
        return Exit.Ok;
      }
      case 'rm': {
        const version = positionals[0]!;
        const { bundles } = await admin.call(admin.client.listBundles, {});
        const gone = bundles.filter((b) => releaseArch(b.name) !== undefined && b.version === version && (!v.arch || b.name === releaseName(v.arch)));
        if (gone.length === 0) throw new FerryError(ErrorCode.NotFound, `no agent release ${version}${v.arch ? ` for ${v.arch}` : ''}`, 'list them with `ferry agents release ls`');
        for (const b of gone) {
          const r = await admin.call(admin.client.removeBundle, { name: b.name, version: b.version, force: false });
          if (v.json) writeRecord({ ...releaseRecord(b), chunksDeleted: r.chunksDeleted, bytesFreed: r.bytesFreed });
          else process.stdout.write(`removed agent release ${b.version} for ${releaseArch(b.name)} (${bytes(r.bytesFreed)} freed)\n`);
        }
        return Exit.Ok;
      }
      default:
        throw new FerryError(ErrorCode.InvalidArgument, `unknown agents release command "${sub}"`, 'use add, ls or rm');
    }
  } finally {
    admin.close();
  }
}
