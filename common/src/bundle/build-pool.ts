/**
 * Worker threads for `bundle build` / `push DIR`: each file is read,
 * FastCDC-chunked, sha256-hashed (per chunk and whole) and, for image tars,
 * inspected in a worker (build-worker.ts), several files at once. On the
 * main thread the same work ran file after file on one core; measured in
 * bench-results/bundles.md (the ingest rows).
 *
 * Results do not depend on the number of workers: each file is done whole by
 * one worker, and the builder puts them back in walk order.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ErrorCode, FerryError } from '../errors.js';
import type { FileChunks } from './fastcdc.js';
import type { ImageTarInfo } from './image-tar.js';

/** An error as it crosses the thread boundary. */
export interface WireError { message: string; code?: ErrorCode; hint?: string }

/** One file to do. */
export interface BuildJob { id: number; absPath: string; inspect: boolean }

/** What a worker answers for a job. */
export interface BuildReply {
  id: number;
  chunks?: FileChunks;
  info?: ImageTarInfo;
  /** Inspection failed (the file was still chunked): the builder decides whether that matters. */
  inspectError?: WireError;
  /** Reading or chunking failed. */
  failed?: WireError;
}

/** What the builder gets back for one file. */
export interface BuiltFile { chunks: FileChunks; info?: ImageTarInfo; inspectError?: Error }

/** Workers used by default: every core, at most 4 (reading the disk is the next limit). */
export function defaultBuildWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

const fromWire = (e: WireError): Error => (e.code ? new FerryError(e.code, e.message, e.hint) : new Error(e.message));

/** See module comment. One pool per build; {@link close} it when done. */
export class BuildPool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly waiting: Array<{ resolve: (w: Worker) => void; reject: (e: Error) => void }> = [];
  private broken: Error | undefined;
  private readonly pending = new Map<number, { resolve: (r: BuildReply) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private closed = false;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) this.spawn();
  }

  private spawn(): void {
    const w = new Worker(new URL('./build-worker.js', import.meta.url));
    w.on('message', (r: BuildReply) => {
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      this.release(w);
      p?.resolve(r);
    });
    // A worker that dies (out of memory, a bug) fails what it held; the build stops with that error.
    w.on('error', (err) => this.failAll(new FerryError(ErrorCode.Internal, `bundle build worker failed: ${err.message}`)));
    w.on('exit', (code) => {
      if (!this.closed) this.failAll(new FerryError(ErrorCode.Internal, `bundle build worker exited (code ${code})`));
    });
    this.all.push(w);
    this.idle.push(w);
  }

  private failAll(err: Error): void {
    this.broken ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const q of this.waiting.splice(0)) q.reject(err);
  }

  private release(w: Worker): void {
    const next = this.waiting.shift();
    if (next) next.resolve(w);
    else this.idle.push(w);
  }

  /** Chunks (and with `inspect`, inspects) the file at `absPath` on a free worker. */
  async file(absPath: string, inspect: boolean): Promise<BuiltFile> {
    if (this.closed) throw new Error('BuildPool: closed');
    if (this.broken) throw this.broken;
    const w = this.idle.pop() ?? (await new Promise<Worker>((resolve, reject) => this.waiting.push({ resolve, reject })));
    const id = this.nextId++;
    const reply = await new Promise<BuildReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ id, absPath, inspect } satisfies BuildJob);
    });
    if (reply.failed) throw fromWire(reply.failed);
    return { chunks: reply.chunks!, info: reply.info, inspectError: reply.inspectError && fromWire(reply.inspectError) };
  }

  /** Stops every worker. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.all.map((w) => w.terminate()));
  }
}
