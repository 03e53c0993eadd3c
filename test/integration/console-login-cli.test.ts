import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, startController, tempDir } from '../support/fixtures.js';
import { repoRoot, run, type Result } from '../support/proc.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');

/** GET `url` with an optional cookie; resolves status, Set-Cookie and body. */
function get(url: string, cookie = ''): Promise<{ status: number; setCookie: string[]; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false, headers: cookie ? { Cookie: cookie } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode!, setCookie: res.headers['set-cookie'] ?? [], body }));
    });
    req.on('error', reject).end();
  });
}

/** `ferry operator login` refusals, and what revoking an operator does to its console sessions (no browser needed). */
describe('ferry operator login (CLI, real controller)', function () {
  this.timeout(60_000);
  let off: Controller;
  let on: Controller;
  const dir = tempDir('ferry-console-cli-');
  const ferry = (c: Controller, ...args: string[]): Promise<Result> => run([process.execPath, ferryBin, '--data', c.config.dataDir, ...args]);

  before(async () => {
    off = await startController();
    on = await startController({ 'console-addr': '127.0.0.1:0', 'console-session-ttl': '1h' });
  });
  after(async () => { await cleanup(off); await cleanup(on); rmSync(dir, { recursive: true, force: true }); });

  it('says how to turn the console on when it is off', async () => {
    const r = await ferry(off, 'operator', 'login', 'alice');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /the web console is off on this controller/);
    assert.match(r.stderr, /--console-addr HOST:PORT/);
  });

  it('refuses a bad role, a bad name and a TTL out of range, and a viewer certificate asking for a link', async () => {
    const role = await ferry(on, 'operator', 'login', 'alice', '--role', 'root');
    assert.equal(role.code, 2, role.stderr);
    assert.match(role.stderr, /--role "root" is not a role/);
    const name = await ferry(on, 'operator', 'login', 'Alice Smith');
    assert.notEqual(name.code, 0);
    assert.match(name.stderr, /operator name "Alice Smith" is invalid/);
    const ttl = await ferry(on, 'operator', 'login', 'alice', '--ttl', '48h');
    assert.notEqual(ttl.code, 0);
    assert.match(ttl.stderr, /a login link lives between 1s and 24h/);

    const cert = await ferry(on, 'operator', 'cert', 'vera', '--out', join(dir, 'vera'));
    assert.equal(cert.code, 0, cert.stderr);
    const remote = await run([process.execPath, ferryBin, '--controller', `127.0.0.1:${on.port}`, '--cert', join(dir, 'vera', 'operator.crt'),
      '--key', join(dir, 'vera', 'operator.key'), '--ca', join(dir, 'vera', 'ca.crt'), 'operator', 'login', '--role', 'admin']);
    assert.notEqual(remote.code, 0);
    assert.match(remote.stderr, /CreateConsoleLogin needs the admin role; operator:vera has the viewer role/);
  });

  it('lets an admin certificate open a link only as itself, never as another operator', async () => {
    const cert = await ferry(on, 'operator', 'cert', 'ada', '--out', join(dir, 'ada'), '--role', 'admin');
    assert.equal(cert.code, 0, cert.stderr);
    const as = (...args: string[]) => run([process.execPath, ferryBin, '--controller', `127.0.0.1:${on.port}`, '--cert', join(dir, 'ada', 'operator.crt'),
      '--key', join(dir, 'ada', 'operator.key'), '--ca', join(dir, 'ada', 'ca.crt'), 'operator', 'login', ...args]);
    const other = await as('bob', '--role', 'admin');
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /operator:ada cannot make a console login link for "bob"/);
    const own = await as();
    assert.equal(own.code, 0, own.stderr);
    assert.match(own.stdout, /\/login\?token=/);
    assert.match(own.stderr, /opens one console session for ada \(viewer\)/);
  });

  it('ends an operator\'s console sessions when its certificates are revoked', async () => {
    assert.equal((await ferry(on, 'operator', 'cert', 'dora', '--out', join(dir, 'dora'))).code, 0);
    const link = await ferry(on, 'operator', 'login', 'dora');
    assert.equal(link.code, 0, link.stderr);
    assert.match(link.stderr, /opens one console session for dora \(viewer\)/);
    const opened = await get(link.stdout.trim());
    assert.equal(opened.status, 200);
    const cookie = opened.setCookie[0]!.split(';')[0]!;
    assert.match(opened.setCookie[0]!, /^__Host-ferry_session=[A-Za-z0-9_-]+; Path=\/; Secure; HttpOnly; SameSite=Strict; Max-Age=3600$/);
    assert.equal((await get(`${on.consoleUrl}/fleet`, cookie)).status, 200);
    assert.equal((await ferry(on, 'operator', 'revoke', 'dora')).code, 0);
    const after = await get(`${on.consoleUrl}/fleet`, cookie);
    assert.equal(after.status, 401);
    assert.match(after.body, /ferry operator login/);
  });
});
