/**
 * The files of a bundle being staged, built in place: each file has a part
 * file (`parts/.ferry-part-<index>`, its manifest index) and every verified
 * chunk is written straight into it at its offset(s), once, from the bytes
 * that were just hashed. No per-chunk file, no second copy.
 *
 * A file is finished as soon as its last chunk is written: it is fsynced,
 * given its exact mode and renamed to its manifest path, so a reader never
 * sees a partial file there.
 *
 * Every byte is hashed once on this host: each chunk is written from bytes
 * just checked against its signed digest, so the file is the signer's file
 * without a second, whole-file sha256 (the controller checked at commit that
 * each file's chunks produce its manifest sha256: controller/src/bundles/
 * file-digests.ts). What was not checked in this process is read back and
 * checked chunk by chunk before the file is finished: chunks an earlier,
 * interrupted stage wrote (the journal may have got ahead of the data
 * before a power cut, or the disk rotted them since). Chunks that no longer
 * hash to their digest are marked BAD and become pending again, to be
 * fetched or copied once more; the next finish then reads the whole file
 * back, and a file found damaged twice is fatal (a failing disk).
 *
 * Resume state is kept by {@link StageJournal}; see there.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, open, rename, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { BundleFile } from '../../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { mkdirExact } from './file-assembler.js';
import type { JournalState, StageJournal } from './stage-journal.js';

/** Part files start with this, so "no temp file left" is easy to check. */
export const PART_PREFIX = '.ferry-part-';
/** Part files kept open at once (bundles may have thousands of small files). */
const MAX_OPEN = 32;

/** Where a chunk goes: file index, chunk index in that file, byte offset. */
interface Place {
  file: number;
  index: number;
  offset: number;
}

/** See module comment. */
export class PartFiles {
  /** Digest → places still to be written (only digests with some). */
  private readonly pending = new Map<string, Place[]>();
  /** Bytes at the places in `pending` (kept as it changes: progress asks for it per chunk). */
  private pendingTotal = 0;
  /** Per file: chunk places still to be written; -1 once finished. */
  private readonly remaining: number[];
  /** Open part files; `busy` counts writes in flight, so only idle ones are closed. */
  private readonly handles = new Map<number, { fh: Promise<FileHandle>; busy: number }>();
  /** Times a file was found with damaged chunks. */
  private readonly damaged: number[];
  private readonly sizes = new Map<string, number>();
  /** Per file: indexes of chunks in its part file not checked by this process (read back and checked at finish). */
  private readonly unchecked: Array<Set<number>>;
  private readonly finishing = new Set<Promise<void>>();
  private fatal: unknown;

  private constructor(
    private readonly partsDir: string,
    private readonly filesDir: string,
    private readonly files: readonly BundleFile[],
    private readonly journal: StageJournal,
    private readonly written: Set<string>,
  ) {
    this.remaining = files.map(() => 0);
    this.damaged = files.map(() => 0);
    this.unchecked = files.map(() => new Set<number>());
    for (const f of files) for (const c of f.chunks) this.sizes.set(c.digest, c.size);
  }

  /**
   * Plan from the journal: a file finished and still in place is done; in a
   * part file that exists, chunks the journal lists are there; everything
   * else is pending. Part files missing are created (empty files included).
   */
  static async open(partsDir: string, filesDir: string, files: readonly BundleFile[], journal: StageJournal, state: JournalState): Promise<PartFiles> {
    const p = new PartFiles(partsDir, filesDir, files, journal, state.written);
    for (let i = 0; i < files.length; i++) {
      const f = files[i]!;
      if (state.finished.has(i) && (await stat(p.target(f)).then((s) => s.size === f.size, () => false))) {
        p.remaining[i] = -1;
        continue;
      }
      const part = p.partPath(i);
      const had = existsSync(part);
      if (!had) await (await open(part, 'w', 0o600)).close();
      let offset = 0;
      f.chunks.forEach((c, index) => {
        if (!had || !state.written.has(c.digest)) p.addPending(c.digest, { file: i, index, offset });
        else p.unchecked[i]!.add(index);
        offset += c.size;
      });
    }
    for (let i = 0; i < files.length; i++) if (p.remaining[i] === 0) p.finish(i);
    return p;
  }

