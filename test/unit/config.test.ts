import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadControllerConfig } from '../../controller/src/config.js';

describe('controller config layering', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-cfg-'));
  const file = join(dir, 'ferry.yaml');

  it('applies defaults < file < env < flags', () => {
    writeFileSync(file, 'listen: 0.0.0.0:9000\nheartbeat: 20s\nlog-level: warn\ndata: /tmp/from-file\n');
    const cfg = loadControllerConfig({ listen: '127.0.0.1:9002' }, file, { FERRY_HEARTBEAT: '5s', FERRY_LISTEN: '127.0.0.1:9001' });
    assert.equal(cfg.listen, '127.0.0.1:9002');
    assert.equal(cfg.heartbeatIntervalMs, 5000);
    assert.equal(cfg.logLevel, 'warn');
    assert.equal(cfg.dataDir, '/tmp/from-file');
    assert.equal(cfg.adminSocket, '/tmp/from-file/admin.sock');
    assert.equal(cfg.agentCertTtlMs, 72 * 3_600_000);
    assert.ok(cfg.sans.includes('127.0.0.1') && cfg.sans.includes('localhost'));
    assert.equal(cfg.registryAddr, '', 'the registry listener is off unless asked for');
    assert.equal(loadControllerConfig({}, undefined, { FERRY_REGISTRY_ADDR: '0.0.0.0:5000' }).registryAddr, '0.0.0.0:5000');
  });

  it('reports every problem at once', () => {
    writeFileSync(file, 'listen: nope\ncolour: blue\nregistry-addr: :5000x\n');
    assert.throws(() => loadControllerConfig({ heartbeat: 'soon', 'log-level': 'loud', 'http-addr': 'metrics' }, file, {}), (e: Error) => {
      for (const part of ['listen "nope"', 'unknown setting "colour"', 'heartbeat "soon"', 'log-level "loud"', 'registry-addr ":5000x"', 'http-addr "metrics" is not host:port (or "off")']) {
        assert.ok(e.message.includes(part), `missing ${part} in: ${e.message}`);
      }
      return true;
    });
  });

  it('puts the metrics and health listener on loopback beside the gRPC port unless told otherwise', () => {
    assert.equal(loadControllerConfig({}, undefined, {}).httpAddr, '127.0.0.1:7444');
    assert.equal(loadControllerConfig({ listen: '0.0.0.0:9000' }, undefined, {}).httpAddr, '127.0.0.1:9001');
    assert.equal(loadControllerConfig({ listen: '127.0.0.1:0' }, undefined, {}).httpAddr, '127.0.0.1:0');
    assert.equal(loadControllerConfig({}, undefined, { FERRY_HTTP_ADDR: '0.0.0.0:9100' }).httpAddr, '0.0.0.0:9100');
    assert.equal(loadControllerConfig({ 'http-addr': 'off' }, undefined, {}).httpAddr, undefined);
    assert.throws(() => loadControllerConfig({ listen: '0.0.0.0:65535' }, undefined, {}), /http-addr: the default port .* would be 65536/);
  });
});
