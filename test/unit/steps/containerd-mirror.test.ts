import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { parse } from 'smol-toml';
import { containerdMirrorSchema, type ContainerdMirrorArgs } from '../../../common/src/plan/steps/containerd-mirror.js';
import { containerdMirrorExecutor } from '../../../agent/src/steps/containerd-mirror.js';
import { inspectConfig, withConfigPath, V2_DEFAULT_CONFIG_PATH } from '../../../agent/src/steps/util/containerd-config.js';
import { renderHostsToml } from '../../../agent/src/steps/util/hosts-toml.js';
import { makeContext, withCtx, type TestContext } from './step-context.js';

function args(raw: Record<string, unknown>): ContainerdMirrorArgs {
  const r = containerdMirrorSchema.parse(raw);
  assert.deepEqual(r.problems, []);
  return r.args!;
}
/** smol-toml builds null-prototype objects; compare plain data. */
const plain = (x: unknown): unknown => JSON.parse(JSON.stringify(x));
const problems = (raw: Record<string, unknown>) => containerdMirrorSchema.parse(raw).problems.map((p) => `${p.path}: ${p.message}`);

const FLEET = { ca: '/var/lib/ferry-agent/ca.crt', cert: '/var/lib/ferry-agent/agent.crt', key: '/var/lib/ferry-agent/agent.key' };
const V2_CONFIG = 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".cni]\nbin_dir = "/usr/lib/cni"\n';
const V2_POINTED = `${V2_CONFIG}\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/etc/containerd/certs.d"\n`;

describe('containerd.mirror schema', () => {
  it('reads defaults: fleet CA and client, 3s dial timeout, mirror only, check config_path', () => {
    const a = args({ mirrors: ['https://10.77.0.1:5443/'], upstreams: ['docker.io', 'Sea.Hub:5000'] });
    assert.deepEqual(a.mirrors, ['https://10.77.0.1:5443']);
    assert.deepEqual(a.upstreams, ['docker.io', 'sea.hub:5000']);
    assert.deepEqual(a.ca, { kind: 'fleet' });
    assert.deepEqual(a.client, { kind: 'fleet' });
    assert.equal(a.dialTimeoutMs, 3000);
    assert.equal(a.offline, true);
    assert.equal(a.containerdConfig, 'check');
    assert.equal(a.certsDir, '/etc/containerd/certs.d');
    assert.deepEqual(args({ mirrors: ['https://m'], default: true, client: { cert: '/c.pem', key: '/k.pem' }, ca: '/ca.pem' }).client,
      { kind: 'files', cert: '/c.pem', key: '/k.pem' });
  });

  it('refuses duplicate upstreams and mirrors, bad URLs and hosts, relative paths', () => {
    assert.deepEqual(problems({ mirrors: ['https://m:5443'], upstreams: ['docker.io', 'DOCKER.IO'] }),
      ['upstreams[1]: "DOCKER.IO" is listed twice (also upstreams[0])']);
    assert.match(problems({ mirrors: ['https://m:5443', 'https://m:5443/'], upstreams: ['quay.io'] })[0]!, /^mirrors\[1\]: .*same mirror as mirrors\[0\].*duplicate host tables/);
    assert.match(problems({ mirrors: ['ftp://m'], upstreams: ['quay.io'] })[0]!, /^mirrors\[0\]: .*https:\/\//);
    assert.match(problems({ mirrors: ['m:5443'], upstreams: ['quay.io'] })[0]!, /^mirrors\[0\]: /);
    assert.match(problems({ mirrors: ['https://u:p@m'], upstreams: ['quay.io'] })[0]!, /user or password/);
    assert.match(problems({ mirrors: ['https://m/?x=1'], upstreams: ['quay.io'] })[0]!, /query/);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['https://quay.io'] })[0]!, /^upstreams\[0\]: .*no scheme/);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['../etc'] })[0]!, /^upstreams\[0\]: /);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['quay.io/x'] })[0]!, /no path/);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['index.docker.io'] })[0]!, /write docker\.io/);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['sea.hub:70000'] })[0]!, /port 70000 is out of range/);
    assert.deepEqual(args({ mirrors: ['https://[fd00::1]:5000'], upstreams: ['[fd00::2]:5000'] }).mirrors, ['https://[fd00::1]:5000']);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['_default'] })[0]!, /default: true/);
    assert.match(problems({ mirrors: ['https://m'] })[0]!, /^upstreams: give at least one/);
    assert.match(problems({ upstreams: ['quay.io'] })[0]!, /^mirrors: missing/);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['quay.io'], ca: 'etc/ca.pem' })[0]!, /^ca: .*absolute/);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['quay.io'], client: { cert: 'c', key: '/k' } })[0]!, /^client\.cert: .*absolute/);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['quay.io'], client: { cert: '/c' } })[0]!, /^client\.key: missing/);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['quay.io'], client: 'mine' })[0]!, /^client: /);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['quay.io'], dialTimeout: 'soon' })[0]!, /^dialTimeout: /);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['quay.io'], dialTimeout: '1d' })[0]!, /^dialTimeout: .*between/);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['quay.io'], capabilities: ['push'] })[0]!, /^capabilities\[0\]: /);
    assert.match(problems({ mirrors: ['http://m'], upstreams: ['quay.io'], ca: '/ca.pem' })[0]!, /^ca: .*https:\/\/ mirrors only/);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['quay.io'], certsDir: '/a:/b' })[0]!, /^certsDir: /);
    assert.match(problems({ mirrors: ['https://m'], upstreams: ['quay.io'], mirror: 'https://x' })[0]!, /unknown argument "mirror"/);
  });
});

