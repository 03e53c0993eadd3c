import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAgentConfig } from '../../agent/src/config.js';

describe('agent config layering', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-agent-cfg-'));
    file = join(dir, 'agent.yaml');
    for (const d of ['root-file', 'root-env', 'root-flag']) mkdirSync(join(dir, d));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('applies defaults < file < FERRY_AGENT_* < flags, setting by setting', () => {
    writeFileSync(file, [
      `state: ${join(dir, 'state-file')}`, 'log-level: warn', 'bandwidth: 1M', `root: ${join(dir, 'root-file')}`, 'hostname: from-file', '',
    ].join('\n'));
    const env = { FERRY_AGENT_STATE: join(dir, 'state-env'), FERRY_AGENT_BANDWIDTH: '2M', FERRY_AGENT_ROOT: join(dir, 'root-env') };
    const cfg = loadAgentConfig({ root: join(dir, 'root-flag') }, file, env);
    assert.equal(cfg.stateDir, join(dir, 'state-env'), 'env over file');
    assert.equal(cfg.logLevel, 'warn', 'file over default');
    assert.equal(cfg.bandwidthBytesPerSec, 2 * 1024 * 1024);
    assert.equal(cfg.root, join(dir, 'root-flag'), 'flag over env');
    assert.equal(cfg.hostname, 'from-file');
    const flags = loadAgentConfig({ state: 'rel/state', 'log-level': 'debug', hostname: 'edge-7' }, file, { FERRY_AGENT_LOG_LEVEL: 'error', FERRY_AGENT_HOSTNAME: 'env-name' });
    assert.equal(flags.stateDir, join(process.cwd(), 'rel/state'), 'relative paths are resolved once');
    assert.equal(flags.logLevel, 'debug');
    assert.equal(flags.hostname, 'edge-7');
    assert.equal(loadAgentConfig({}, file, { FERRY_AGENT_LOG_LEVEL: 'error' }).logLevel, 'error', 'env over file for log level');
  });

  it('has defaults for everything', () => {
    const cfg = loadAgentConfig({}, undefined, {});
    assert.equal(cfg.logLevel, 'info');
    assert.equal(cfg.bandwidthBytesPerSec, 0);
    assert.equal(cfg.root, undefined);
    assert.equal(cfg.hostname, undefined);
    assert.match(cfg.stateDir, /ferry-agent$/);
    assert.equal(loadAgentConfig({ root: '/' }, undefined, {}).root, undefined, '--root / is the real root');
  });

  it('reports every problem, from every layer, in one error', () => {
    writeFileSync(file, 'bandwidth: fast\ncolour: blue\n');
    assert.throws(() => loadAgentConfig({ hostname: 'bad name' }, file, { FERRY_AGENT_LOG_LEVEL: 'loud', FERRY_AGENT_ROOT: join(dir, 'nope') }), (e: Error & { code: string }) => {
      assert.equal(e.code, 'CONFIG');
      for (const part of ['invalid agent configuration', '--bandwidth "fast" is not a rate', 'unknown setting "colour"', 'log-level "loud"',
        '--root', 'nope: no such directory', '--hostname "bad name" is not a host name']) {
        assert.ok(e.message.includes(part), `missing ${part} in: ${e.message}`);
      }
      return true;
    });
  });

  it('reports an unreadable or malformed config file', () => {
    assert.throws(() => loadAgentConfig({}, join(dir, 'missing.yaml'), {}), /missing\.yaml: ENOENT/);
    writeFileSync(file, '- a\n- list\n');
    assert.throws(() => loadAgentConfig({}, file, {}), /expected a mapping of settings/);
    writeFileSync(file, '');
    assert.equal(loadAgentConfig({}, file, {}).logLevel, 'info', 'an empty file sets nothing');
  });
});
