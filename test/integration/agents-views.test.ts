import 'reflect-metadata';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { join as agentJoin } from '../../agent/src/enroll/join.js';
import { AgentState } from '../../agent/src/state/agent-state.js';
import { Exit } from '../../common/src/exit-codes.js';
import { renderAgents } from '../../controller/src/cli/agents-view.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, fakeFacts, joinString, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { jsonLines } from '../support/json-lines.js';
import { repoRoot, run } from '../support/proc.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');

describe('fleet views: agents ls, show, rm', function () {
  this.timeout(60_000);
  let c: Controller;
  const agents: TestAgent[] = [];
  const ferry = (...args: string[]) => run([process.execPath, ferryBin, '--admin-socket', c.config.adminSocket, ...args]);

  before(async () => {
    c = await startController();
    agents.push(await enrollAgent(c, 'edge-1', { labels: { site: 'plant-7-with-a-rather-long-site-name', role: 'edge', ring: 'canary', rack: 'r12-u07' } }));
    agents.push(await enrollAgent(c, 'edge-2', { labels: { site: 'plant-9', role: 'edge' } }));
    await waitFor(() => agents.every((a) => a.loop.state === 'connected'), 10_000, 'connected');
  });
  after(async () => cleanup(c, agents));

  it('warns at enrollment about a hostname another host already has, and marks it in the list', async () => {
    const warnings: string[] = [];
    const state = new AgentState(tempDir('ferry-agent-'));
    const id = await agentJoin({ joinString: await joinString(c), state, facts: fakeFacts('edge-1'), onWarning: (w) => warnings.push(w) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /already has the hostname "edge-1"/);
    assert.match(warnings[0]!, /--hostname/);
    const r = await ferry('agents', 'ls');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^edge-1\*\s/m);
    assert.match(r.stdout, /hostname shared by several agents \(edge-1\)/);
    await c.ctx.agents.revoke(id.agentId, Date.now());
  });

  it('fits the default table in 80 columns, cutting labels, and keeps every column in -o wide', async () => {
    const list = await ferryJson('agents', 'ls', '--json') as unknown[];
    assert.ok(list.length >= 2);
    const r = await ferry('agents', 'ls');
    for (const line of r.stdout.trimEnd().split('\n')) assert.ok(line.length <= 80, `over 80 columns: ${line}`);
    assert.match(r.stdout, /…/, 'long labels are cut');
    const wide = await ferry('agents', 'ls', '-o', 'wide');
    assert.match(wide.stdout, /CERT EXPIRES/);
    assert.match(wide.stdout, /rack=r12-u07/);
    // The renderer itself, at a narrow width.
    const text = renderAgents([], 'table', 40);
    assert.match(text, /^HOSTNAME/);
  });

  async function ferryJson(...args: string[]): Promise<unknown> {
    const r = await ferry(...args);
    assert.equal(r.code, 0, r.stderr);
    return jsonLines(r.stdout);
  }

  it('filters by state, sorts, and prints ids only with -o name', async () => {
    const names = await ferry('agents', 'ls', '-o', 'name', '--sort', 'id');
    const ids = names.stdout.trim().split('\n');
    assert.deepEqual(ids, [...ids].sort());
    assert.ok(ids.includes(agents[0]!.id) && ids.includes(agents[1]!.id));
    const revoked = await ferryJson('agents', 'ls', '--state', 'revoked', '--json') as Array<{ state: string; hostname: string }>;
    assert.ok(revoked.length >= 1 && revoked.every((a) => a.state === 'revoked'));
    const bad = await ferry('agents', 'ls', '--state', 'sleeping');
    assert.equal(bad.code, Exit.Usage);
    assert.match(bad.stderr, /expected online, offline or revoked/);
  });

  it('shows one host by id or unique hostname', async () => {
    const r = await ferry('agents', 'show', 'edge-2');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^id:\\s+${agents[1]!.id}$`, 'm'));
    assert.match(r.stdout, /^certificate:\s+expires \d{4}-/m);
    assert.match(r.stdout, /^state:\s+online/m);
    const ambiguous = await ferry('agents', 'show', 'edge-1');
    assert.equal(ambiguous.code, Exit.Usage);
    assert.match(ambiguous.stderr, /2 agents have the hostname edge-1/);
  });

  it('removes only revoked agents', async () => {
    const live = await ferry('agents', 'rm', agents[1]!.id);
    assert.equal(live.code, Exit.Usage);
    assert.match(live.stderr, /is not revoked/);
    const [gone] = await ferryJson('agents', 'ls', '--state', 'revoked', '--json') as Array<{ id: string }>;
    const r = await ferry('agents', 'rm', gone!.id);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await c.ctx.agents.get(gone!.id), undefined);
    assert.ok((await c.ctx.audit.list(10)).some((e) => e.action === 'agent.rm' && e.subject === gone!.id));
  });
});