describe('hosts.toml rendering', () => {
  const spec = { upstream: 'docker.io', mirrors: ['https://10.77.0.1:5443', 'http://relay:5000'], capabilities: ['pull', 'resolve'],
    ca: FLEET.ca, client: [FLEET.cert, FLEET.key] as const, dialTimeoutMs: 1500, offline: true };

  it('parses back: one host table per mirror, TLS only on https, no server when offline', () => {
    const text = renderHostsToml(spec);
    const doc = parse(text) as { server?: string; host: Record<string, Record<string, unknown>> };
    assert.equal(doc.server, undefined);
    assert.deepEqual(Object.keys(doc.host), ['https://10.77.0.1:5443', 'http://relay:5000']);
    assert.deepEqual(plain(doc.host['https://10.77.0.1:5443']), {
      capabilities: ['pull', 'resolve'], ca: FLEET.ca, client: [[FLEET.cert, FLEET.key]], dial_timeout: '1500ms',
    });
    assert.deepEqual(plain(doc.host['http://relay:5000']), { capabilities: ['pull', 'resolve'], dial_timeout: '1500ms' });
    // containerd ignores a whole file with a repeated table: every header appears once.
    const headers = text.split('\n').filter((l) => l.startsWith('['));
    assert.equal(new Set(headers).size, headers.length);
    assert.equal(headers.length, 2);
    assert.match(text, /^# Managed by Ferry .*docker\.io, mirror only/);
  });

  it('names the real upstream as server when not offline (registry-1 for Docker Hub, none for _default)', () => {
    assert.equal((parse(renderHostsToml({ ...spec, offline: false })) as { server?: string }).server, 'https://registry-1.docker.io');
    assert.equal((parse(renderHostsToml({ ...spec, upstream: 'sea.hub:5000', offline: false })) as { server?: string }).server, 'https://sea.hub:5000');
    assert.equal((parse(renderHostsToml({ ...spec, upstream: '_default', offline: false })) as { server?: string }).server, undefined);
    assert.equal((parse(renderHostsToml({ ...spec, dialTimeoutMs: 3000 })) as { host: Record<string, { dial_timeout: string }> }).host['http://relay:5000']!.dial_timeout, '3s');
  });
});

describe('containerd config_path', () => {
  const dir = '/etc/containerd/certs.d';
  it('finds the registry table of each config version and the defaults when unset', () => {
    assert.equal(inspectConfig(V2_POINTED, 1, dir, 'c').ok, true);
    const v2 = inspectConfig(V2_CONFIG, 1, dir, 'c');
    assert.deepEqual([v2.ok, v2.table.join('/'), v2.effective], [false, 'plugins/io.containerd.grpc.v1.cri/registry', '']);
    const v3 = inspectConfig('version = 3\n', 2, dir, 'c');
    assert.deepEqual([v3.ok, v3.table[1], v3.effective], [true, 'io.containerd.cri.v1.images', V2_DEFAULT_CONFIG_PATH]);
    assert.match(v3.notes[0]!, /colon-separated/);
    assert.deepEqual([inspectConfig(undefined, 1, dir, 'c').ok, inspectConfig(undefined, 2, dir, 'c').ok], [false, true]);
    assert.equal(inspectConfig('[plugins.cri.registry]\nconfig_path = "/etc/containerd/certs.d/"\n', 1, dir, 'c').ok, true, 'a version-1 file');
    assert.equal(inspectConfig(V2_POINTED.replace('/etc/containerd/certs.d', '/etc/docker/certs.d'), 1, dir, 'c').ok, false);
  });

  it('reports settings containerd refuses beside config_path, and bad TOML with its line', () => {
    const f = inspectConfig(`${V2_CONFIG}[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\nendpoint = ["https://m"]\n`, 1, dir, 'c');
    assert.match(f.conflicts[0]!, /registry\.mirrors\] \(docker\.io\)/);
    assert.throws(() => inspectConfig('version = 2\n[plugins\n', 1, dir, '/etc/containerd/config.toml'), /^Error: \/etc\/containerd\/config\.toml:2:\d+ is not valid TOML/);
  });

  it('sets config_path keeping every other setting', () => {
    const f = inspectConfig(V2_CONFIG, 1, dir, 'c');
    const next = parse(withConfigPath(V2_CONFIG, f, dir, 'c')) as Record<string, any>;
    assert.equal(next.version, 2);
    assert.equal(next.plugins['io.containerd.grpc.v1.cri'].cni.bin_dir, '/usr/lib/cni');
    assert.equal(next.plugins['io.containerd.grpc.v1.cri'].registry.config_path, dir);
    assert.equal(inspectConfig(withConfigPath(V2_CONFIG, f, dir, 'c'), 1, dir, 'c').ok, true);
    const fresh = parse(withConfigPath(undefined, inspectConfig(undefined, 2, '/x', 'c'), '/x', 'c')) as Record<string, any>;
    assert.deepEqual(plain(fresh), { version: 3, plugins: { 'io.containerd.cri.v1.images': { registry: { config_path: '/x' } } } });
  });
});

