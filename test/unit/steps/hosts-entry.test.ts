import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { hostsEntrySchema, type HostsEntryArgs } from '../../../common/src/plan/steps/hosts-entry.js';
import { editHostsText, hostsEntryExecutor, HOSTS_MARK } from '../../../agent/src/steps/hosts-entry.js';
import { makeContext, withCtx, type TestContext } from './step-context.js';

function args(raw: Record<string, unknown>): HostsEntryArgs {
  const r = hostsEntrySchema.parse(raw);
  assert.deepEqual(r.problems, []);
  return r.args!;
}
const problems = (raw: Record<string, unknown>) => hostsEntrySchema.parse(raw).problems.map((p) => `${p.path}: ${p.message}`);

const HOSTS = '127.0.0.1\tlocalhost\n# site registry, old\n10.0.0.9   sea.hub registry.local   # old relay\n::1 localhost ip6-localhost\n';

describe('hosts.entry schema', () => {
  it('refuses names that are not host names, duplicates, a missing or non-IP address', () => {
    assert.deepEqual(args({ address: '10.77.0.1', names: ['Sea.Hub'] }).names, ['sea.hub']);
    assert.match(problems({ address: 'ctl.local', names: ['sea.hub'] })[0]!, /^address: .*IPv4 or IPv6/);
    assert.match(problems({ names: ['sea.hub'] })[0]!, /^address: missing/);
    assert.deepEqual(problems({ names: ['sea.hub'], state: 'absent' }), []);
    assert.match(problems({ address: '10.77.0.1', names: ['sea.hub', 'SEA.HUB'] })[0]!, /^names\[1\]: "sea\.hub" is listed twice/);
    assert.match(problems({ address: '10.77.0.1', names: ['sea_hub'] })[0]!, /^names\[0\]: .*not a host name/);
    assert.match(problems({ address: '10.77.0.1', names: ['localhost'] })[0]!, /loopback/);
    assert.match(problems({ address: '10.77.0.1', names: [] })[0]!, /^names: .*not be empty/);
    assert.match(problems({ address: '10.77.0.1', names: ['a'], file: 'hosts' })[0]!, /^file: .*absolute/);
  });
});

describe('hosts.entry text edit', () => {
  it('moves a pinned name off a line with another address, keeping the rest of that line and every other line', () => {
    const next = editHostsText(HOSTS, { address: '10.77.0.1', names: ['sea.hub'], state: 'present' });
    assert.equal(next, `127.0.0.1\tlocalhost\n# site registry, old\n10.0.0.9\tregistry.local # old relay\n::1 localhost ip6-localhost\n10.77.0.1\tsea.hub\t${HOSTS_MARK}\n`);
    assert.equal(editHostsText(next, { address: '10.77.0.1', names: ['sea.hub'], state: 'present' }), next, 'idempotent');
  });

  it('accepts a name already on a line with the address (not marked by Ferry) and adds only what is missing', () => {
    const text = '10.77.0.1 sea.hub\n';
    assert.equal(editHostsText(text, { address: '10.77.0.1', names: ['sea.hub'], state: 'present' }), text);
    assert.equal(editHostsText('10.77.0.1 sea.hub', { address: '10.77.0.1', names: ['sea.hub', 'files.hub'], state: 'present' }),
      `10.77.0.1 sea.hub\n10.77.0.1\tfiles.hub\t${HOSTS_MARK}\n`);
    assert.equal(editHostsText('fd00::0:1 sea.hub\n', { address: 'fd00::1', names: ['sea.hub'], state: 'present' }), 'fd00::0:1 sea.hub\n');
  });

  it('absent removes the names everywhere and drops lines left empty', () => {
    const next = editHostsText(`${HOSTS}10.77.0.1\tsea.hub\t${HOSTS_MARK}\n`, { address: '', names: ['sea.hub', 'registry.local'], state: 'absent' });
    assert.equal(next, '127.0.0.1\tlocalhost\n# site registry, old\n::1 localhost ip6-localhost\n');
  });
});

describe('hosts.entry on a host root', () => {
  let t: TestContext;
  beforeEach(() => { t = makeContext(); t.put('/etc/hosts', HOSTS, 0o644); });
  afterEach(() => t.cleanup());

  it('check mode shows the diff and changes nothing; then pins with a backup; then unchanged', async () => {
    const a = args({ address: '10.77.0.1', names: ['sea.hub'] });
    const check = await hostsEntryExecutor.run(a, withCtx(t, { check: true }));
    assert.equal(check.status, 'changed', check.message);
    assert.match(check.diff!, /^-10\.0\.0\.9 {3}sea\.hub registry\.local {3}# old relay$/m);
    assert.match(check.diff!, /^\+10\.77\.0\.1\tsea\.hub\t# ferry hosts\.entry$/m);
    assert.equal(t.read('/etc/hosts'), HOSTS);

    const out = await hostsEntryExecutor.run(a, t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.match(out.message, /^changed \/etc\/hosts: sea\.hub → 10\.77\.0\.1 \(backup \/etc\/hosts\.ferry-bak-\d{8}T\d{6}Z\)$/);
    assert.match(t.read('/etc/hosts'), /\n10\.77\.0\.1\tsea\.hub\t# ferry hosts\.entry\n$/);
    assert.equal(statSync(t.at('/etc/hosts')).mode & 0o777, 0o644);
    const baks = readdirSync(t.at('/etc')).filter((f) => f.startsWith('hosts.ferry-bak-'));
    assert.equal(baks.length, 1);
    assert.equal(t.read(`/etc/${baks[0]}`), HOSTS);
    assert.equal((await hostsEntryExecutor.run(a, t.ctx)).status, 'unchanged');
  });

  it('creates a missing hosts file (0644) and refuses a directory', async () => {
    t.put('/srv/x', '');
    const a = args({ address: '10.77.0.1', names: ['sea.hub'], file: '/srv/hosts' });
    assert.equal((await hostsEntryExecutor.run(a, t.ctx)).status, 'changed');
    assert.equal(t.read('/srv/hosts'), `10.77.0.1\tsea.hub\t${HOSTS_MARK}\n`);
    assert.equal(statSync(t.at('/srv/hosts')).mode & 0o777, 0o644);
    const dir = await hostsEntryExecutor.run(args({ address: '10.77.0.1', names: ['sea.hub'], file: '/srv' }), t.ctx);
    assert.equal(dir.errorCode, 'INVALID_ARGUMENT');
    assert.match(dir.message, /^\/srv is not a regular file/);
  });
});
