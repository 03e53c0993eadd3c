/**
 * The resume record of one bundle being staged: which chunks were verified
 * and written into the bundle's part files, and which files were finished
 * (checked and renamed into place). It is what lets a stage interrupted by a
 * kill, a cut link or a controller restart go on without fetching any
 * verified chunk again.
 *
 * Format: fixed 33-byte records appended to `parts/journal`: a kind byte and
 * 32 bytes (a raw sha256 digest, or a file index as uint32 BE, zero-padded).
 *   1 WRITTEN  chunk written (after its sha256 matched) at every place it
 *              occurs in the part files that existed when it was written
 *   2 BAD      chunk found damaged in a part file: no longer counts
 *   3 FINISHED file checked, fsynced and renamed
 * A torn record at the end (kill mid-append) is cut off on open.
 *
 * Records are not fsynced: after a process kill the page cache keeps both
 * the journal and the part files; after a power cut a record may claim bytes
 * that never reached the disk: chunks recorded by an earlier run are read
 * back and checked against their digests before their file is finished
 * (part-files.ts), and damaged ones are marked BAD and fetched again. An fsync per chunk would cost more than that rare refetch.
 */
import { open, type FileHandle } from 'node:fs/promises';

const RECORD = 33;
const WRITTEN = 1;
const BAD = 2;
const FINISHED = 3;

/** What a journal says, replayed. */
export interface JournalState {
  /** Digests written into the part files (and not marked bad since). */
  written: Set<string>;
  /** Indexes (in manifest order) of files finished. */
  finished: Set<number>;
}

/** See module comment. */
export class StageJournal {
  private constructor(private readonly fh: FileHandle) {}

  /** Open (creating) the journal at `path`, drop a torn tail, and replay it. */
  static async open(path: string): Promise<{ journal: StageJournal; state: JournalState }> {
    const fh = await open(path, 'a+', 0o600);
    try {
      const bytes = await fh.readFile();
      const whole = bytes.length - (bytes.length % RECORD);
      if (whole !== bytes.length) await fh.truncate(whole);
      const state: JournalState = { written: new Set(), finished: new Set() };
      for (let p = 0; p < whole; p += RECORD) {
        const kind = bytes[p];
        const body = bytes.subarray(p + 1, p + RECORD);
        if (kind === WRITTEN) state.written.add(body.toString('hex'));
        else if (kind === BAD) state.written.delete(body.toString('hex'));
        else if (kind === FINISHED) state.finished.add(body.readUInt32BE(0));
      }
      return { journal: new StageJournal(fh), state };
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Record a chunk as written everywhere it occurs. */
  written(digest: string): Promise<void> {
    return this.append(WRITTEN, Buffer.from(digest, 'hex'));
  }

  /** Record a chunk as damaged in the part files (it is fetched or copied again). */
  bad(digest: string): Promise<void> {
    return this.append(BAD, Buffer.from(digest, 'hex'));
  }

  /** Record a file as finished. */
  finished(fileIndex: number): Promise<void> {
    const body = Buffer.alloc(32);
    body.writeUInt32BE(fileIndex, 0);
    return this.append(FINISHED, body);
  }

  close(): Promise<void> {
    return this.fh.close();
  }

  private async append(kind: number, body: Buffer): Promise<void> {
    const rec = Buffer.allocUnsafe(RECORD);
    rec[0] = kind;
    body.copy(rec, 1);
    // O_APPEND: concurrent appends never interleave within a 33-byte write.
    await this.fh.write(rec, 0, RECORD, null);
  }
}
