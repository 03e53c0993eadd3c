import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { listenOn, parseHostPort } from '../../../common/src/host-port.js';

describe('host:port (common/src/host-port.ts)', () => {
  it('parses names, IPv4 and bracketed IPv6, and refuses the rest', () => {
    assert.deepEqual(parseHostPort('ferry.plant7:7443'), { host: 'ferry.plant7', port: 7443 });
    assert.deepEqual(parseHostPort('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
    assert.deepEqual(parseHostPort('[::1]:8443'), { host: '::1', port: 8443 });
    for (const bad of ['ferry', ':7443', 'host:', 'host:65536', 'host:123456', '::1:80', 'a:b:1', '[::1]', 'host:port']) {
      assert.equal(parseHostPort(bad), undefined, bad);
    }
  });

  it('listens on a free port, and hands a failure to the caller\'s error', async () => {
    const a = createServer();
    const port = await listenOn(a, { host: '127.0.0.1', port: 0 }, (e) => e);
    try {
      assert.ok(port > 0);
      const b = createServer();
      await assert.rejects(listenOn(b, { host: '127.0.0.1', port }, (e) => new Error(`taken: ${e.message}`)), /^Error: taken: .*EADDRINUSE/);
    } finally {
      a.close();
    }
  });
});
