/**
 * SHA-256 of received chunks on a worker thread, so verifying every chunk
 * runs beside the main thread's TLS, HTTP/2 and disk work instead of after
 * it (the agent's main thread was the bottleneck of staging).
 *
 * A chunk as grpc-js delivered it owns its allocation: it is transferred to
 * the thread and back, no copy, and no garbage left on the thread (chunk
 * buffers left for a second isolate's GC were measured to raise the agent's
 * peak RSS, which is also why whole-file hashes stay on the main thread,
 * file-hasher.ts). Anything else (a slice of node's shared pool, a view into
 * a caller's buffer) is copied. Chunks below SMALL_BYTES are hashed on the
 * calling thread: a round trip costs more than the hash.
 *
 * The worker's code is inline (eval) so the single-binary agent needs no
 * second file. One thread per process, started on first use and unref'd
 * while idle, so it never keeps an agent alive.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** Below this, hash on the calling thread. */
export const SMALL_BYTES = 64 * 1024;

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', (m) => {
  try {
    const hex = createHash('sha256').update(new Uint8Array(m.buf, m.off, m.len)).digest('hex');
    parentPort.postMessage({ id: m.id, hex, buf: m.buf }, [m.buf]);
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.stack || e) });
  }
});
`;

interface Reply { id: number; hex?: string; buf?: ArrayBuffer; error?: string }

/** True if `b` is the only view that matters of an allocation of its own (safe to transfer once the caller is done with it). */
function ownsAllocation(b: Buffer): boolean {
  return b.buffer.byteLength > Buffer.poolSize && b.buffer.byteLength - b.length <= 4096;
}

/** See module comment. */
export class HashThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();

  /**
   * sha256 (hex) of `data`, and the bytes to use afterwards: with `give`,
   * `data` may have been transferred to the worker and back, so only the
   * returned buffer is valid (same bytes, same length).
   */
  async chunk(data: Buffer, give: boolean): Promise<{ hex: string; data: Buffer }> {
    if (data.length < SMALL_BYTES) return { hex: createHash('sha256').update(data).digest('hex'), data };
    if (give && ownsAllocation(data)) {
      const { byteOffset: off, length: len } = data;
      const r = await this.call({ buf: data.buffer, off, len }, [data.buffer as ArrayBuffer]);
      return { hex: r.hex!, data: Buffer.from(r.buf!, off, len) };
    }
    const copy = new Uint8Array(data); // exactly the view's bytes
    const r = await this.call({ buf: copy.buffer, off: 0, len: copy.length }, [copy.buffer]);
    return { hex: r.hex!, data };
  }

  /** Stop the thread (tests; a process that exits does not need to). Pending calls reject. */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  private call(msg: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<Reply> {
    const id = this.nextId++;
    const w = this.start();
    const p = new Promise<Reply>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    if (this.waiting.size === 1) w.ref();
    w.postMessage({ ...msg, id }, transfer);
    return p;
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true, name: 'ferry-sha256' });
    w.unref();
    w.on('message', (r: Reply) => {
      const waiter = this.waiting.get(r.id);
      if (!waiter) return;
      this.waiting.delete(r.id);
      if (this.waiting.size === 0) w.unref();
      if (r.error !== undefined) waiter.reject(new Error(`sha256 worker: ${r.error}`));
      else waiter.resolve(r);
    });
    const fail = (e: Error) => {
      if (this.worker === w) this.worker = undefined;
      for (const [, waiter] of this.waiting) waiter.reject(e);
      this.waiting.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`sha256 worker exited (code ${code})`)));
    this.worker = w;
    return w;
  }
}

/** The process's hash thread. */
export const hashThread = new HashThread();
