import assert from 'node:assert/strict';
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, waitFor } from '../support/fixtures.js';
import { jsonLines } from '../support/json-lines.js';
import { daemon, repoRoot, run, type Daemon } from '../support/proc.js';

const root = repoRoot();
const ferryBin = join(root, 'bin', 'ferry.js');
const agentBin = join(root, 'bin', 'ferry-agent.js');

describe('ferry and ferry-agent command lines', function () {
  this.timeout(90_000);
  const dir = tempDir('ferry-cli-');
  const data = join(dir, 'ctl');
  const ferry = (...args: string[]) => run([process.execPath, ferryBin, '--data', data, ...args]);
  let controller: Daemon;
  const agents: Daemon[] = [];
  let joinStr = '';

  before(async () => {
    controller = daemon([process.execPath, ferryBin, 'controller', 'start', '--data', data, '--listen', '127.0.0.1:0', '--heartbeat', '1s']);
    await waitFor(() => /CA pin:\s+sha256:[0-9a-f]{64}/.test(controller.out()), 20_000, 'controller banner');
  });

  after(async () => {
    for (const a of agents) a.proc.kill('SIGKILL');
    controller?.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the CA pin and keeps its secrets owner-only', () => {
    assert.match(controller.out(), /agents dial:\s+127\.0\.0\.1:\d+/);
    assert.equal(statSync(join(data, 'pki', 'ca.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(data, 'admin.sock')).mode & 0o777, 0o600);
    assert.equal(statSync(data).mode & 0o777, 0o700);
  });

  it('creates a token whose join string enrolls two agents that then connect', async () => {
    const t = await ferry('token', 'create', '--ttl', '10m', '--uses', '2', '--label', 'site=plant-7', '--label', 'role=edge');
    assert.equal(t.code, 0, t.stderr);
    // stdout is the whole command the field tech types, with nothing to quote.
    const cmd = /^ferry-agent join (ferry1\/127\.0\.0\.1:\d+\/fy1\.[a-z2-7]{10}\.[\w-]{43}\/sha256:[0-9a-f]{64})$/.exec(t.stdout.trim());
    assert.ok(cmd, t.stdout);
    joinStr = cmd[1]!;
    for (const n of [1, 2]) {
      const state = join(dir, `agent-${n}`);
      const j = await run([process.execPath, agentBin, 'join', joinStr, '--state', state, ...(n === 1 ? ['--hostname', 'edge-one'] : [])]);
      assert.equal(j.code, 0, j.stderr);
      agents.push(daemon([process.execPath, agentBin, 'run', '--state', state]));
    }
    await waitFor(async () => {
      const ls = await ferry('agents', 'ls', '--json');
      if (ls.code !== 0) throw new Error(`agents ls failed: ${ls.stderr}${ls.stdout}`);
      return jsonLines<{ connected: boolean }>(ls.stdout).filter((a) => a.connected).length === 2;
    }, 20_000, 'two connected agents');
    const names = jsonLines<{ hostname: string }>((await ferry('agents', 'ls', '--json')).stdout).map((a) => a.hostname);
    assert.ok(names.includes('edge-one'), `join --hostname names the host in the fleet: ${names.join(', ')}`);
    const third = await run([process.execPath, agentBin, 'join', joinStr, '--state', join(dir, 'agent-3')]);
    assert.equal(third.code, 6, 'token refused');
    assert.match(third.stderr, /used all 2 times[\s\S]*hint:/);
  });

  it('lists tokens and agents for people and for scripts', async () => {
    const ls = await ferry('agents', 'ls', '--selector', 'site=plant-7');
    assert.equal(ls.code, 0);
    assert.match(ls.stdout, /^HOSTNAME\s+ID\s+STATE/m);
    assert.equal((ls.stdout.match(/online/g) ?? []).length, 2);
    const tokens = jsonLines<{ state: string; uses: number }>((await ferry('token', 'ls', '--json')).stdout);
    assert.equal(tokens[0]!.state, 'used up');
  });

  it('execs across agents, prefixes lines by host, and exits non-zero when a host fails', async () => {
    const ok = await ferry('exec', '--selector', 'role=edge', '--', 'sh', '-c', 'echo hello-from-agent');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((ok.stdout.match(/ \| hello-from-agent$/gm) ?? []).length, 2);
    assert.match(ok.stderr, /2 host\(s\): 2 ok, 0 failed, 0 offline/);
    const bad = await ferry('exec', '--all', '--', 'sh', '-c', 'exit 3');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /failed\s+3/);
    const json = await ferry('exec', '--all', '--json', '--', 'true');
    const events = jsonLines<{ type: string }>(json.stdout);
    assert.deepEqual([...new Set(events.map((e) => e.type))].sort(), ['finished', 'started', 'summary']);
    const none = await ferry('exec', '--selector', 'role=nobody', '--', 'true');
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no enrolled agent matches selector "role=nobody"/);
  });

  it('gives usage errors exit code 2 with a hint', async () => {
    const noCmd = await ferry('exec', '--selector', 'role=edge');
    assert.equal(noCmd.code, 2);
    assert.match(noCmd.stderr, /no command given[\s\S]*hint: put the command after --/);
    const badFlag = await ferry('token', 'create', '--ttl', 'forever');
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /--ttl "forever" is not a duration/);
    const noRoot = await run([process.execPath, agentBin, 'run', '--state', join(dir, 'agent-1'), '--root', join(dir, 'no-such-root')]);
    assert.equal(noRoot.code, 2);
    assert.match(noRoot.stderr, /--root .*no-such-root: no such directory/);
    const badName = await run([process.execPath, agentBin, 'join', joinStr, '--state', join(dir, 'agent-9'), '--hostname', 'bad name']);
    assert.equal(badName.code, 2);
    assert.match(badName.stderr, /--hostname "bad name" is not a host name/);
    const badCfg = await run([process.execPath, ferryBin, 'controller', 'start', '--data', join(dir, 'x'), '--listen', 'nope', '--heartbeat', 'soon']);
    assert.equal(badCfg.code, 2);
    assert.match(badCfg.stderr, /listen "nope"[\s\S]*heartbeat "soon"/);
  });

  it('revoking an agent ends its session and its run exits with code 4', async () => {
    const ls = jsonLines<{ id: string }>((await ferry('agents', 'ls', '--json')).stdout);
    const r = await ferry('agents', 'revoke', ls[0]!.id);
    assert.equal(r.code, 0, r.stderr);
    const codes = await Promise.race([Promise.any(agents.map((a) => a.exited)), new Promise((res) => setTimeout(() => res('still running'), 15_000))]);
    assert.equal(codes, 4);
  });

  it('stops cleanly on SIGTERM and says so when asked again', async () => {
    controller.proc.kill('SIGTERM');
    assert.equal(await controller.exited, 0);
    assert.equal(existsSync(join(data, 'admin.sock')), false);
    const ls = await ferry('agents', 'ls');
    assert.equal(ls.code, 5);
    assert.match(ls.stderr, /no controller admin socket[\s\S]*is the controller running\?/);
  });
});
