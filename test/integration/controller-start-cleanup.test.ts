import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DirLock } from '../../common/src/dir-lock.js';
import type { Controller } from '../../controller/src/controller.js';
import { startController, tempDir, waitFor } from '../support/fixtures.js';

function listen(port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

function close(s: Server): Promise<void> {
  return new Promise((r) => s.close(() => r()));
}

async function freePort(): Promise<number> {
  const s = await listen();
  const port = (s.address() as { port: number }).port;
  await close(s);
  return port;
}

describe('controller start: one per data directory, and a failed start leaves nothing behind', function () {
  this.timeout(60_000);
  let dir: string;
  const running: Controller[] = [];
  beforeEach(() => { dir = tempDir('ferry-start-'); });
  afterEach(async () => {
    for (const c of running.splice(0)) await c.stop(1_000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a second controller on the same data directory in the same process; the first keeps working', async () => {
    const first = await startController({}, dir);
    running.push(first);
    await assert.rejects(startController({}, dir), (e: Error & { code: string }) => {
      assert.equal(e.code, 'CONFIG');
      assert.ok(e.message.includes(dir) && e.message.includes(`pid ${process.pid}`), e.message);
      return true;
    });
    assert.equal((await first.ctx.tokens.list()).length, 0);
    await first.ctx.tokens.create({ ttlMs: 60_000, maxUses: 1, labels: {} });
    assert.equal((await first.ctx.tokens.list()).length, 1);
  });

  it('a start whose port is taken releases the lock: the next start on the directory succeeds', async () => {
    const blocker = await listen();
    const port = (blocker.address() as { port: number }).port;
    try {
      await assert.rejects(startController({ listen: `127.0.0.1:${port}` }, dir), /cannot listen on 127\.0\.0\.1:\d+/);
      assert.equal(DirLock.holder(dir), undefined, 'the lock was released');
    } finally {
      await close(blocker);
    }
    const c = await startController({}, dir);
    running.push(c);
    await c.ctx.tokens.create({ ttlMs: 60_000, maxUses: 1, labels: {} });
    assert.equal(DirLock.holder(dir)?.pid, process.pid);
  });

  it('a start that fails after binding its port frees the port and the lock', async () => {
    const port = await freePort();
    const notADir = join(dir, 'a-file');
    writeFileSync(notADir, '');
    // The admin socket cannot be created under a regular file: this fails after the TLS port is bound.
    await assert.rejects(startController({ listen: `127.0.0.1:${port}`, 'admin-socket': join(notADir, 'admin.sock') }, join(dir, 'data')), /EEXIST|ENOTDIR/);
    assert.equal(DirLock.holder(join(dir, 'data')), undefined, 'the lock was released');
    let s: Server | undefined;
    await waitFor(async () => { s = await listen(port).catch(() => undefined); return s !== undefined; }, 5_000, 'the port to be free again');
    await close(s!);
    const c = await startController({ listen: `127.0.0.1:${port}` }, join(dir, 'data'));
    running.push(c);
    assert.equal(c.port, port);
  });
});
