import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Controller } from '../../controller/src/controller.js';
import { exportPrivateKeyPem, generateKeyPair } from '../../common/src/pki.js';
import { ensurePrivateDir, writeFileAtomic } from '../../common/src/secure-fs.js';
import { cleanup, enrollAgent, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { pgrep } from '../support/pgrep.js';
import { OPERATOR_RECHECK_MS } from '../../controller/src/services/operator-call.js';
import { jsonLines } from '../support/json-lines.js';
import { daemon, repoRoot, run, type Result } from '../support/proc.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');

interface JsonError { error: { code: string; message: string; hint: string | null } }

/**
 * Roles at the operator boundary, end to end: a real controller on
 * 127.0.0.1:0, operator certificates issued by `ferry operator cert` over
 * the admin socket, and `ferry` run remotely with them over the TLS port.
 */
describe('operator roles, revocation and the audit log (real controller, TLS port)', function () {
  this.timeout(120_000);
  let c: Controller;
  const agents: TestAgent[] = [];
  const dir = tempDir('ferry-operators-');
  const local = (...args: string[]): Promise<Result> => run([process.execPath, ferryBin, '--data', c.config.dataDir, ...args]);
  const as = (who: string, ...args: string[]): Promise<Result> => {
    const d = join(dir, who);
    return run([process.execPath, ferryBin, '--controller', `127.0.0.1:${c.port}`,
      '--cert', join(d, 'operator.crt'), '--key', join(d, 'operator.key'), '--ca', join(d, 'ca.crt'), ...args]);
  };
  const refusedJson = (r: Result): JsonError['error'] => {
    assert.notEqual(r.code, 0, `expected a refusal: ${r.stdout}${r.stderr}`);
    return (JSON.parse(r.stdout) as JsonError).error;
  };

  before(async () => {
    c = await startController();
    agents.push(await enrollAgent(c, 'edge-1'), await enrollAgent(c, 'edge-2'));
    for (const [name, role] of [['vera', 'viewer'], ['root', 'admin'], ['bob', '']] as const) {
      const r = await local('operator', 'cert', name, '--out', join(dir, name), ...(role ? ['--role', role] : []));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`role ${role || 'viewer'}`));
    }
  });
  after(async () => { await cleanup(c, agents); rmSync(dir, { recursive: true, force: true }); });

  it('carries the role in the certificate, and defaults to viewer', () => {
    const sanOf = (who: string) => new X509Certificate(readFileSync(join(dir, who, 'operator.crt'))).subjectAltName;
    assert.equal(sanOf('vera'), 'URI:urn:ferry:operator:vera:viewer');
    assert.equal(sanOf('root'), 'URI:urn:ferry:operator:root:admin');
    assert.equal(sanOf('bob'), 'URI:urn:ferry:operator:bob:viewer');
  });

  it('lets a viewer list agents but not create a token, revoke an agent or pause a rollout', async () => {
    const ls = await as('vera', 'agents', 'ls', '--json');
    assert.equal(ls.code, 0, ls.stderr);
    assert.equal(jsonLines(ls.stdout).length, 2);
    const token = refusedJson(await as('vera', 'token', 'create', '--json'));
    assert.equal(token.code, 'PERMISSION_DENIED');
    assert.match(token.message, /\/ferry\.v1\.Admin\/CreateToken needs the admin role; operator:vera has the viewer role/);
    assert.match(token.hint ?? '', /--role admin/);
    const revoke = refusedJson(await as('vera', 'agents', 'revoke', agents[0]!.id, '--json'));
    assert.equal(revoke.code, 'PERMISSION_DENIED');
    assert.match(revoke.message, /RevokeAgent needs the admin role/);
    const pause = refusedJson(await as('vera', 'rollout', 'pause', 'ro-none', '--json'));
    assert.equal(pause.code, 'PERMISSION_DENIED', 'refused before the rollout is even looked up');
    assert.match(pause.message, /\/ferry\.v1\.Rollouts\/Pause needs the admin role/);
    const cert = refusedJson(await as('vera', 'operator', 'cert', 'vera2', '--role', 'admin', '--out', join(dir, 'vera2'), '--json'));
    assert.equal(cert.code, 'PERMISSION_DENIED', 'a viewer cannot mint itself an admin certificate');
    assert.equal((await c.ctx.agents.require(agents[0]!.id)).revokedAt, null);
  });

  it('lets an admin create a token and revoke an agent', async () => {
    const token = await as('root', 'token', 'create', '--json');
    assert.equal(token.code, 0, token.stderr + token.stdout);
    const revoke = await as('root', 'agents', 'revoke', agents[1]!.id);
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.notEqual((await c.ctx.agents.require(agents[1]!.id)).revokedAt, null);
  });

  it('keeps admin for a certificate issued before roles existed, and refuses one the controller never recorded', async () => {
    // Signed by this CA directly, as certificates were before roles: no role in the URN.
    const mint = async (who: string, operatorRole?: string) => {
      const keys = await generateKeyPair();
      ensurePrivateDir(join(dir, who));
      const issued = await c.ctx.ca.issue({ publicKey: keys.publicKey, commonName: who, role: 'operator', operatorRole, ttlMs: 3_600_000 });
      writeFileAtomic(join(dir, who, 'operator.key'), await exportPrivateKeyPem(keys.privateKey), 0o600);
      writeFileAtomic(join(dir, who, 'operator.crt'), issued.certPem, 0o600);
      writeFileAtomic(join(dir, who, 'ca.crt'), c.ctx.ca.certPem, 0o600);
      return issued;
    };
    const old = await mint('old');
    assert.equal(new X509Certificate(old.certPem).subjectAltName, 'URI:urn:ferry:operator:old');
    // The row as the code before roles wrote it: the migration's default makes it admin.
    await c.ctx.db.run('INSERT INTO operators (name, cert_serial, issued_at, not_after) VALUES (?, ?, ?, ?)', ['old', old.serial, Date.now(), old.notAfter.getTime()]);
    const t = await as('old', 'token', 'create', '--json');
    assert.equal(t.code, 0, t.stdout + t.stderr);

    await mint('ghost', 'admin');
    const ghost = refusedJson(await as('ghost', 'agents', 'ls', '--json'));
    assert.equal(ghost.code, 'UNAUTHENTICATED');
    assert.match(ghost.message, /not on this controller's record/);

    const liar = await mint('liar', 'admin');
    await c.ctx.db.run('INSERT INTO operators (name, role, cert_serial, issued_at, not_after) VALUES (?, ?, ?, ?, ?)', ['liar', 'viewer', liar.serial, Date.now(), liar.notAfter.getTime()]);
    const mismatch = refusedJson(await as('liar', 'agents', 'ls', '--json'));
    assert.equal(mismatch.code, 'UNAUTHENTICATED');
    assert.match(mismatch.message, /names liar \(admin\) but was issued to liar \(viewer\)/);
  });

  it('lists operator certificates, revokes by name or serial, and refuses a revoked one at once', async () => {
    for (const name of ['rita', 'rick']) assert.equal((await local('operator', 'cert', name, '--out', join(dir, name))).code, 0);
    assert.equal((await as('rita', 'agents', 'ls', '--json')).code, 0);
    const ls = await local('operator', 'ls', '--json');
    assert.equal(ls.code, 0, ls.stderr);
    const ops = jsonLines<{ name: string; role: string; serial: string; state: string; issuedAtMs: number; expiresAtMs: number; revokedAtMs: number | null }>(ls.stdout);
    const by = (n: string) => ops.find((o) => o.name === n)!;
    assert.deepEqual([by('vera').role, by('root').role, by('rita').role], ['viewer', 'admin', 'viewer']);
    for (const n of ['rita', 'rick', 'root']) {
      const o = by(n);
      assert.ok(o.state === 'active' && o.revokedAtMs === null && /^[0-9a-f]+$/.test(o.serial) && o.expiresAtMs > o.issuedAtMs, JSON.stringify(o));
    }
    const table = await local('operator', 'ls');
    assert.match(table.stdout, /^NAME\s+ROLE\s+STATE\s+SERIAL\s+ISSUED\s+EXPIRES\s+REVOKED$/m);
    assert.match(table.stdout, /^rita\s+viewer\s+active\s+[0-9a-f]+/m);

    // The certificate is far from expiry; revocation alone shuts it out, on the very next call.
    const rv = await local('operator', 'revoke', 'rita');
    assert.equal(rv.code, 0, rv.stderr);
    assert.match(rv.stdout, new RegExp(`revoked operator certificate ${by('rita').serial} \\(rita, viewer\\)`));
    const refused = refusedJson(await as('rita', 'agents', 'ls', '--json'));
    assert.equal(refused.code, 'UNAUTHENTICATED');
    assert.match(refused.message, /operator certificate [0-9a-f]+ of rita was revoked at/);

    const bySerial = await as('root', 'operator', 'revoke', by('rick').serial);
    assert.equal(bySerial.code, 0, bySerial.stderr);
    assert.equal(refusedJson(await as('rick', 'agents', 'ls', '--json')).code, 'UNAUTHENTICATED');
    assert.equal((await as('root', 'agents', 'ls', '--json')).code, 0, 'other certificates are untouched');
    assert.match((await local('operator', 'revoke', 'rita')).stdout, /nothing to revoke/);
    const now = jsonLines<(typeof ops)[number]>((await local('operator', 'ls', '--json')).stdout);
    assert.deepEqual(['rita', 'rick', 'root'].map((n) => now.find((o) => o.name === n)!.state), ['revoked', 'revoked', 'active']);
    const audit = await c.ctx.audit.list(20);
    assert.ok(audit.some((e) => e.actor === 'operator:root' && e.action === 'operator.revoke' && e.subject === by('rick').serial));
  });

  it('shows who did what in `ferry audit ls`', async () => {
    assert.equal((await local('operator', 'cert', 'auditee', '--role', 'admin', '--out', join(dir, 'auditee'))).code, 0);
    const token = JSON.parse((await as('auditee', 'token', 'create', '--json')).stdout) as { id: string };
    assert.equal((await as('auditee', 'token', 'revoke', token.id)).code, 0);
    assert.notEqual((await as('vera', 'token', 'revoke', token.id, '--json')).code, 0);
    const r = await as('vera', 'audit', 'ls', '--json', '--limit', '50');
    assert.equal(r.code, 0, `a viewer may read the audit log: ${r.stderr}`);
    const entries = jsonLines<{ atMs: number; actor: string; action: string; subject: string; detail: Record<string, unknown> }>(r.stdout);
    const find = (actor: string, action: string, subject: string) => entries.find((e) => e.actor === actor && e.action === action && e.subject === subject);
    assert.deepEqual(find('local', 'operator.cert', 'auditee')?.detail['role'], 'admin', r.stdout);
    assert.ok(find('operator:auditee', 'token.create', token.id), r.stdout);
    assert.ok(find('operator:auditee', 'token.revoke', token.id), r.stdout);
    assert.ok(!entries.some((e) => e.actor === 'operator:vera'), 'a refused call changed nothing and is not recorded as a change');
    assert.ok(entries.every((e, i) => i === 0 || e.atMs <= entries[i - 1]!.atMs), 'newest first');
    assert.equal(jsonLines((await local('audit', 'ls', '--json', '--limit', '2')).stdout).length, 2);
    const table = await local('audit', 'ls');
    assert.match(table.stdout, /^TIME\s+ACTOR\s+ACTION\s+SUBJECT\s+DETAIL$/m);
    assert.match(table.stdout, /operator:auditee\s+token\.revoke/);
  });

  it('ends a revoked operator\'s open stream (exec) within the recheck time, and the command stops on the hosts', async () => {
    const r = await local('operator', 'cert', 'rita', '--role', 'admin', '--out', join(dir, 'rita'));
    assert.equal(r.code, 0, r.stderr);
    const nap = `31.${process.pid}`;
    const d = join(dir, 'rita');
    const exec = daemon([process.execPath, ferryBin, '--controller', `127.0.0.1:${c.port}`, '--cert', join(d, 'operator.crt'), '--key', join(d, 'operator.key'),
      '--ca', join(d, 'ca.crt'), 'exec', '--host', 'edge-1', '--', 'sh', '-c', `echo started; sleep ${nap}`]);
    await waitFor(() => exec.out().includes('edge-1 | started'), 20_000, `the command started\n${exec.out()}`);
    const revoked = await local('operator', 'revoke', 'rita');
    assert.equal(revoked.code, 0, revoked.stderr);
    const code = await Promise.race([exec.exited, new Promise<string>((res) => setTimeout(() => res('still open'), OPERATOR_RECHECK_MS + 10_000))]);
    assert.notEqual(code, 'still open', 'the stream outlived the revocation');
    assert.notEqual(code, 0);
    assert.match(exec.out(), /operator certificate \S+ of rita was revoked/);
    await waitFor(() => pgrep(`sleep ${nap}$`) === 0, 15_000, 'the command stopped on the host');
  });
});

