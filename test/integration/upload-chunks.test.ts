import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { ErrorCode } from '../../common/src/errors.js';
import type { UploadChunksResponse } from '../../common/src/gen/ferry/v1/admin.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, startController } from '../support/fixtures.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** One Admin.UploadChunks call with these messages, in order; the controller's answer or its error. */
function upload(admin: Admin, chunks: Array<{ digest: string; data: Buffer }>): Promise<UploadChunksResponse> {
  return new Promise((resolve, reject) => {
    const call = admin.client.uploadChunks((err, res) => (err ? reject(fromServiceError(err)) : resolve(res!)));
    void (async () => {
      for (const c of chunks) if (!call.write(c)) await new Promise<void>((r) => call.once('drain', () => r()));
      call.end();
    })();
  });
}

// Several chunks of one push are verified and stored at once (admin-bundles.ts):
// what the call reports, what is stored and what is refused must be as when
// they were stored one at a time.
describe('Admin.UploadChunks stores several chunks at once', function () {
  this.timeout(60_000);
  let c: Controller;
  let admin: Admin;

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
  });
  after(async () => { admin.close(); await cleanup(c); });

  it('stores every distinct chunk once, counts a repeated one once, and serves them without hashing again', async () => {
    const datas = Array.from({ length: 24 }, (_, i) => randomBytes(50_000 + i * 7919));
    const chunks = datas.map((data) => ({ digest: sha(data), data }));
    const res = await upload(admin, [...chunks.slice(0, 12), chunks[3]!, ...chunks.slice(12), chunks[20]!]);
    assert.equal(res.stored, 24);
    assert.equal(res.bytes, datas.reduce((n, d) => n + d.length, 0));
    for (const ch of chunks) {
      assert.equal(await c.ctx.bundles.chunks.has(ch.digest), true, `chunk ${ch.digest} stored`);
      const served = await c.ctx.bundles.served.read(ch.digest);
      assert.ok(served.data.equals(ch.data), 'stored bytes are the uploaded bytes');
    }
    const again = await upload(admin, chunks.slice(0, 5));
    assert.deepEqual([again.stored, again.bytes], [0, 0], 'chunks already present are not stored again');
  });

  it('refuses a chunk that does not match its digest (CHUNK_DIGEST_MISMATCH), stores nothing under it, and keeps the good ones', async () => {
    const good = Array.from({ length: 10 }, () => randomBytes(80_000)).map((data) => ({ digest: sha(data), data }));
    const lie = { digest: sha(randomBytes(10)), data: randomBytes(80_000) };
    await assert.rejects(upload(admin, [...good.slice(0, 6), lie, ...good.slice(6)]), (e: Error & { code?: string }) => e.code === ErrorCode.ChunkDigestMismatch);
    assert.equal(await c.ctx.bundles.chunks.has(lie.digest), false, 'nothing stored under the wrong digest');
    for (const ch of good.slice(0, 6)) assert.equal(await c.ctx.bundles.chunks.has(ch.digest), true, 'chunks before the bad one are stored');
    const retry = await upload(admin, good);
    // Chunks after the bad one may or may not have been stored when the call failed; the first six were.
    assert.ok(retry.stored <= 4, `a retried push stores only what is still missing (stored ${retry.stored})`);
    for (const ch of good) assert.equal(await c.ctx.bundles.chunks.has(ch.digest), true);
  });
});
