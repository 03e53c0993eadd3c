// The version rules at the session: agents report version and protocol in
// hello; the controller refuses agents newer than itself or too old (with
// what to do), accepts one minor behind with advice, records the versions
// (`ferry agents ls` shows them, JSON too) and refreshes `ferry/arch` from
// the hello's facts. Real controller on 127.0.0.1:0, real mTLS sessions.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ErrorCode } from '../../common/src/errors.js';
import { AgentUpgradeOutcome } from '../../common/src/gen/ferry/v1/session.js';
import { FERRY_VERSION, PROTOCOL_VERSION, parseVersion } from '../../common/src/version.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, fakeFacts, startController, waitFor, type TestAgent } from '../support/fixtures.js';
import { jsonLines } from '../support/json-lines.js';
import { repoRoot, run } from '../support/proc.js';
import { rawHello } from '../support/raw-session.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');
const v = parseVersion(FERRY_VERSION)!;
const newerMinor = `${v.major}.${v.minor + 1}.0`;
/** One minor behind this controller (0.x: the minor before; x.0: there is none in this major, so a patch of the same minor stands in). */
const oneBehind = v.minor > 0 ? `${v.major}.${v.minor - 1}.7` : undefined;

describe('agent versions at the session (hello, refusals, agents ls)', function () {
  this.timeout(60_000);
  let c: Controller;
  let a: TestAgent;
  const ferry = (...args: string[]) => run([process.execPath, ferryBin, '--admin-socket', c.config.adminSocket, ...args]);

  before(async () => {
    c = await startController();
    a = await enrollAgent(c, 'edge-v', { start: false });
  });
  after(async () => cleanup(c, [a]));

  it('records version and protocol from a real agent\'s hello; agents ls shows them (table and JSON)', async () => {
    a.loop.start();
    await waitFor(() => a.loop.state === 'connected', 10_000, 'connected');
    const rec = await c.ctx.agents.require(a.id);
    assert.equal(rec.agentVersion, FERRY_VERSION);
    assert.equal(rec.protocolVersion, PROTOCOL_VERSION);
    const ls = await ferry('agents', 'ls', '-o', 'wide');
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /VERSION\s+PREVIOUS/);
    assert.match(ls.stdout, new RegExp(`edge-v\\s+${a.id}\\s+online\\s+now\\s+${FERRY_VERSION.replace(/\./g, '\\.')}\\s+-`));
    const j = jsonLines((await ferry('agents', 'ls', '--json')).stdout);
    assert.equal(j[0]!['agentVersion'], FERRY_VERSION);
    assert.equal(j[0]!['protocolVersion'], PROTOCOL_VERSION);
    assert.equal(j[0]!['previousAgentVersion'], null);
    await a.loop.stop(500);
    await waitFor(() => c.ctx.sessions.size === 0, 5_000, 'session closed');
  });

  it('refuses an agent newer than the controller, saying to upgrade the controller first', async () => {
    const r = await rawHello(c, a.state.load(), { agentVersion: newerMinor });
    assert.equal(r.welcome, undefined);
    assert.equal(r.error?.code, ErrorCode.AgentVersionRefused);
    assert.match(r.error!.message, new RegExp(`agent ${newerMinor} is newer than controller ${FERRY_VERSION}`));
    assert.match(r.error!.hint ?? '', /upgrade the controller/);
    assert.equal(c.ctx.sessions.size, 0, 'a refused agent does not count as connected');
    // What it reported is still recorded, so `agents ls` shows why the host is offline.
    assert.equal((await c.ctx.agents.require(a.id)).agentVersion, newerMinor);
  });

  it('refuses an agent whose version cannot be compared', async () => {
    const r = await rawHello(c, a.state.load(), { agentVersion: 'dev' });
    assert.equal(r.error?.code, ErrorCode.AgentVersionRefused);
    assert.match(r.error!.hint ?? '', new RegExp(`install ferry-agent ${FERRY_VERSION.replace(/\./g, '\\.')} on the host`));
  });

  it('accepts one minor behind and advises an upgrade in the welcome', async function () {
    if (!oneBehind) this.skip(); // FERRY_VERSION x.0.y has no earlier minor in its major
    const r = await rawHello(c, a.state.load(), { agentVersion: oneBehind });
    assert.ok(r.welcome, r.error?.describe());
    assert.match(r.welcome.advice, /one minor version behind/);
  });

  it('same version: welcome without advice; previous version and the last upgrade from hello are recorded', async () => {
    const r = await rawHello(c, a.state.load(), {
      agentVersion: FERRY_VERSION, previousAgentVersion: '0.0.1',
      lastUpgrade: { upgradeId: 'up-1', fromVersion: '0.0.1', toVersion: FERRY_VERSION, outcome: AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_COMMITTED, reason: 'ok', logTail: [], timeMs: 1234, errorCode: '' },
    });
    assert.ok(r.welcome, r.error?.describe());
    assert.equal(r.welcome.advice, '');
    assert.equal((await c.ctx.agents.require(a.id)).previousVersion, '0.0.1');
    const up = await c.ctx.agentUpgrades.get(a.id, 'up-1');
    assert.equal(up?.outcome, 'committed');
    const show = await ferry('agents', 'show', a.id);
    assert.match(show.stdout, new RegExp(`agent version:\\s+${FERRY_VERSION.replace(/\./g, '\\.')} \\(protocol ${PROTOCOL_VERSION}\\); 0\\.0\\.1 kept for rollback`));
  });

  it('refreshes ferry/arch from the hello, in image-platform names (agents enrolled before, or with Node\'s names)', async () => {
    const rec = await c.ctx.agents.require(a.id);
    await c.ctx.agents.setLabels(a.id, { ...rec.labels, 'ferry/arch': 'x64' }); // as an old controller wrote it
    const r = await rawHello(c, a.state.load(), { facts: { ...fakeFacts('edge-v'), arch: 'aarch64' } });
    assert.ok(r.welcome, r.error?.describe());
    const after = await c.ctx.agents.require(a.id);
    assert.equal(after.labels['ferry/arch'], 'arm64');
    assert.equal(after.facts.arch, 'arm64');
    const sel = await ferry('agents', 'ls', '--selector', 'ferry/arch=arm64', '-o', 'name');
    assert.match(sel.stdout, new RegExp(a.id));
  });
});
