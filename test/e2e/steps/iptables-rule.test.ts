/**
 * iptables.rule against the real iptables of a simulated host (its own network namespace):
 * seed 004's DNAT `--dport 10350 → cloudcore:10003`, proven by traffic through it; check
 * mode; idempotency; a seed-script rule without comment; insert; absent (all copies);
 * persistence; clear errors for a missing chain, a bad rule and iptables not installed.
 * Skips when not root.
 */
import assert from 'node:assert/strict';
import { Cluster, FABRIC_IP, ensurePrereqs, type FabricProcess, type Host } from '../harness/index.js';
import { runStep, summary } from './step-host.js';

const PORT = 7777; // stands in for CloudCore's stream port 10003
const SERVER_JS = `require('net').createServer((c) => c.end('cloudcore-stream ' + c.remoteAddress + '\\n')).listen(${PORT}, '${FABRIC_IP}', () => console.log('listening'));`;
const DNAT = ['-p', 'tcp', '-d', FABRIC_IP, '--dport', '10350', '-j', 'DNAT', '--to-destination', `${FABRIC_IP}:${PORT}`];

describe('e2e steps: iptables.rule on a simulated host', function () {
  this.timeout(120_000);
  let cluster: Cluster | undefined;
  let server: FabricProcess | undefined;
  let h: Host;
  const rules = async (chain: string, table = 'nat') => (await h.execOk(['iptables', '-t', table, '-S', chain])).split('\n').filter((l) => l.startsWith('-A'));
  const dnat = (extra: Record<string, unknown> = {}) => ({ table: 'nat', chain: 'OUTPUT', rule: DNAT, comment: 'ferry: kubeedge metrics', ...extra });
  const connect = () => h.exec(['bash', '-c', `exec 3<>/dev/tcp/${FABRIC_IP}/10350 && cat <&3`], { timeoutMs: 3000 });

  before(async function () {
    this.timeout(600_000);
    const pre = await ensurePrereqs();
    if (!pre.ok) {
      console.log(`      SKIP iptables.rule e2e: ${pre.skipReason}`);
      this.skip();
    }
    cluster = await Cluster.create({ hosts: 1 });
    h = cluster.host('h1');
    server = cluster.runInFabric(['node', '-e', SERVER_JS]);
    await server.waitForOutput(/listening/);
  });

  after(async () => {
    await server?.stop();
    await cluster?.destroy();
  });

  it('check mode shows the exact command and adds nothing', async () => {
    const r = await runStep(h, 'iptables.rule', dnat(), { check: true });
    console.log(summary('check', r));
    assert.equal(r.outcome.status, 'changed');
    assert.equal(r.outcome.diff, `+ iptables -w 10 -t nat -A OUTPUT -p tcp -d ${FABRIC_IP} --dport 10350 -m comment --comment 'ferry: kubeedge metrics' -j DNAT --to-destination ${FABRIC_IP}:${PORT}`);
    assert.deepEqual(await rules('OUTPUT'), []);
    assert.notEqual((await connect()).exitCode, 0, 'port 10350 answered before the rule existed');
  });

  it('adds the seed\'s DNAT rule once (traffic to :10350 reaches the stream port); a second run is unchanged', async () => {
    const r = await runStep(h, 'iptables.rule', dnat());
    console.log(summary('add', r));
    assert.equal(r.outcome.status, 'changed', r.outcome.message);
    const listed = await rules('OUTPUT');
    assert.equal(listed.length, 1);
    assert.match(listed[0]!, /--comment "ferry: kubeedge metrics" -j DNAT/);
    assert.equal((await connect()).stdout.trim(), `cloudcore-stream ${h.ip}`);
    const again = await runStep(h, 'iptables.rule', dnat());
    console.log(summary('again', again));
    assert.equal(again.outcome.status, 'unchanged');
    assert.equal((await runStep(h, 'iptables.rule', dnat(), { check: true })).outcome.status, 'unchanged');
    assert.equal((await rules('OUTPUT')).length, 1);
  });

  it('takes a rule a seed script added without comment as present (no second DNAT)', async () => {
    const rule = ['-p', 'tcp', '--dport', '10350', '-j', 'DNAT', '--to-destination', '10.0.0.5:10003'];
    await h.execOk(['iptables', '-t', 'nat', '-A', 'PREROUTING', ...rule]);
    const r = await runStep(h, 'iptables.rule', { table: 'nat', chain: 'PREROUTING', rule, comment: 'ferry: kubeedge metrics' });
    assert.equal(r.outcome.status, 'unchanged');
    assert.match(r.outcome.message, /present without the comment "ferry: kubeedge metrics"/);
    assert.equal((await rules('PREROUTING')).length, 1);
  });

  it('inserts at a position', async () => {
    await h.execOk(['iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', '1', '-j', 'ACCEPT']);
    const r = await runStep(h, 'iptables.rule', { chain: 'INPUT', rule: ['-p', 'tcp', '--dport', '2', '-j', 'ACCEPT'], position: 'insert' });
    assert.equal(r.outcome.status, 'changed');
    assert.match((await rules('INPUT', 'filter'))[0]!, /--dport 2 /);
    const bad = await runStep(h, 'iptables.rule', { chain: 'INPUT', rule: ['-p', 'tcp', '--dport', '3', '-j', 'ACCEPT'], position: 'insert', insertAt: 9 });
    assert.equal(bad.outcome.status, 'failed');
    assert.match(bad.outcome.message, /Index of insertion too big/);
  });

  it('persists the ruleset to /etc/iptables/rules.v4, idempotently', async () => {
    const r = await runStep(h, 'iptables.rule', dnat({ persist: true }));
    console.log(summary('persist', r));
    assert.equal(r.outcome.status, 'changed', r.outcome.message);
    const saved = await h.readFile('/etc/iptables/rules.v4');
    assert.match(saved, /^\*nat$/m);
    assert.match(saved, /--dport 10350 -m comment --comment "ferry: kubeedge metrics" -j DNAT/);
    assert.doesNotMatch(saved, /^# Generated/m);
    const mtime = (await h.execOk(['stat', '-c', '%Y.%N', '/etc/iptables/rules.v4'])).trim();
    assert.equal((await runStep(h, 'iptables.rule', dnat({ persist: true }))).outcome.status, 'unchanged');
    assert.equal((await runStep(h, 'iptables.rule', dnat({ persist: true }), { check: true })).outcome.status, 'unchanged');
    assert.equal((await h.execOk(['stat', '-c', '%Y.%N', '/etc/iptables/rules.v4'])).trim(), mtime);
  });

  it('absent removes every copy; a second run is unchanged', async () => {
    await h.execOk(['iptables', '-t', 'nat', '-A', 'OUTPUT', ...DNAT.slice(0, -4), '-m', 'comment', '--comment', 'ferry: kubeedge metrics', ...DNAT.slice(-4)]);
    assert.equal((await rules('OUTPUT')).length, 2);
    const check = await runStep(h, 'iptables.rule', dnat({ state: 'absent' }), { check: true });
    assert.equal(check.outcome.status, 'changed');
    assert.equal((await rules('OUTPUT')).length, 2);
    const r = await runStep(h, 'iptables.rule', dnat({ state: 'absent' }));
    console.log(summary('absent', r));
    assert.equal(r.outcome.status, 'changed');
    assert.equal((r.outcome.diff!.split('\n')).length, 2);
    assert.deepEqual(await rules('OUTPUT'), []);
    assert.notEqual((await connect()).exitCode, 0);
    assert.equal((await runStep(h, 'iptables.rule', dnat({ state: 'absent' }))).outcome.status, 'unchanged');
  });

  it('drives ip6tables for family: ipv6', async () => {
    const v6 = { family: 'ipv6', chain: 'INPUT', rule: ['-p', 'tcp', '--dport', '10350', '-j', 'ACCEPT'], comment: 'ferry: v6' };
    const r = await runStep(h, 'iptables.rule', v6);
    assert.equal(r.outcome.status, 'changed', r.outcome.message);
    assert.match(r.outcome.diff!, /^\+ ip6tables -w 10 -t filter -A INPUT /);
    assert.match(await h.execOk(['ip6tables', '-S', 'INPUT']), /--dport 10350 -m comment --comment "ferry: v6" -j ACCEPT/);
    assert.doesNotMatch(await h.execOk(['iptables', '-S', 'INPUT']), /ferry: v6/);
    assert.equal((await runStep(h, 'iptables.rule', v6)).outcome.status, 'unchanged');
  });

  it('fails clearly on a missing chain or a bad rule, changing nothing', async () => {
    const before = await h.execOk(['iptables-save']);
    const chain = await runStep(h, 'iptables.rule', dnat({ chain: 'KUBE-NOPE' }));
    assert.equal(chain.outcome.errorCode, 'STEP_INPUT_MISSING');
    assert.match(chain.outcome.message, /^chain KUBE-NOPE does not exist in table nat on this host \(chains: PREROUTING, INPUT, OUTPUT, POSTROUTING\)\. Next: /);
    const bad = await runStep(h, 'iptables.rule', dnat({ rule: ['-p', 'tcp', '--dportx', '1', '-j', 'ACCEPT'] }));
    assert.equal(bad.outcome.errorCode, 'STEP_COMMAND_FAILED');
    assert.match(bad.outcome.message, /iptables rejected the rule: `iptables -w 10 -t nat -C OUTPUT .*` failed \(exit 2\): .*unknown option "--dportx"/);
    const strip = (s: string) => s.split('\n').filter((l) => !l.startsWith('#')).join('\n');
    assert.equal(strip(await h.execOk(['iptables-save'])), strip(before));
  });

  it('says iptables is not installed when the host has no iptables binary', async () => {
    // Honest setup: the binary is really gone from this host's root (an overlay whiteout; the
    // machine keeps its own), as on a minimal image without the iptables package.
    const target = (await h.execOk(['readlink', '/usr/sbin/iptables'])).trim();
    await h.execOk(['rm', '/usr/sbin/iptables']);
    try {
      assert.notEqual((await h.exec(['sh', '-c', 'command -v iptables'])).exitCode, 0);
      const r = await runStep(h, 'iptables.rule', dnat());
      console.log(summary('no iptables', r));
      assert.equal(r.outcome.status, 'failed');
      assert.equal(r.outcome.errorCode, 'STEP_TOOL_MISSING');
      assert.match(r.outcome.message, /^iptables is not installed on this host \("iptables" not found on PATH=.*\)\. Next: install the iptables package/);
    } finally {
      await h.execOk(['ln', '-s', target, '/usr/sbin/iptables']);
    }
  });
});
