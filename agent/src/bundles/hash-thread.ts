/**
 * SHA-256 for the bundle cache on a worker thread, so hashing (every chunk
 * on arrival, and every file as its chunks are written: two passes over
 * every byte staged) runs beside the main thread's TLS, HTTP/2 and disk
 * work instead of after it. On the benchmark box that is the difference
 * between the agent's main thread being the bottleneck and not.
 *
 * Bytes reach the thread without a copy where the caller can give them up:
 * a buffer that owns its whole allocation (a chunk as grpc-js delivered it)
 * is transferred, and transferred back for `chunk()`. Anything else (a
 * slice of node's shared pool, a caller's scratch buffer) is copied. Chunks
 * below SMALL_BYTES are hashed on the calling thread: a round trip costs
 * more than the hash.
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
const streams = new Map();
parentPort.on('message', (m) => {
  try {
    if (m.op === 'chunk') {
      const hex = createHash('sha256').update(new Uint8Array(m.buf, m.off, m.len)).digest('hex');
      parentPort.postMessage({ id: m.id, hex, buf: m.buf }, [m.buf]);
    } else if (m.op === 'update') {
      let h = streams.get(m.h);
      if (!h) { h = createHash('sha256'); streams.set(m.h, h); }
      h.update(new Uint8Array(m.buf, m.off, m.len));
    } else if (m.op === 'digest') {
      const h = streams.get(m.h) || createHash('sha256');
      streams.delete(m.h);
      parentPort.postMessage({ id: m.id, hex: h.digest('hex') });
    } else if (m.op === 'drop') {
      streams.delete(m.h);
    }
  } catch (e) {
    if (m.id !== undefined) parentPort.postMessage({ id: m.id, error: String(e && e.stack || e) });
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
  /** Bumped per worker started: a stream fed to a worker that died cannot give a digest. */
  generation = 0;
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
      const r = await this.call({ op: 'chunk', buf: data.buffer, off, len }, [data.buffer as ArrayBuffer]);
      return { hex: r.hex!, data: Buffer.from(r.buf!, off, len) };
    }
    const copy = new Uint8Array(data); // exactly the view's bytes
    const r = await this.call({ op: 'chunk', buf: copy.buffer, off: 0, len: copy.length }, [copy.buffer]);
    return { hex: r.hex!, data };
  }

  /** A running sha256 kept on the worker (a file's hash, fed in order). */
  stream(): RemoteSha256 {
    return new RemoteSha256(this, this.nextId++);
  }

  /** @internal Fire-and-forget message (updates); ordered with every other message. */
  post(msg: Record<string, unknown>, transfer: ArrayBuffer[]): void {
    this.start().postMessage(msg, transfer);
  }

  /** @internal Message with a reply. */
  call(msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Reply> {
    const id = this.nextId++;
    const w = this.start();
    const p = new Promise<Reply>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    if (this.waiting.size === 1) w.ref();
    w.postMessage({ ...msg, id }, transfer);
    return p;
  }

  /** Stop the thread (tests; a process that exits does not need to). Pending calls reject. */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true, name: 'ferry-sha256' });
    this.generation++;
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

/** A sha256 on the hash thread, updated in order; see {@link HashThread.stream}. */
export class RemoteSha256 {
  private done = false;
  /** The worker generation that holds this stream's state (0: nothing fed yet). */
  private gen = 0;

  constructor(private readonly thread: HashThread, private readonly h: number) {}

  /**
   * Feed `data`. With `give`, the caller hands the bytes over (they may be
   * transferred: do not touch `data` afterwards); otherwise they are copied.
   */
  update(data: Buffer, give = false): void {
    if (data.length === 0) return;
    if (this.gen === 0) {
      this.thread.post({ op: 'drop', h: this.h }, []); // starts the worker, so its generation is known
      this.gen = this.thread.generation;
    }
    if (give && ownsAllocation(data)) {
      this.thread.post({ op: 'update', h: this.h, buf: data.buffer, off: data.byteOffset, len: data.length }, [data.buffer as ArrayBuffer]);
    } else {
      const copy = new Uint8Array(data);
      this.thread.post({ op: 'update', h: this.h, buf: copy.buffer, off: 0, len: copy.length }, [copy.buffer]);
    }
  }

  /** The digest (hex) of everything fed; the stream is finished. */
  async digest(): Promise<string> {
    this.done = true;
    const hex = (await this.thread.call({ op: 'digest', h: this.h })).hex!;
    if (this.gen !== 0 && this.gen !== this.thread.generation) throw new Error('the sha256 worker restarted while a file was being hashed');
    return hex;
  }

  /** Forget it without a digest (a file being started over, a stage ending). */
  drop(): void {
    if (this.done) return;
    this.done = true;
    this.thread.post({ op: 'drop', h: this.h }, []);
  }
}

/** The process's hash thread. */
export const hashThread = new HashThread();