  /** Digests with places still to write, in file order, with their sizes and the file (index) of their first place. */
  pendingChunks(): Array<{ digest: string; size: number; group: number }> {
    return [...this.pending].map(([digest, places]) => ({ digest, size: this.sizes.get(digest)!, group: places[0]!.file }));
  }

  /** Bytes still to be written into part files (for the free-space check). */
  pendingBytes(): number {
    return this.pendingTotal;
  }

  /**
   * Where `digest` is already written in this bundle (a part file, or a
   * file already finished), if anywhere: a part file recreated after an
   * interruption needs it again, and this is a local copy to read from
   * (verified when read).
   */
  writtenPlace(digest: string): { path: string; offset: number } | undefined {
    if (!this.written.has(digest)) return undefined;
    const missing = new Set((this.pending.get(digest) ?? []).map((pl) => `${pl.file}:${pl.index}`));
    for (let i = 0; i < this.files.length; i++) {
      // A finished file was renamed to its manifest path; it still holds the bytes.
      const path = this.remaining[i] === -1 ? this.target(this.files[i]!) : this.partPath(i);
      let offset = 0;
      for (const [k, c] of this.files[i]!.chunks.entries()) {
        if (c.digest === digest && !missing.has(`${i}:${k}`)) return { path, offset };
        offset += c.size;
      }
    }
    return undefined;
  }

  /**
   * Write verified bytes of `digest` at every pending place, record them,
   * and finish the files this completes. Rethrows a fatal error of an
   * earlier finish, so a fetch stops early. Once it resolves nothing refers
   * to `data` any more (the caller may reuse it).
   */
  async write(digest: string, data: Buffer): Promise<void> {
    if (this.fatal !== undefined) throw this.fatal;
    const places = this.pending.get(digest);
    if (!places) return; // written meanwhile (e.g. a retried call delivered it again)
    this.pending.delete(digest);
    const bytes = places.length * this.sizes.get(digest)!;
    this.pendingTotal -= bytes;
    try {
      await Promise.all(places.map((pl) => this.pwrite(pl.file, data, pl.offset)));
    } catch (e) {
      this.pending.set(digest, places); // still to write; `remaining` was not counted down
      this.pendingTotal += bytes;
      throw e;
    }
    await this.journal.written(digest);
    this.written.add(digest);
    for (const pl of places) if (--this.remaining[pl.file]! === 0) this.finish(pl.file);
  }

  /** Wait for every finish started so far; throws the first fatal error. */
  async settled(): Promise<void> {
    while (this.finishing.size > 0) await Promise.all(this.finishing);
    if (this.fatal !== undefined) throw this.fatal;
  }

  /** True when every file is finished. */
  done(): boolean {
    return this.remaining.every((r) => r === -1);
  }

  /** Close open part files (the stage ends or stops; part files and journal stay for a resume). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.finishing]);
    for (const [, h] of this.handles) await h.fh.then((fh) => fh.close()).catch(() => undefined);
    this.handles.clear();
  }

  private addPending(digest: string, place: Place): void {
    const list = this.pending.get(digest);
    if (list) list.push(place);
    else this.pending.set(digest, [place]);
    this.pendingTotal += this.sizes.get(digest)!;
    this.remaining[place.file]!++;
  }

  private partPath(i: number): string {
    return join(this.partsDir, `${PART_PREFIX}${i}`);
  }

  private target(f: BundleFile): string {
    const t = resolve(this.filesDir, f.path);
    // Paths were validated already; this is the last line of defence against writing outside.
    if (!t.startsWith(this.filesDir + sep)) {
      throw new FerryError(ErrorCode.BundleInvalid, `file path ${JSON.stringify(f.path)} resolves outside ${this.filesDir}`, 'refuse this bundle and rebuild it');
    }
    return t;
  }

  private async pwrite(file: number, data: Buffer, position: number): Promise<void> {
    let h = this.handles.get(file);
    if (!h) {
      this.closeIdle();
      h = { fh: open(this.partPath(file), 'r+'), busy: 0 };
      this.handles.set(file, h);
    }
    h.busy++;
    try {
      const fh = await h.fh;
      for (let off = 0; off < data.length;) {
        const { bytesWritten } = await fh.write(data, off, data.length - off, position + off);
        off += bytesWritten;
      }
    } catch (e) {
      if (this.handles.get(file) === h) this.handles.delete(file);
      throw e;
    } finally {
      h.busy--;
    }
  }

  /** Keep at most MAX_OPEN part files open: close idle ones, oldest first. Synchronous, so no two writers race on the map. */
  private closeIdle(): void {
    for (const [i, h] of this.handles) {
      if (this.handles.size < MAX_OPEN) return;
      if (h.busy > 0) continue;
      this.handles.delete(i);
      void h.fh.then((fh) => fh.close()).catch(() => undefined);
    }
  }

