/**
 * systemd.unit against the real systemd of a simulated host: install and start, idempotent
 * second run, check mode, content and drop-in changes restart, health checks, a unit that
 * fails to start (status + journal in the outcome, host put back), stop. Skips when not root.
 */
import assert from 'node:assert/strict';
import { Cluster, ensurePrereqs, type Host } from '../harness/index.js';
import { runStep, summary } from './step-host.js';

const SCRIPT = '/usr/local/bin/ferry-demo.sh';
const unitText = (version: string) => [
  '[Unit]', 'Description=Ferry demo service', '', '[Service]',
  `ExecStart=${SCRIPT} ${version}`, '', '[Install]', 'WantedBy=multi-user.target', '',
].join('\n');

describe('e2e steps: systemd.unit on a simulated host', function () {
  this.timeout(180_000);
  let cluster: Cluster | undefined;
  let h: Host;
  const mainPid = async (unit: string) => (await h.execOk(['systemctl', 'show', '-p', 'MainPID', '--value', unit])).trim();
  const demo = (extra: Record<string, unknown> = {}) => ({ name: 'ferry-demo.service', content: unitText('v1'), enabled: true, state: 'restarted', ...extra });

  before(async function () {
    this.timeout(600_000);
    const pre = await ensurePrereqs();
    if (!pre.ok) {
      console.log(`      SKIP systemd.unit e2e: ${pre.skipReason}`);
      this.skip();
    }
    const t0 = Date.now();
    cluster = await Cluster.create({ hosts: 1 });
    h = cluster.host('h1');
    console.log(`      host up in ${Date.now() - t0} ms`);
    await h.writeFile(SCRIPT, [
      '#!/bin/sh', 'echo "ferry-demo $1 started greeting=${GREETING:-none}"',
      'touch /run/ferry-demo.ready', 'exec sleep infinity', '',
    ].join('\n'), 0o755);
  });

  after(async () => {
    await cluster?.destroy();
  });

  it('check mode on a fresh host shows the unit file and actions and changes nothing', async () => {
    const r = await runStep(h, 'systemd.unit', demo(), { check: true });
    console.log(summary('check (fresh)', r));
    assert.equal(r.outcome.status, 'changed', r.outcome.message);
    assert.match(r.outcome.diff!, /\+ExecStart=\/usr\/local\/bin\/ferry-demo\.sh v1/);
    assert.match(r.outcome.diff!, /# systemctl daemon-reload\n# systemctl enable ferry-demo\.service\n# systemctl restart ferry-demo\.service/);
    assert.notEqual((await h.exec(['test', '-e', '/etc/systemd/system/ferry-demo.service'])).exitCode, 0);
    assert.equal(await h.isActive('ferry-demo.service'), 'inactive');
  });

  it('installs, enables and starts the unit; a second run is unchanged and restarts nothing', async () => {
    const r = await runStep(h, 'systemd.unit', demo());
    console.log(summary('first run', r));
    assert.equal(r.outcome.status, 'changed', r.outcome.message);
    assert.match(r.outcome.message, /daemon-reload, enabled, restarted, active in/);
    assert.equal(await h.isActive('ferry-demo.service'), 'active');
    assert.equal((await h.exec(['systemctl', 'is-enabled', 'ferry-demo.service'])).stdout.trim(), 'enabled');
    const pid = await mainPid('ferry-demo.service');
    const again = await runStep(h, 'systemd.unit', demo());
    console.log(summary('second run', again));
    assert.equal(again.outcome.status, 'unchanged', again.outcome.message);
    assert.equal(await mainPid('ferry-demo.service'), pid, 'restarted although nothing changed');
    const check = await runStep(h, 'systemd.unit', demo(), { check: true });
    assert.equal(check.outcome.status, 'unchanged', check.outcome.message);
  });

  it('restarts when the content or a drop-in changes, and on always: true', async () => {
    const pid1 = await mainPid('ferry-demo.service');
    const r = await runStep(h, 'systemd.unit', demo({ content: unitText('v2') }));
    console.log(summary('content changed', r));
    assert.equal(r.outcome.status, 'changed');
    assert.match(r.outcome.diff!, /-ExecStart=\S+ v1\n\+ExecStart=\S+ v2/);
    const pid2 = await mainPid('ferry-demo.service');
    assert.notEqual(pid2, pid1);
    const dropIns = [{ name: '10-greeting', content: '[Service]\nEnvironment=GREETING=hello\n' }];
    const d = await runStep(h, 'systemd.unit', demo({ content: unitText('v2'), dropIns }));
    console.log(summary('drop-in added', d));
    assert.equal(d.outcome.status, 'changed');
    assert.equal(await h.readFile('/etc/systemd/system/ferry-demo.service.d/10-greeting.conf'), '[Service]\nEnvironment=GREETING=hello\n');
    assert.notEqual(await mainPid('ferry-demo.service'), pid2);
    const log = await h.execOk(['journalctl', '-u', 'ferry-demo.service', '--no-pager', '-o', 'cat']);
    assert.match(log, /ferry-demo v2 started greeting=hello/);
    assert.equal((await runStep(h, 'systemd.unit', demo({ content: unitText('v2'), dropIns }))).outcome.status, 'unchanged');
    const pid3 = await mainPid('ferry-demo.service');
    const forced = await runStep(h, 'systemd.unit', demo({ content: unitText('v2'), dropIns, always: true }));
    assert.equal(forced.outcome.status, 'changed');
    assert.notEqual(await mainPid('ferry-demo.service'), pid3);
  });

  it('runs the health check, and rolls back to the previous version when it never passes', async () => {
    const dropIns = [{ name: '10-greeting', content: '[Service]\nEnvironment=GREETING=hello\n' }];
    const ok = await runStep(h, 'systemd.unit', demo({ content: unitText('v2'), dropIns, healthCheck: ['test', '-e', '/run/ferry-demo.ready'] }));
    assert.equal(ok.outcome.status, 'unchanged');
    assert.match(ok.outcome.message, /health check passed/);
    const before = await h.readFile('/etc/systemd/system/ferry-demo.service');
    const bad = await runStep(h, 'systemd.unit', demo({ content: unitText('v3'), dropIns, healthCheck: ['test', '-e', '/run/never-there'], healthTimeout: '2s' }));
    console.log(summary('health check failing', bad));
    assert.equal(bad.outcome.status, 'failed');
    assert.equal(bad.outcome.errorCode, 'STEP_HEALTH_CHECK_FAILED');
    assert.match(bad.outcome.message, /rolled back: restored \/etc\/systemd\/system\/ferry-demo\.service, daemon-reload, restarted the previous ferry-demo\.service/);
    assert.match(bad.outcome.message, /--- journalctl -u ferry-demo\.service -n 30 --no-pager ---/);
    assert.equal(await h.readFile('/etc/systemd/system/ferry-demo.service'), before);
    await h.waitActive('ferry-demo.service');
  });

  it('reports a unit that fails to start with status and journal, and leaves the host as it was', async () => {
    await h.writeFile('/usr/local/bin/ferry-broken.sh', '#!/bin/sh\necho "ferry-broken: cannot read /etc/ferry/broken.conf" >&2\nexit 3\n', 0o755);
    const args = { name: 'ferry-broken.service', content: '[Service]\nExecStart=/usr/local/bin/ferry-broken.sh\n[Install]\nWantedBy=multi-user.target\n', enabled: true, state: 'started', waitActive: '10s' };
    const r = await runStep(h, 'systemd.unit', args);
    console.log(summary('broken unit', r));
    assert.equal(r.outcome.status, 'failed');
    assert.equal(r.outcome.errorCode, 'STEP_UNIT_FAILED');
    const m = r.outcome.message;
    console.log(m.replace(/^/gm, '        | '));
    assert.match(m.split('\n')[0]!, /^ferry-broken\.service did not stay active: ActiveState=failed .*Result=exit-code; rolled back: stopped ferry-broken\.service, reset-failed, disabled again, restored .*Next: /);
    assert.match(m, /--- systemctl status --no-pager --full --lines=0 ferry-broken\.service ---\n.*ferry-broken\.service/);
    assert.match(m, /status=3/);
    assert.match(m, /ferry-broken: cannot read \/etc\/ferry\/broken\.conf/);
    assert.match(r.lines, /\[stdout\] .*ferry-broken: cannot read/, 'journal lines were not streamed');
    assert.notEqual((await h.exec(['test', '-e', '/etc/systemd/system/ferry-broken.service'])).exitCode, 0, 'unit file left behind');
    assert.equal((await h.exec(['systemctl', 'is-enabled', 'ferry-broken.service'])).stdout.trim(), '', 'still enabled');
    assert.doesNotMatch((await h.exec(['systemctl', 'list-units', '--failed', '--plain', '--no-legend'])).stdout, /ferry-broken/);
    assert.equal(await h.isActive('ferry-demo.service'), 'active');
  });

  it('fails clearly for a unit that is not installed and stops units idempotently', async () => {
    const missing = await runStep(h, 'systemd.unit', { name: 'no-such-thing.service', state: 'restarted' });
    assert.equal(missing.outcome.status, 'failed');
    assert.equal(missing.outcome.errorCode, 'STEP_INPUT_MISSING');
    assert.match(missing.outcome.message, /not installed on this host .*Next: add "content"/);
    const stop = await runStep(h, 'systemd.unit', { name: 'ferry-demo.service', state: 'stopped', enabled: false });
    console.log(summary('stop + disable', stop));
    assert.equal(stop.outcome.status, 'changed');
    assert.equal(await h.isActive('ferry-demo.service'), 'inactive');
    assert.equal((await runStep(h, 'systemd.unit', { name: 'ferry-demo.service', state: 'stopped', enabled: false })).outcome.status, 'unchanged');
  });
});