describe('containerd.mirror on a host root', () => {
  let t: TestContext;
  const base = { mirrors: ['https://10.77.0.1:5443'], upstreams: ['docker.io', 'sea.hub:5000'] };
  beforeEach(() => {
    t = makeContext();
    t.ctx.fleet = { ca: t.at(FLEET.ca), cert: t.at(FLEET.cert), key: t.at(FLEET.key) };
    for (const p of Object.values(FLEET)) t.put(p, 'pem\n', 0o600);
    t.put('/etc/containerd/config.toml', V2_POINTED);
  });
  afterEach(() => t.cleanup());

  it('writes one hosts.toml per upstream (host:port directories) and _default; a second run is unchanged', async () => {
    const a = args({ ...base, default: true });
    const check = await containerdMirrorExecutor.run(a, withCtx(t, { check: true }));
    assert.equal(check.status, 'changed', check.message);
    assert.match(check.diff!, /\+\+\+ \/etc\/containerd\/certs\.d\/sea\.hub:5000\/hosts\.toml/);
    assert.equal(existsSync(t.at('/etc/containerd/certs.d')), false, 'check mode wrote nothing');

    const out = await containerdMirrorExecutor.run(a, t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.match(out.message, /wrote hosts\.toml for docker\.io, sea\.hub:5000, _default; config_path in \/etc\/containerd\/config\.toml ok/);
    assert.deepEqual(readdirSync(t.at('/etc/containerd/certs.d')).sort(), ['_default', 'docker.io', 'sea.hub:5000']);
    const doc = parse(t.read('/etc/containerd/certs.d/sea.hub:5000/hosts.toml')) as { host: Record<string, { client: string[][] }> };
    assert.deepEqual(plain(doc.host['https://10.77.0.1:5443']!.client), [[FLEET.cert, FLEET.key]]);

    const again = await containerdMirrorExecutor.run(a, t.ctx);
    assert.equal(again.status, 'unchanged', again.message);
    assert.equal((await containerdMirrorExecutor.run(a, withCtx(t, { check: true }))).status, 'unchanged');
  });

  it('"relay" stands for the host\'s site relays, most preferred first, before the controller; none without relays', async () => {
    const a = args({ mirrors: ['relay', 'https://ctl:5000'], upstreams: ['docker.io'] });
    assert.deepEqual(a.mirrors, ['relay', 'https://ctl:5000']);
    assert.match(problems({ mirrors: ['relay'], upstreams: ['docker.io'] })[0]!, /^mirrors: "relay" alone/);
    assert.match(problems({ mirrors: ['relay', 'relay', 'https://c'], upstreams: ['docker.io'] })[0]!, /^mirrors\[1\]: "relay" is listed twice/);
    const out = await containerdMirrorExecutor.run(a, withCtx(t, { relayRegistries: ['10.7.0.2:5000', '10.7.0.3:5000'] }));
    assert.equal(out.status, 'changed', out.message);
    const doc = parse(t.read('/etc/containerd/certs.d/docker.io/hosts.toml')) as { host: Record<string, { client: string[][] }> };
    assert.deepEqual(Object.keys(doc.host), ['https://10.7.0.2:5000', 'https://10.7.0.3:5000', 'https://ctl:5000']);
    assert.deepEqual(plain(doc.host['https://10.7.0.2:5000']!.client), [[FLEET.cert, FLEET.key]]);
    const none = await containerdMirrorExecutor.run(a, withCtx(t, { relayRegistries: [] }));
    assert.equal(none.status, 'changed', none.message);
    assert.deepEqual(Object.keys((parse(t.read('/etc/containerd/certs.d/docker.io/hosts.toml')) as { host: object }).host), ['https://ctl:5000']);
  });

  it('backs up a hosts.toml it replaces', async () => {
    t.put('/etc/containerd/certs.d/docker.io/hosts.toml', 'server = "https://registry-1.docker.io"\n');
    const out = await containerdMirrorExecutor.run(args(base), t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.match(out.diff!, /^-server = "https:\/\/registry-1\.docker\.io"$/m);
    const baks = readdirSync(t.at('/etc/containerd/certs.d/docker.io')).filter((f) => f.includes('.ferry-bak-'));
    assert.equal(baks.length, 1);
    assert.equal(t.read(`/etc/containerd/certs.d/docker.io/${baks[0]}`), 'server = "https://registry-1.docker.io"\n');
  });

  it('refuses, writing nothing, when config_path does not point there; says the exact lines', async () => {
    t.put('/etc/containerd/config.toml', V2_CONFIG);
    const out = await containerdMirrorExecutor.run(args(base), t.ctx);
    assert.equal(out.status, 'failed');
    assert.equal(out.errorCode, 'CONFIG');
    assert.match(out.message, /^\/etc\/containerd\/config\.toml does not point containerd at \/etc\/containerd\/certs\.d: config_path is not set \(containerd \d\.x then reads no hosts\.toml at all\); kubelet's pulls would ignore/);
    assert.match(out.message, /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\]\n {2}config_path = "\/etc\/containerd\/certs\.d"\nthen run systemctl restart containerd/);
    assert.equal(existsSync(t.at('/etc/containerd/certs.d')), false);
  });

  it('containerdConfig: set edits config.toml with a backup (restart left to the host when root is not /)', async () => {
    t.put('/etc/containerd/config.toml', V2_CONFIG);
    const a = args({ ...base, containerdConfig: 'set' });
    const out = await containerdMirrorExecutor.run(a, t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.match(out.message, /set config_path = "\/etc\/containerd\/certs\.d" in \/etc\/containerd\/config\.toml; restart containerd on the host/);
    assert.equal(inspectConfig(t.read('/etc/containerd/config.toml'), 1, '/etc/containerd/certs.d', 'c').ok, true);
    assert.equal(readdirSync(t.at('/etc/containerd')).filter((f) => f.startsWith('config.toml.ferry-bak-')).length, 1);
    assert.equal((await containerdMirrorExecutor.run(a, t.ctx)).status, 'unchanged');
  });

  it('refuses missing TLS files, an agent without fleet identity, and a certs.d symlinked out of the root', async () => {
    t.put('/etc/containerd/config.toml', V2_POINTED);
    const missing = await containerdMirrorExecutor.run(args({ ...base, ca: '/etc/pki/site-ca.pem' }), t.ctx);
    assert.equal(missing.errorCode, 'STEP_INPUT_MISSING');
    assert.match(missing.message, /^hosts\.toml would name \/etc\/pki\/site-ca\.pem, which does not exist on this host; nothing was written/);
    const noFleet = await containerdMirrorExecutor.run(args(base), withCtx(t, { fleet: undefined }));
    assert.equal(noFleet.errorCode, 'NOT_ENROLLED');
    const elsewhere = await containerdMirrorExecutor.run(args(base), withCtx(t, { fleet: { ...FLEET, ca: '/srv/agent-state/ca.crt' } }));
    assert.equal(elsewhere.errorCode, 'INVALID_ARGUMENT');
    assert.match(elsewhere.message, /^the agent's fleet file \/srv\/agent-state\/ca\.crt is outside the host root /);
    assert.equal(existsSync(t.at('/etc/containerd/certs.d')), false);
    const outside = `${t.root}-outside`;
    mkdirSync(outside, { recursive: true });
    symlinkSync(outside, t.at('/etc/containerd/certs.d'));
    const escaped = await containerdMirrorExecutor.run(args(base), t.ctx);
    rmSync(outside, { recursive: true, force: true });
    assert.equal(escaped.errorCode, 'INVALID_ARGUMENT');
    assert.match(escaped.message, /outside the host root/);
  });
});
