import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { DirLock } from '../../../common/src/dir-lock.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { spkiPin } from '../../../common/src/pki.js';
import { fsyncDir, writeStreamAtomic } from '../../../common/src/secure-fs.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import { ArchiveWriter, readArchive } from './backup-archive.js';
import { BackupSealer, openBackup } from './backup-crypto.js';
import { MIGRATIONS } from '../store/migrations.js';
import { storeBackupFor, storeBackupForKind } from './store-backup-for.js';
import type { StoreBackup, StoreSnapshotInfo } from './store-backup.js';

/** The first file of every backup: what it holds and where it came from. */
export interface BackupManifest {
  format: 1;
  ferryVersion: string;
  createdAtMs: number;
  /** The data directory it was taken from (restore may put it elsewhere). */
  dataDir: string;
  store: StoreSnapshotInfo;
  /** Whether chunks/ is inside; without it, bundles must be pushed again after a restore. */
  chunks: boolean;
  /** Archive path of the settings file (`--config`), when one was given. */
  config?: string;
  caPin: string;
  files: number;
  bytes: number;
}

export interface BackupOptions {
  dataDir: string;
  out: string;
  passphrase: string;
  /** The controller's settings file, kept in the backup. */
  configFile?: string;
  /** Leave the chunk store out (bundles are pushed again after a restore). */
  withoutChunks?: boolean;
  /** The store setting (--store); undefined for the embedded SQLite store. */
  storeUrl?: string;
  /** The chunk store (--chunks) when it is not DATA/chunks (replicas share one elsewhere). */
  chunkDir?: string;
}

/** Every regular file under `dir`, as [archive path, absolute path, size, mode]; sorted, so backups of one state are alike. */
function walk(dir: string, prefix: string): Array<[string, string, number, number]> {
  const out: Array<[string, string, number, number]> = [];
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = lstatSync(p);
    // Temporary files of a write in progress are not part of any state.
    if (/\.ferry-[0-9a-f]+\.tmp$/.test(name)) continue;
    if (st.isDirectory()) out.push(...walk(p, `${prefix}${name}/`));
    else if (st.isFile()) out.push([`${prefix}${name}`, p, st.size, st.mode]);
  }
  return out;
}

/**
 * Writes an encrypted backup of a controller's data directory to `out`
 * (0600, atomically; an existing file is never replaced): first a
 * consistent snapshot of the store (while the controller keeps running),
 * then the CA and server keys, the settings file and (unless left out) the
 * chunk store. Chunks are content-addressed and never change, and a chunk
 * is on disk before any bundle row names it, so chunks copied after the
 * store snapshot include every chunk the snapshot refers to.
 */
