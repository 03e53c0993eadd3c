import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, joinString, startController, tempDir, waitFor } from '../support/fixtures.js';
import { daemon, repoRoot, run, type Daemon } from '../support/proc.js';

const agentBin = join(repoRoot(), 'bin', 'ferry-agent.js');
const agent = (...args: string[]) => run([process.execPath, agentBin, ...args]);

/** Whether this test process can drop to `nobody` (it must be root and have setpriv). */
const canDropRoot = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0;

describe('ferry-agent field-tech commands', function () {
  this.timeout(90_000);
  let c: Controller;
  const dir = tempDir('ferry-field-');
  const daemons: Daemon[] = [];

  before(async () => { c = await startController({ heartbeat: '1s' }); });
  after(async () => {
    for (const d of daemons) d.proc.kill('SIGKILL');
    await cleanup(c);
    rmSync(dir, { recursive: true, force: true });
  });

  async function enrolledRunning(name: string): Promise<{ state: string; run: Daemon; agentId: string }> {
    const state = join(dir, name);
    const j = await agent('join', await joinString(c), '--state', state, '--hostname', name, '--json');
    assert.equal(j.code, 0, j.stderr);
    const r = daemon([process.execPath, agentBin, 'run', '--state', state]);
    daemons.push(r);
    await waitFor(async () => (await agent('status', '--state', state)).code === 0, 20_000, `${name} connected`);
    return { state, run: r, agentId: (JSON.parse(j.stdout) as { agentId: string }).agentId };
  }

  it('install-service and uninstall-service refuse without systemd or root, before writing anything', async function () {
    const unitDir = join(dir, 'units');
    mkdirSync(unitDir, { recursive: true });
    if (existsSync('/run/systemd/system')) this.skip(); // this check needs a host without a booted systemd
    for (const cmd of ['install-service', 'uninstall-service']) {
      const r = await agent(cmd, '--unit-dir', unitDir, '--state', join(dir, 'none'));
      if (process.getuid?.() === 0) {
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, new RegExp(`${cmd}: systemd is not running on this host`));
      } else {
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, new RegExp(`${cmd} must run as root`));
      }
    }
    if (canDropRoot) {
      const r = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, agentBin, 'install-service', '--unit-dir', unitDir, '--state', join(dir, 'none')], { encoding: 'utf8' });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /install-service must run as root[\s\S]*hint: run it again with sudo/);
    }
    assert.deepEqual(readdirSync(unitDir), [], 'no unit was written');
    assert.equal(existsSync(join(dir, 'none')), false, 'no state directory was made');
  });

  it('reset refuses while ferry-agent run holds the state, asks for confirmation, then removes it', async () => {
    const units = join(dir, 'no-units'); // no unit installed: there is no service to stop
    mkdirSync(units, { recursive: true });
    const { state, run: r, agentId } = await enrolledRunning('reset-me');
    const held = await agent('reset', '--yes', '--state', state, '--unit-dir', units);
    assert.equal(held.code, 2, held.stderr);
    assert.match(held.stderr, /in use by ferry-agent run \(pid \d+/);
    assert.ok(existsSync(join(state, 'identity.json')), 'nothing removed while the agent runs');
    r.proc.kill('SIGTERM');
    assert.equal(await r.exited, 0);
    const unconfirmed = await agent('reset', '--state', state, '--unit-dir', units);
    assert.equal(unconfirmed.code, 2, unconfirmed.stderr);
    assert.match(unconfirmed.stderr, /needs a confirmation[\s\S]*--yes/);
    assert.ok(existsSync(join(state, 'identity.json')));
    const done = await agent('reset', '--yes', '--state', state, '--unit-dir', units);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, new RegExp(`removed ${state}[\\s\\S]*told the controller at 127\\.0\\.0\\.1:\\d+: agent ${agentId} is revoked there`));
    assert.equal(existsSync(state), false);
    assert.notEqual((await c.ctx.agents.get(agentId))!.revokedAt, null, 'the controller revoked the agent that left');
    assert.ok((await c.ctx.audit.list()).some((e) => e.action === 'agent.leave' && e.subject === agentId), 'audited');
    const again = await agent('reset', '--yes', '--state', state, '--unit-dir', units);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nothing to reset/);
    assert.equal((await agent('status', '--state', state)).code, 3, 'not enrolled any more');
  });

  it('reset of a host whose controller is unreachable still removes the state, and says the operator must revoke it', async () => {
    const state = join(dir, 'far-away');
    const j = await agent('join', await joinString(c), '--state', state, '--json');
    assert.equal(j.code, 0, j.stderr);
    const agentId = (JSON.parse(j.stdout) as { agentId: string }).agentId;
    // Point the identity at a port nobody listens on (a controller that moved or is down).
    const idPath = join(state, 'identity.json');
    writeFileSync(idPath, JSON.stringify({ ...JSON.parse(readFileSync(idPath, 'utf8')), addresses: ['127.0.0.1:1'] }));
    const r = await agent('reset', '--yes', '--state', state, '--unit-dir', join(dir, 'no-units'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`could not tell the controller \\(127\\.0\\.0\\.1:1: [^)]*\\): ask the operator to run \`ferry agents revoke ${agentId}\``));
    assert.equal(existsSync(state), false);
    assert.equal((await c.ctx.agents.get(agentId))!.revokedAt, null);
  });

  it('status exits 4 and says so for a host the controller revoked', async () => {
    const { state, run: r, agentId } = await enrolledRunning('revoke-me');
    await c.ctx.agents.revoke(agentId, Date.now());
    c.ctx.sessions.get(agentId)?.close('agent revoked by an operator');
    assert.equal(await r.exited, 4);
    const st = await agent('status', '--state', state);
    assert.equal(st.code, 4, st.stdout + st.stderr);
    assert.match(st.stdout, /stopped: the controller revoked this agent/);
    const js = await agent('status', '--state', state, '--json');
    assert.equal(js.code, 4);
    assert.equal((JSON.parse(js.stdout) as { revoked: boolean }).revoked, true);
  });
});
