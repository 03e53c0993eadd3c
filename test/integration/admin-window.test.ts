import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session, type Settings } from 'node:http2';
import { connect as netConnect } from 'node:net';
import type { Controller } from '../../controller/src/controller.js';
import { ADMIN_WINDOW_BYTES } from '../../controller/src/controller-listeners.js';
import { cleanup, startController } from '../support/fixtures.js';

describe('controller: the admin socket\'s HTTP/2 window for pushes', function () {
  this.timeout(30_000);
  let c: Controller;
  let session: ClientHttp2Session | undefined;

  before(async () => { c = await startController(); });
  after(async () => { session?.destroy(); await cleanup(c, []); });

  it('announces an 8 MiB stream window and 1 MiB frames to a client, where grpc-js alone announces 64 KiB and 16 KiB', async () => {
    session = h2connect('http://localhost', { createConnection: () => netConnect(c.config.adminSocket) });
    // The server's SETTINGS after its widening (the first SETTINGS frame carries grpc-js's own; the second ours).
    const settings = await new Promise<Settings>((resolve, reject) => {
      session!.on('error', reject);
      session!.on('remoteSettings', (s) => { if (s.initialWindowSize === ADMIN_WINDOW_BYTES) resolve(s); });
      setTimeout(() => reject(new Error(`the admin socket announced ${JSON.stringify(session!.remoteSettings)}`)), 10_000).unref();
    });
    assert.equal(settings.initialWindowSize, ADMIN_WINDOW_BYTES);
    assert.equal(settings.maxFrameSize, 1024 * 1024);
  });
});