  private finish(i: number): void {
    this.remaining[i] = -1;
    const p = this.finishFile(i).catch((e: unknown) => {
      this.fatal ??= e;
    }).finally(() => this.finishing.delete(p));
    this.finishing.add(p);
  }

  /** Check what this process did not, then fsync, chmod, rename; damaged chunks become pending again (see module comment). */
  private async finishFile(i: number): Promise<void> {
    const f = this.files[i]!;
    const cached = this.handles.get(i); // idle: its last write completed before finish() ran
    this.handles.delete(i);
    const fh = await (cached?.fh ?? open(this.partPath(i), 'r+'));
    let closed = false;
    try {
      const bad = await this.damagedChunks(fh, f, this.unchecked[i]!);
      this.unchecked[i]!.clear();
      if (bad.length > 0) {
        if (++this.damaged[i]! > 1) {
          throw new FerryError(ErrorCode.ChunkCorrupt,
            `file ${JSON.stringify(f.path)} was found with damaged chunks twice: chunks written under ${this.partsDir} keep going bad on disk (${bad[0]}…)`,
            'check the disk (dmesg, smartctl) and the filesystem before staging again');
        }
        this.remaining[i] = 0;
        for (const d of bad) await this.markBad(d, i);
        // The next finish reads the whole file back: a chunk going bad again means the disk is failing.
        f.chunks.forEach((_, index) => this.unchecked[i]!.add(index));
        return;
      }
      // Longer than the file only if something else wrote there; the chunks are all in place.
      if ((await fh.stat()).size > f.size) await fh.truncate(f.size);
      await fh.sync();
      await fh.close();
      closed = true;
      const target = this.target(f);
      await mkdirExact(dirname(target));
      await chmod(this.partPath(i), f.mode); // exact mode: open()'s is filtered by umask
      await rename(this.partPath(i), target);
      await this.journal.finished(i);
    } finally {
      if (!closed) await fh.close().catch(() => undefined);
    }
  }

  /** Chunks of `f` at the `indexes` given whose bytes in its part file do not hash to their digest. */
  private async damagedChunks(fh: FileHandle, f: BundleFile, indexes: ReadonlySet<number>): Promise<string[]> {
    const bad = new Set<string>();
    if (indexes.size === 0) return [];
    let buf = Buffer.alloc(0);
    let offset = 0;
    for (const [index, c] of f.chunks.entries()) {
      if (indexes.has(index)) {
        if (buf.length < c.size) buf = Buffer.allocUnsafe(c.size);
        let got = 0;
        for (;;) {
          const { bytesRead } = await fh.read(buf, got, c.size - got, offset + got);
          got += bytesRead;
          if (bytesRead === 0 || got === c.size) break;
        }
        if (got !== c.size || createHash('sha256').update(buf.subarray(0, c.size)).digest('hex') !== c.digest) bad.add(c.digest);
      }
      offset += c.size;
    }
    return [...bad];
  }

  /** A damaged chunk of file `i` is written there again (fetched or copied); other files check theirs when they finish. */
  private async markBad(digest: string, i: number): Promise<void> {
    await this.journal.bad(digest);
    this.written.delete(digest);
    let offset = 0;
    for (const [k, c] of this.files[i]!.chunks.entries()) {
      if (c.digest === digest) this.addPending(digest, { file: i, index: k, offset });
      offset += c.size;
    }
  }
}
