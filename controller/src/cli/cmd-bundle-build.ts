import { existsSync, statSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { parseFlags } from '../../../common/src/cli-support.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { readBundleArchive, writeBundleArchive } from '../../../common/src/bundle/archive.js';
import { buildManifest } from '../../../common/src/bundle/builder.js';
import { formatFindings, lintBundle, type Finding } from '../../../common/src/bundle/lint/index.js';
import { bundleId, readSigningKey, signManifest, type SignedManifest } from '../../../common/src/bundle/manifest.js';
import { writeRecord, writeRecords } from '../../../common/src/cli/json-records.js';
import { bytes } from '../../../common/src/table.js';
import { Admin, adminFlags } from './admin-client.js';
import { dirReader, pushBundle, type ChunkReader } from './bundle-push.js';
import { parseRef } from './cmd-bundle.js';
import { bundleBuiltRecord, bundlePushedRecord, lintFindingRecord, lintSummaryRecord } from './records-delivery.js';

const buildFlags = {
  ...adminFlags, name: { type: 'string' as const }, version: { type: 'string' as const }, arch: { type: 'string' as const, multiple: true as const },
  key: { type: 'string' as const }, out: { type: 'string' as const, short: 'o' }, force: { type: 'boolean' as const }, json: { type: 'boolean' as const },
};

/** `bundle lint --json`: one record per finding, then the counts (docs/json.md, "lint.finding", "lint.summary"). */
function lintRecords(target: string, findings: readonly Finding[]): void {
  writeRecords(findings.map(lintFindingRecord));
  writeRecord(lintSummaryRecord(target, findings));
}

/** Prints findings; returns true when they block (errors and no --force). */
function report(findings: Finding[], force: boolean, json: boolean): boolean {
  const errors = findings.filter((f) => f.severity === 'error').length;
  if (!json && findings.length) process.stderr.write(formatFindings(findings) + '\n');
  if (!json) process.stderr.write(`lint: ${errors} error(s), ${findings.length - errors} warning(s)${errors && force ? ' — continuing because of --force' : ''}\n`);
  return errors > 0 && !force;
}

async function lintAndBuild(dir: string, v: { name?: string; version?: string; arch?: string[]; key?: string; force?: boolean; json?: boolean }, exclude?: string): Promise<SignedManifest> {
  if (!v.key) throw new FerryError(ErrorCode.InvalidArgument, 'bundles are signed: pass --key operator.key', 'make a key with `ferry key gen`');
  // Read and check the key before the (long) build, so a wrong file fails at once.
  const keyPem = readSigningKey(v.key);
  const manifest = await buildManifest(dir, { name: v.name, version: v.version, arch: v.arch, exclude: exclude ? (p) => p === exclude : undefined });
  const findings = await lintBundle(dir, { manifest });
  if (report(findings, Boolean(v.force), Boolean(v.json))) {
    throw new FerryError(ErrorCode.LintFailed, `${dir} is not ready to ship offline (see the findings above)`, 'fix the findings, or pass --force to ship anyway');
  }
  return signManifest(manifest, keyPem);
}

/** `ferry bundle build DIR -o FILE | push DIR|FILE | lint DIR|NAME:VERSION`. */
export async function cmdBundleBuild(sub: string, rest: string[]): Promise<number> {
  const { values, positionals } = parseFlags(rest, buildFlags);
  const target = positionals[0];
  if (!target) throw new FerryError(ErrorCode.InvalidArgument, `bundle ${sub} needs a directory${sub === 'build' ? '' : ' or file'}`, 'e.g. ferry bundle push ./kubeedge-edge --name kubeedge-edge --version 1.22.0 --key operator.key');
  switch (sub) {
    case 'lint': {
      if (!existsSync(target) && /^[^/]+:[^/]+$/.test(target)) {
        const [name, version] = parseRef(target);
        const admin = Admin.connect(values);
        try {
          const { findings } = await admin.call(admin.client.lintBundle, { name, version }, 120_000);
          const fs = findings.map((f) => ({ ...f, severity: f.severity as Finding['severity'], rule: f.rule as Finding['rule'], hint: f.hint || undefined }));
          if (values.json) lintRecords(target, fs);
          return report(fs, false, Boolean(values.json)) ? Exit.Failure : Exit.Ok;
        } finally {
          admin.close();
        }
      }
      const findings = await lintBundle(resolve(target));
      if (values.json) lintRecords(target, findings);
      return report(findings, false, Boolean(values.json)) ? Exit.Failure : Exit.Ok;
    }
    case 'build': {
      if (!values.out) throw new FerryError(ErrorCode.InvalidArgument, 'bundle build needs -o FILE', 'e.g. -o kubeedge-edge-1.22.0.ferry');
      const dir = resolve(target);
      const out = resolve(values.out);
      const inside = relative(dir, out);
      const signed = await lintAndBuild(dir, values, inside.startsWith('..') ? undefined : inside);
      const r = await writeBundleArchive(signed, dir, out);
      if (values.json) {
        const m = JSON.parse(signed.manifest) as { name: string; version: string };
        writeRecord(bundleBuiltRecord(out, { id: bundleId(signed), name: m.name, version: m.version, keyId: signed.keyId }, r));
      } else process.stdout.write(`wrote ${out}: ${bytes(r.bytes)}, ${r.chunks} chunks, signed by ${signed.keyId}\ncarry it across the air gap, then: ferry bundle push ${values.out}\n`);
      return Exit.Ok;
    }
    case 'push': {
      let signed: SignedManifest;
      let reader: ChunkReader;
      let close = () => undefined as void;
      if (statSync(target).isDirectory()) {
        const dir = resolve(target);
        signed = await lintAndBuild(dir, values);
        reader = dirReader(dir, JSON.parse(signed.manifest));
      } else {
        const archive = await readBundleArchive(resolve(target));
        signed = archive.signed;
        close = () => archive.close();
        reader = async function* (missing) {
          for await (const c of archive.chunks()) if (missing.has(c.digest)) yield c;
        };
      }
      const admin = Admin.connect(values);
      try {
        const r = await pushBundle(admin, signed, reader, { progress: !values.json });
        if (values.json) writeRecord(bundlePushedRecord(r));
        else process.stdout.write(r.unchanged ? `${r.info.name}:${r.info.version} is already on the controller with the same content (id ${r.info.bundleId.slice(0, 12)}); ${r.chunksSent ? `re-sent ${r.chunksSent} chunks it had lost (${bytes(r.bytesSent)})` : 'nothing to do'}\n`
          : `pushed ${r.info.name}:${r.info.version} (${bytes(r.info.sizeBytes)}, ${r.info.files} files, ${r.info.images} images); sent ${r.chunksSent}/${r.chunksTotal} chunks, ${bytes(r.bytesSent)}\n`);
      } finally {
        close();
        admin.close();
      }
      return Exit.Ok;
    }
    default:
      throw new FerryError(ErrorCode.InvalidArgument, `unknown bundle command "${sub}"`);
  }
}
