/**
 * A host reboots in the middle of a rollout step (`systemctl reboot` inside
 * the simulated host: systemd stops the agent unit, the machine boots again,
 * the unit starts the agent). The agent's journal shows the step started and
 * not finished, so the agent resumes the job at that step — re-running only
 * it, as steps are idempotent — and the rollout takes the result: the host
 * was started once by the controller, the steps before the interrupted one
 * did not run again, the steps after it ran once, and the output from before
 * the reboot is still in the logs.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFleet, type Fleet } from './support/fleet.js';
import { waitFor } from '../support/fixtures.js';

interface Snap {
  rollout: { state: string };
  hosts: Array<{ hostname: string; state: string; stepId: string | null; connected: boolean }>;
}

const PLAN = `name: reboot-e2e
steps:
  - id: before
    type: exec
    args: { argv: [sh, -c, "echo before >> /var/lib/reboot-e2e; echo before-ran"] }
  - id: slow
    type: exec
    args: { argv: [sh, -c, "echo slow-start >> /var/lib/reboot-e2e; echo slow-started; sleep 20; echo slow-end >> /var/lib/reboot-e2e"] }
  - id: after
    type: exec
    args: { argv: [sh, -c, "echo after >> /var/lib/reboot-e2e"] }
`;

describe('e2e: a host rebooted mid-step during a rollout', function () {
  this.timeout(600_000);
  let fleet: Fleet;
  let id = '';
  const ok = (...args: string[]) => fleet.ok(...args);
  async function until(cond: (s: Snap) => boolean, what: string, ms = 180_000): Promise<Snap> {
    let s: Snap | undefined;
    await waitFor(async () => {
      const r = await fleet.ferry('rollout', 'show', id, '--json');
      return r.code === 0 && cond((s = JSON.parse(r.stdout) as Snap));
    }, ms, what);
    return s!;
  }

  before(async function () {
    const f = await startFleet({ hosts: 2, name: 'reboot', labels: ['role=edge'] });
    if (!f) this.skip();
    fleet = f!;
  });
  after(async () => { await fleet?.destroy(); });

  it('resumes the interrupted step after the reboot and finishes; nothing before it runs again', async () => {
    const plan = join(fleet.tmp, 'plan.yaml');
    writeFileSync(plan, PLAN);
    await ok('plan', 'push', plan, '--key', fleet.key);
    const spec = join(fleet.tmp, 'rollout.yaml');
    writeFileSync(spec, 'plan: reboot-e2e\ntargets: { selector: role=edge, hosts: [h1] }\nstrategy: { waves: [1, "100%"], errorBudget: 0, offlineTimeout: 5m }\n');
    id = (JSON.parse((await ok('rollout', 'create', '-f', spec, '--json')).stdout) as { id: string }).id;

    await until((x) => x.hosts.some((h) => h.hostname === 'h1' && h.state === 'running' && h.stepId === 'slow'), 'h1 in its slow step');
    const h1 = fleet.cluster.hosts.find((h) => h.name === 'h1')!;
    await waitFor(async () => (await h1.readFile('/var/lib/reboot-e2e')).includes('slow-start'), 30_000, 'the slow step to begin on h1');
    await h1.reboot();
    const w = await fleet.ferry('rollout', 'watch', id, '--json');
    assert.equal(w.code, 0, w.stdout + w.stderr);
    const last = JSON.parse(w.stdout.trim().split('\n').at(-1)!) as { state: string; counts: Record<string, number> };
    assert.deepEqual(last.counts, { succeeded: 2 });

    // On the host: `before` once; `slow` began twice (interrupted, then resumed) and ended once; `after` once.
    assert.deepEqual((await h1.readFile('/var/lib/reboot-e2e')).trim().split('\n'), ['before', 'slow-start', 'slow-start', 'slow-end', 'after']);
    const l = await ok('rollout', 'logs', id, '--host', 'h1');
    const logs = l.stdout + l.stderr; // output lines on stdout, stderr lines and the agent's notes on stderr
    assert.match(logs, /before-ran/, 'output from before the reboot is kept');
    assert.match(logs, /agent restarted: resuming reboot-e2e at step 2\/3/);
    assert.equal(logs.split('\n').filter((l) => l === '| slow-started').length, 2, logs);
    assert.match(logs, /result: succeeded/);

    const events = w.stdout.trim().split('\n').map((l) => JSON.parse(l) as { kind?: string; hostname?: string; state?: string });
    assert.equal(events.filter((e) => e.kind === 'host' && e.hostname === 'h1' && e.state === 'running').length, 1, 'the controller started h1 once');
    assert.equal((await h1.exec(['systemctl', 'is-active', 'ferry-agent'])).stdout.trim(), 'active');
  });
});
