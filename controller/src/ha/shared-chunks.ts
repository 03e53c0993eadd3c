import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { writeFileAtomic } from '../../../common/src/secure-fs.js';
import type { Db } from '../store/db.js';

/** The file in a chunk directory naming the chunk store it is (one id per store of replicas). */
export const CHUNK_MARKER = 'ferry-chunk-store';
/** The store_settings row holding the id every replica's chunk directory must carry. */
const SETTING = 'chunk_store_marker';

function readMarker(dir: string): string | undefined {
  const p = join(dir, CHUNK_MARKER);
  return existsSync(p) ? readFileSync(p, 'utf8').trim() : undefined;
}

/**
 * Replicas on one PostgreSQL store share one chunk directory (docs/ha.md §5):
 * a bundle pushed to one replica is served by every other at once, and no
 * replica's own disk holds anything the others need. Whether two replicas
 * see the same directory cannot be asked of the filesystem, so the first
 * replica writes a random id into the directory (a file no other can have
 * made, created without replacing) and into the store; every later replica
 * must find that same id in its directory, or it is refused before it
 * serves anyone: a replica with a local, empty or foreign chunk directory
 * would answer "no such chunk" for bundles the store says are committed.
 * Returns the id, and whether this replica created it.
 */
export async function claimSharedChunkDir(db: Db, dir: string): Promise<{ id: string; created: boolean }> {
  const stored = async () => (await db.get<{ value: string }>('SELECT value FROM store_settings WHERE name = ?', [SETTING]))?.value;
  let want = await stored();
  let created = false;
  if (want === undefined) {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    let mine = readMarker(dir);
    if (mine === undefined) {
      try {
        // noReplace: of two replicas racing on one shared directory, one file wins and both then read it.
        writeFileAtomic(join(dir, CHUNK_MARKER), `${randomBytes(16).toString('hex')}\n`, { mode: 0o644, noReplace: true, dirMode: false });
        created = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      mine = readMarker(dir)!;
    }
    await db.run('INSERT INTO store_settings (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING', [SETTING, mine, Date.now()]);
    want = (await stored())!;
  }
  const have = readMarker(dir);
  if (have !== want) {
    throw new FerryError(ErrorCode.Config,
      have === undefined
        ? `the chunk directory ${dir} is not the one the other replicas on this store share (it has no ${CHUNK_MARKER} file; the store expects chunk store ${want.slice(0, 12)}…)`
        : `the chunk directory ${dir} belongs to another chunk store (${have.slice(0, 12)}…) than the one the replicas on this store share (${want.slice(0, 12)}…)`,
      'give every replica --chunks on the same shared filesystem (NFSv4, CephFS; docs/ha.md "Chunks"); a replica must not keep chunks on its own disk');
  }
  return { id: want, created };
}