export async function createBackup(o: BackupOptions): Promise<BackupManifest> {
  const store = storeBackupFor(o.dataDir, o.storeUrl);
  const caCert = join(o.dataDir, 'pki', 'ca.crt');
  if (!existsSync(caCert)) {
    throw new FerryError(ErrorCode.NotFound, `${o.dataDir} holds no controller CA (no pki/ca.crt)`, 'give the controller\'s data directory with --data');
  }
  if (existsSync(o.out)) throw new FerryError(ErrorCode.AlreadyExists, `${o.out} exists; a backup never replaces a file`, 'give a new --out file name');
  // The plaintext snapshot lives only in a private directory, for as long as it takes to encrypt it.
  const tmp = await mkdtemp(join(tmpdir(), 'ferry-backup-'));
  await chmod(tmp, 0o700);
  try {
    const snapFile = join(tmp, 'store.snapshot');
    const storeInfo = await store.snapshot(snapFile);
    const files: Array<[string, string, number, number]> = [[storeInfo.path, snapFile, statSync(snapFile).size, 0o600], ...walk(join(o.dataDir, 'pki'), 'pki/')];
    if (!o.withoutChunks) files.push(...walk(o.chunkDir ?? join(o.dataDir, 'chunks'), 'chunks/'));
    const config = o.configFile ? readFileSync(o.configFile) : undefined;
    const manifest: BackupManifest = {
      format: 1, ferryVersion: FERRY_VERSION, createdAtMs: Date.now(), dataDir: o.dataDir, store: storeInfo, chunks: !o.withoutChunks,
      ...(config ? { config: 'config/controller.yaml' } : {}),
      caPin: spkiPin(readFileSync(caCert)), files: files.length + (config ? 1 : 0), bytes: files.reduce((n, f) => n + f[2], config?.length ?? 0),
    };
    await writeStreamAtomic(o.out, async (write) => {
      const archive = new ArchiveWriter(await BackupSealer.start(o.passphrase, write));
      await archive.addBytes('manifest.json', Buffer.from(JSON.stringify(manifest, null, 2)));
      if (config) await archive.addBytes('config/controller.yaml', config);
      for (const [path, abs, size, mode] of files) await archive.addFile(path, abs, size, mode);
      await archive.end();
    }, { mode: 0o600, noReplace: true, dirMode: false });
    return manifest;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export interface RestoreOptions {
  file: string;
  dataDir: string;
  passphrase: string;
  /** Replace a data directory that is not empty (never one a running controller holds). */
  force?: boolean;
  /** For a backup of a PostgreSQL store: the empty database to restore it into. */
  storeUrl?: string;
}

export interface RestoreResult {
  manifest: BackupManifest;
  schemaVersion: number;
  /** Where the settings file from the backup was written, if it had one. */
  configFile?: string;
  /** The directory the old contents were in, removed after the swap (--force). */
  replaced: boolean;
}

function isEmptyDir(dir: string): boolean {
  return !existsSync(dir) || readdirSync(dir).length === 0;
}

/**
 * Restores a backup into `dataDir`. Everything is decrypted, verified and
 * written into a new directory beside it first; `dataDir` is touched only
 * once the whole backup checked out (every segment's tag, the archive's end,
 * the store's integrity), so a wrong passphrase, a truncated or an altered
 * file leaves it as it was. A non-empty `dataDir` is refused unless
 * `force`, and never replaced while a controller holds it.
 */
export async function restoreBackup(o: RestoreOptions): Promise<RestoreResult> {
  if (!existsSync(o.file)) throw new FerryError(ErrorCode.NotFound, `no backup file ${o.file}`, 'give the path of a file made by `ferry controller backup`');
  const occupied = !isEmptyDir(o.dataDir);
  if (occupied && !o.force) {
    throw new FerryError(ErrorCode.InvalidArgument, `${o.dataDir} is not empty; restore refuses to mix a backup with another controller's data`,
      'restore into a new directory, or pass --force to replace what is there (stop the controller first)');
  }
  if (occupied) {
    // Refuses (naming the holder) while a controller runs on it; released again at once: the swap below is a rename.
    DirLock.acquire(o.dataDir, { owner: 'ferry controller restore', what: 'the controller data directory', hint: 'stop the controller (systemctl stop ferry-controller) before restoring over its data directory' }).release();
  }
  const parent = dirname(o.dataDir);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  const staging = join(parent, `.${basename(o.dataDir)}.restore-${randomBytes(4).toString('hex')}`);
  await mkdir(staging, { mode: 0o700 });
  try {
    const fh = await open(o.file, 'r');
    let manifest: BackupManifest | undefined;
    let storeTarget: StoreBackup | undefined;
    try {
      for await (const e of readArchive(openBackup(fh, o.file, o.passphrase), o.file)) {
        if (!manifest) {
          if (e.path !== 'manifest.json') throw new FerryError(ErrorCode.BackupDamaged, `${o.file}: the archive does not start with its manifest`, 'use another copy of the backup');
          const parts: Buffer[] = [];
          for await (const c of e.chunks()) parts.push(c);
          manifest = JSON.parse(Buffer.concat(parts).toString('utf8')) as BackupManifest;
          if (manifest.format !== 1) throw new FerryError(ErrorCode.BackupDamaged, `${o.file}: manifest format ${String(manifest.format)} is unknown`, 'restore it with the ferry version that made it');
          // Where the store goes, and whether this ferry can run it, is settled before anything is unpacked.
          storeTarget = storeBackupForKind(manifest.store.kind, staging, o.storeUrl);
          const latest = MIGRATIONS[MIGRATIONS.length - 1]!.version;
          if (manifest.store.schemaVersion > latest) {
            throw new FerryError(ErrorCode.Config, `the backup's store is at schema version ${manifest.store.schemaVersion}, newer than this controller knows (${latest})`,
              'restore it with the ferry version that made it (or newer)');
          }
          continue;
        }
        const dest = join(staging, e.path);
        await mkdir(dirname(dest), { recursive: true, mode: 0o700 });
        const out = await open(dest, 'wx', 0o600);
        try {
          for await (const c of e.chunks()) await out.writeFile(c);
          await out.chmod(e.mode & 0o777);
          await out.sync();
        } finally {
          await out.close();
        }
      }
    } finally {
      await fh.close();
    }
    if (!manifest) throw new FerryError(ErrorCode.BackupDamaged, `${o.file}: no manifest`, 'use another copy of the backup');
    if (!existsSync(join(staging, 'pki', 'ca.crt')) || !existsSync(join(staging, 'pki', 'ca.key'))) {
      throw new FerryError(ErrorCode.BackupDamaged, `${o.file}: the backup holds no CA certificate and key`, 'use another copy of the backup');
    }
    const { schemaVersion } = await storeTarget!.restore(join(staging, manifest.store.path), staging);
    await rm(join(staging, 'store'), { recursive: true, force: true });
    let configFile: string | undefined;
    if (manifest.config) configFile = join(o.dataDir, manifest.config);
    if (!manifest.chunks) await mkdir(join(staging, 'chunks'), { mode: 0o700 });
    // The swap: the old directory (if any) moves aside, the restored one takes its name.
    const aside = occupied ? join(parent, `.${basename(o.dataDir)}.replaced-${randomBytes(4).toString('hex')}`) : undefined;
    if (aside) await rename(o.dataDir, aside);
    else if (existsSync(o.dataDir)) await rm(o.dataDir, { recursive: true, force: true }); // empty
    await rename(staging, o.dataDir);
    await fsyncDir(parent);
    if (aside) await rm(aside, { recursive: true, force: true });
    return { manifest, schemaVersion, ...(configFile ? { configFile } : {}), replaced: Boolean(aside) };
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}
