import 'reflect-metadata';
import assert from 'node:assert/strict';
import { chunkSpan, type IndexedBundleFile } from '../../../controller/src/registry/bundle-bytes.js';
import { relayNames } from '../../../controller/src/relays/relay-directory.js';
import type { AgentRecord } from '../../../controller/src/store/agents.js';
import type { RelayRecord } from '../../../controller/src/store/relays.js';

/** A file of chunks of these sizes, digests d0, d1, ... */
function file(...sizes: number[]): IndexedBundleFile {
  let at = 0;
  const chunks = sizes.map((size, i) => ({ digest: `d${i}`, size }));
  return { file: { path: 'f', mode: 0o644, size: at, sha256: '', chunks }, ends: sizes.map((s) => (at += s)) };
}

describe('what a relay is told to send (chunkSpan)', () => {
  const f = file(100, 50, 200);

  it('names the chunks a range is cut from and where it starts in the first', () => {
    assert.deepEqual(chunkSpan(f, 0, 349), { chunks: f.file.chunks, skip: 0, length: 350 });
    assert.deepEqual(chunkSpan(f, 120, 130), { chunks: [{ digest: 'd1', size: 50 }], skip: 20, length: 11 });
    assert.deepEqual(chunkSpan(f, 99, 150), { chunks: f.file.chunks, skip: 99, length: 52 });
    assert.deepEqual(chunkSpan(f, 150, 150), { chunks: [{ digest: 'd2', size: 200 }], skip: 0, length: 1 });
  });

  it('an empty range (an empty blob or file) names no chunk', () => {
    assert.deepEqual(chunkSpan(f, 0, -1), { chunks: [], skip: 0, length: 0 });
  });
});

describe('names a relay certificate carries (relayNames)', () => {
  it('hostname, reported addresses, listen/advertise/registry hosts and loopback; no wildcard', () => {
    const relay = { listen: '0.0.0.0:7444', advertise: 'gw.plant7.example:7444', registryListen: '10.7.0.2:5000' } as RelayRecord;
    const agent = { hostname: 'gw-1', facts: { interfaces: [{ name: 'eth0', mac: '', addresses: ['10.7.0.2/24', 'fd00::2/64'] }] } } as unknown as AgentRecord;
    const n = relayNames(relay, agent);
    assert.deepEqual(n.dnsNames.sort(), ['gw-1', 'gw.plant7.example', 'localhost']);
    assert.deepEqual(n.ipAddresses.sort(), ['10.7.0.2', '127.0.0.1', '::1', 'fd00::2']);
  });
});
