import assert from 'node:assert/strict';
import { constants } from 'node:crypto';
import { connect, type TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { loadControllerConfig } from '../../controller/src/config.js';
import { Controller } from '../../controller/src/controller.js';
import { ferryCipherList, PREFERRED_TLS13_SUITE } from '../../common/src/tls-ciphers.js';
import { cleanup, tempDir } from '../support/fixtures.js';

/** The suite a client offering `ciphers` (in that order) is given by the server at `port`. */
async function negotiated(port: number, ciphers: string, alpn: string): Promise<string> {
  const socket: TLSSocket = connect({ host: '127.0.0.1', port, ciphers, ALPNProtocols: [alpn], rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  try {
    await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); });
    return socket.getCipher().standardName;
  } finally {
    socket.destroy();
  }
}

describe('TLS: every Ferry server gives AES-128-GCM to clients that offer it, whatever their order', function () {
  this.timeout(30_000);
  let c: Controller;
  // Node's (and curl's) own order: AES-256-GCM first. The controller changed this
  // process's default, so the client states the original list explicitly.
  const nodeDefault = constants.defaultCoreCipherList;

  before(async () => {
    const cfg = loadControllerConfig({ data: tempDir(), listen: '127.0.0.1:0', 'registry-addr': '127.0.0.1:0' }, undefined, {});
    c = await Controller.start(cfg, pino({ level: 'silent' }));
  });
  after(async () => { await cleanup(c, []); });

  it('keeps every suite of Node\'s list, with AES-128-GCM moved to the front', () => {
    const list = ferryCipherList(nodeDefault);
    assert.ok(nodeDefault.startsWith('TLS_AES_256_GCM_SHA384:'), nodeDefault);
    assert.ok(list.startsWith(`${PREFERRED_TLS13_SUITE}:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:`), list);
    assert.deepEqual([...list.split(':')].sort(), [...nodeDefault.split(':')].sort());
  });

  it('the gRPC port (agents, relays, remote operators) and the registry port pick AES-128-GCM for a client that asks for AES-256-GCM first', async () => {
    assert.equal(await negotiated(c.port, nodeDefault, 'h2'), 'TLS_AES_128_GCM_SHA256');
    assert.equal(await negotiated(c.registry!.port, nodeDefault, 'http/1.1'), 'TLS_AES_128_GCM_SHA256');
  });

  it('a client that offers only AES-256-GCM or ChaCha20 still connects with it', async () => {
    assert.equal(await negotiated(c.registry!.port, 'TLS_AES_256_GCM_SHA384', 'http/1.1'), 'TLS_AES_256_GCM_SHA384');
    assert.equal(await negotiated(c.port, 'TLS_CHACHA20_POLY1305_SHA256', 'h2'), 'TLS_CHACHA20_POLY1305_SHA256');
  });
});
