/**
 * Worker-thread entry of {@link BuildPool}: chunks and hashes one file (and
 * inspects it when it is an image tar) per message, so a bundle build keeps
 * every core busy instead of running FastCDC and sha256 on the main thread
 * file after file. Errors travel back as plain data (code, message, hint):
 * the pool rebuilds them as FerryErrors.
 */
import { parentPort } from 'node:worker_threads';
import { FerryError } from '../errors.js';
import { chunkFile } from './fastcdc.js';
import { chunkAndInspect } from './builder.js';
import type { BuildJob, BuildReply, WireError } from './build-pool.js';

function wire(e: unknown): WireError {
  return e instanceof FerryError ? { message: e.message, code: e.code, hint: e.hint } : { message: e instanceof Error ? e.message : String(e) };
}

parentPort!.on('message', (job: BuildJob) => {
  void (async (): Promise<BuildReply> => {
    try {
      if (!job.inspect) return { id: job.id, chunks: await chunkFile(job.absPath) };
      const r = await chunkAndInspect(job.absPath);
      return { id: job.id, chunks: r.chunks, info: r.info, inspectError: r.error === undefined ? undefined : wire(r.error) };
    } catch (e) {
      return { id: job.id, failed: wire(e) };
    }
  })().then((reply) => parentPort!.postMessage(reply));
});
