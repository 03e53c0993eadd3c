import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecord } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { createBackup, restoreBackup } from '../backup/backup.js';
import { readPassphrase } from '../backup/passphrase.js';
import { defaultDataDir, loadControllerConfig } from '../config.js';
import { redactStoreUrl } from '../store/store-url.js';

function dataDir(v: string | undefined): string {
  return resolve(v ?? process.env['FERRY_DATA'] ?? defaultDataDir());
}

function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/**
 * `ferry controller backup --out FILE`: an encrypted, consistent backup of
 * the controller's data directory, taken while it runs (docs/disaster-recovery.md).
 */
export async function cmdControllerBackup(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    data: { type: 'string' }, out: { type: 'string' }, config: { type: 'string' }, 'passphrase-file': { type: 'string' },
    store: { type: 'string' }, chunks: { type: 'string' }, 'no-chunks': { type: 'boolean' }, json: { type: 'boolean' },
  }, false);
  if (!values.out) throw new FerryError(ErrorCode.InvalidArgument, 'backup needs --out FILE', 'e.g. ferry controller backup --out /srv/backups/ferry-$(date +%F).fbak');
  const passphrase = readPassphrase(values['passphrase-file'], process.env, true);
  const out = resolve(values.out);
  // The store and chunk directory as the controller sees them: flags < … the same layering as `controller start` (its --config, FERRY_STORE, FERRY_CHUNKS).
  const given = Object.fromEntries(Object.entries({ data: values.data, store: values.store, chunks: values.chunks }).filter(([, v]) => v !== undefined));
  const cfg = loadControllerConfig(given, values.config);
  const m = await createBackup({
    dataDir: cfg.dataDir, out, passphrase, withoutChunks: Boolean(values['no-chunks']), chunkDir: cfg.chunkDir,
    ...(cfg.store.kind === 'postgres' ? { storeUrl: cfg.store.url } : {}),
    ...(values.config ? { configFile: resolve(values.config) } : {}),
  });
  const fileBytes = statSync(out).size;
  if (values.json) {
    writeRecord({ type: 'controller-backup', file: out, createdAtMs: m.createdAtMs, dataDir: m.dataDir, store: m.store.kind, schemaVersion: m.store.schemaVersion,
      chunks: m.chunks, config: Boolean(m.config), files: m.files, bytes: m.bytes, fileBytes, caPin: m.caPin });
  } else {
    process.stdout.write(`wrote ${out} (${mib(fileBytes)}, encrypted, mode 0600)\n`
      + `  store:  ${m.store.kind}, schema version ${m.store.schemaVersion}\n`
      + `  files:  ${m.files} (${mib(m.bytes)}): CA and keys${m.chunks ? ', chunk store' : ' (chunk store left out: push bundles again after a restore)'}${m.config ? ', settings file' : ''}\n`
      + `  CA pin: ${m.caPin}\n`
      + 'keep the passphrase apart from the file: without it the backup cannot be opened\n');
  }
  return Exit.Ok;
}

/** `ferry controller restore FILE --data DIR`: see restoreBackup for what is checked before anything is replaced. */
export async function cmdControllerRestore(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    data: { type: 'string' }, 'passphrase-file': { type: 'string' }, force: { type: 'boolean' }, store: { type: 'string' }, json: { type: 'boolean' },
  });
  const [file, ...extra] = positionals;
  if (!file || extra.length) throw new FerryError(ErrorCode.InvalidArgument, 'restore takes one backup FILE', 'ferry controller restore FILE --data DIR');
  const passphrase = readPassphrase(values['passphrase-file'], process.env, false);
  const dir = dataDir(values.data);
  const r = await restoreBackup({ file: resolve(file), dataDir: dir, passphrase, force: Boolean(values.force), ...(values.store ? { storeUrl: values.store } : {}) });
  const pgTarget = r.manifest.store.kind === 'postgres' && values.store ? redactStoreUrl(values.store) : undefined;
  if (values.json) {
    writeRecord({ type: 'controller-restore', dataDir: dir, backupCreatedAtMs: r.manifest.createdAtMs, store: r.manifest.store.kind, schemaVersion: r.schemaVersion,
      chunks: r.manifest.chunks, configFile: r.configFile ?? null, replaced: r.replaced, caPin: r.manifest.caPin });
  } else {
    process.stdout.write(`restored ${dir} from the backup of ${new Date(r.manifest.createdAtMs).toISOString()}${r.replaced ? ' (its old contents are gone)' : ''}\n`
      + `  store:  ${r.manifest.store.kind}, schema version ${r.schemaVersion}\n`
      + `  CA pin: ${r.manifest.caPin} (agents enrolled before the backup trust it and reconnect by themselves)\n`
      + (r.manifest.chunks ? '' : '  chunks: not in the backup; push the bundles again (ferry bundle push)\n')
      + (r.configFile ? `  settings file: ${r.configFile}\n` : '')
      + (pgTarget ? `  into:   ${pgTarget}\n` : '')
      + `next: ferry controller start --data ${dir}${pgTarget ? ` --store ${pgTarget} --chunks ${dir}/chunks` : ''}${r.configFile ? ` --config ${r.configFile}` : ''} (or systemctl start ferry-controller), then see docs/disaster-recovery.md\n`);
  }
  return Exit.Ok;
}
