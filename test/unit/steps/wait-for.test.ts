import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { isInternalAddress, waitForSchema, type WaitForArgs } from '../../../common/src/plan/steps/wait-for.js';
import { waitForExecutor } from '../../../agent/src/steps/wait-for.js';
import { makeContext, withCtx, type TestContext } from './step-context.js';

function args(raw: Record<string, unknown>): WaitForArgs {
  const r = waitForSchema.parse(raw);
  assert.deepEqual(r.problems, []);
  return r.args!;
}

const listen = <S extends Server | HttpServer>(s: S): Promise<number> =>
  new Promise((res) => s.listen(0, '127.0.0.1', () => res((s.address() as AddressInfo).port)));
const close = (s: Server | HttpServer) => new Promise((res) => s.close(res));

async function freePort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await close(s);
  return port;
}

describe('wait.for schema', () => {
  it('takes exactly one condition, with durations', () => {
    const a = args({ tcp: '127.0.0.1:10004', timeout: '2m', interval: '500ms' });
    assert.deepEqual(a, { condition: { kind: 'tcp', host: '127.0.0.1', port: 10004 }, timeoutMs: 120_000, intervalMs: 500 });
    assert.deepEqual(args({ tcp: '[::1]:10550' }).condition, { kind: 'tcp', host: '::1', port: 10550 });
    assert.deepEqual(args({ http: 'https://10.43.0.1/healthz', status: [200, 401], insecure: true }).condition,
      { kind: 'http', url: 'https://10.43.0.1/healthz', status: [200, 401], insecure: true });
    assert.deepEqual(args({ command: 'systemctl is-active edgecore' }).condition, { kind: 'command', command: { shell: 'systemctl is-active edgecore' } });
    assert.deepEqual(args({ file: '/var/lib/kubeedge/edgecore.db' }).condition, { kind: 'file', path: '/var/lib/kubeedge/edgecore.db' });
  });

  it('reports bad args, and refuses public HTTP targets', () => {
    const problems = (raw: Record<string, unknown>) => waitForSchema.parse(raw).problems.map((p) => `${p.path}: ${p.message}`);
    assert.match(problems({})[0]!, /give one of "tcp"/);
    assert.match(problems({ tcp: 'a:1', file: '/x' })[0]!, /only one of/);
    assert.match(problems({ tcp: 'cloudcore' })[0]!, /^tcp: .*host:port/);
    assert.match(problems({ tcp: 'h:70000' })[0]!, /^tcp: /);
    assert.match(problems({ http: 'http://8.8.8.8/' })[0]!, /^http: .*local or internal address.*8\.8\.8\.8 is public/);
    assert.match(problems({ http: 'ftp://10.0.0.1/' })[0]!, /^http: .*http:\/\/ or https:\/\//);
    assert.match(problems({ file: '/x', status: [200] })[0]!, /only go with "http"/);
    assert.match(problems({ file: '/x', timeout: 'soon' })[0]!, /^timeout: /);
    for (const ip of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.1.1', '100.64.0.1', '::1', 'fd00::1', 'fe80::1', '::ffff:10.0.0.1']) {
      assert.ok(isInternalAddress(ip), ip);
    }
    for (const ip of ['8.8.8.8', '172.32.0.1', '2001:db8::1', '::ffff:1.1.1.1']) assert.ok(!isInternalAddress(ip), ip);
  });
});

describe('wait.for', () => {
  let t: TestContext;
  const servers: Array<Server | HttpServer> = [];
  beforeEach(() => { t = makeContext(); });
  afterEach(async () => { t.cleanup(); await Promise.all(servers.splice(0).map(close)); });

  it('is unchanged when a port already accepts, changed when it had to wait', async () => {
    const s = createServer((c) => c.end());
    servers.push(s);
    const port = await listen(s);
    const now = await waitForExecutor.run(args({ tcp: `127.0.0.1:${port}` }), t.ctx);
    assert.equal(now.status, 'unchanged', now.message);

    const later = await freePort();
    const s2 = createServer((c) => c.end());
    servers.push(s2);
    setTimeout(() => s2.listen(later, '127.0.0.1'), 300);
    const out = await waitForExecutor.run(args({ tcp: `127.0.0.1:${later}`, interval: '50ms', timeout: '10s' }), t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.match(out.message, /^tcp 127\.0\.0\.1:\d+ ready after /);
    assert.match(t.lines[0]!.line, /^waiting up to 10\.0s for tcp 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
  });

  it('times out with the last probe result', async () => {
    const port = await freePort();
    const out = await waitForExecutor.run(args({ tcp: `127.0.0.1:${port}`, interval: '50ms', timeout: '300ms' }), t.ctx);
    assert.equal(out.status, 'failed');
    assert.equal(out.errorCode, 'DEADLINE_EXCEEDED');
    assert.match(out.message, /timed out after \d+ms waiting for tcp 127\.0\.0\.1:\d+ \(\d+ probes; last: connect ECONNREFUSED .*\)\. Next: check that the service started/);
  });

  it('waits for a local HTTP endpoint to answer an accepted status', async () => {
    let calls = 0;
    const s = createHttpServer((_, res) => { res.statusCode = ++calls < 3 ? 503 : 200; res.end(); });
    servers.push(s);
    const port = await listen(s);
    const out = await waitForExecutor.run(args({ http: `http://127.0.0.1:${port}/readyz`, interval: '20ms', timeout: '5s' }), t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.equal(calls, 3);
    // localhost goes through name resolution (and the internal-address check).
    const picky = await waitForExecutor.run(args({ http: `http://localhost:${port}/`, status: [204], interval: '20ms', timeout: '200ms' }), t.ctx);
    assert.match(picky.message, /last: (status 200 \(want 204\)|connect ECONNREFUSED ::1)/);
  });

  it('waits for a command and for a file (under the host root)', async () => {
    const flag = t.at('/run/edgecore.ready');
    setTimeout(() => t.put('/run/edgecore.ready', ''), 200);
    const cmd = await waitForExecutor.run(args({ command: ['test', '-f', flag], interval: '50ms', timeout: '5s' }), t.ctx);
    assert.equal(cmd.status, 'changed', cmd.message);
    const file = await waitForExecutor.run(args({ file: '/run/edgecore.ready' }), t.ctx);
    assert.equal(file.status, 'unchanged');
    const check = await waitForExecutor.run(args({ file: '/run/other' }), withCtx(t, { check: true }));
    assert.equal(check.status, 'changed');
    assert.match(check.message, /^check mode: file \/run\/other not ready yet \(does not exist\); would wait up to 1m/);
  });

  it('stops when ctx.signal is aborted', async () => {
    setTimeout(() => t.abort.abort(), 200);
    const started = Date.now();
    const out = await waitForExecutor.run(args({ file: '/never', interval: '1s', timeout: '1m' }), t.ctx);
    assert.equal(out.errorCode, 'CANCELLED');
    assert.match(out.message, /cancelled while waiting for file \/never/);
    assert.ok(Date.now() - started < 1000);
  });
});
