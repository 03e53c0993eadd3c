import 'reflect-metadata';
import assert from 'node:assert/strict';
import { statSync, existsSync, readFileSync } from 'node:fs';
import { X509Certificate, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { join } from '../../agent/src/enroll/join.js';
import { AgentState } from '../../agent/src/state/agent-state.js';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import { formatJoinString, parseJoinString } from '../../common/src/join-string.js';
import { createCsr, EC_ALG, generateKeyPair } from '../../common/src/pki.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, fakeFacts, joinString, startController, tempDir, type TestAgent } from '../support/fixtures.js';
import { describeStores } from '../support/stores.js';

async function expectJoinError(c: Controller, js: string, code: ErrorCode, re: RegExp): Promise<void> {
  const state = new AgentState(tempDir('ferry-agent-'));
  const before = (await c.ctx.agents.list()).length;
  await assert.rejects(join({ joinString: js, state, facts: fakeFacts('h') }), (e: FerryError) => {
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    assert.ok(e.hint, 'every refusal tells the field tech what to do next');
    return true;
  });
  assert.equal(state.isEnrolled(), false, 'nothing enrolled on the host');
  assert.equal(existsSync(state.keyPath), false, 'no key left behind');
  assert.equal((await c.ctx.agents.list()).length, before, 'nothing enrolled on the controller');
}

describeStores('enrollment', function (store) {
  let c: Controller;
  const agents: TestAgent[] = [];
  before(async () => { c = await startController(await store.flags()); });
  after(async () => cleanup(c, agents));

  it('issues a certificate for a host-generated key and stores it with mode 0600', async () => {
    const a = await enrollAgent(c, 'edge-1', { labels: { site: 'plant-7', role: 'edge' }, start: false });
    agents.push(a);
    for (const p of [a.state.keyPath, a.state.certPath, a.state.caPath, a.state.identityPath]) {
      assert.equal(statSync(p).mode & 0o777, 0o600, p);
    }
    assert.equal(statSync(a.state.dir).mode & 0o777, 0o700);
    const cert = new X509Certificate(readFileSync(a.state.certPath));
    assert.match(cert.subject, new RegExp(`CN=${a.id}`));
    assert.match(cert.subject, /OU=agent/);
    assert.equal(cert.ca, false);
    assert.equal(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(a.state.keyPath))), true);
    const rec = await c.ctx.agents.require(a.id);
    assert.equal(rec.labels['site'], 'plant-7');
    assert.equal(rec.labels['role'], 'edge');
    assert.equal(rec.labels['ferry/id'], a.id);
    assert.equal(rec.hostname, 'edge-1');
    // The controller stores only a hash of the token secret.
    const rows = await c.ctx.db.all<{ secret_hash: string }>('SELECT secret_hash FROM tokens');
    assert.ok(rows.every((r) => /^[0-9a-f]{64}$/.test(r.secret_hash)));
  });

  it('refuses expired, revoked, used-up, unknown and malformed tokens with distinct messages', async () => {
    const expired = await joinString(c, { ttlMs: 1 });
    await new Promise((r) => setTimeout(r, 5));
    await expectJoinError(c, expired, ErrorCode.TokenExpired, /expired at/);

    const revoked = await joinString(c);
    const id = parseJoinString(revoked).token.split('.')[1]!;
    await c.ctx.tokens.revoke(id);
    await expectJoinError(c, revoked, ErrorCode.TokenRevoked, /was revoked/);

    const once = await joinString(c, { uses: 1 });
    agents.push(await enrollAgent(c, 'once', { js: once, start: false }));
    await expectJoinError(c, once, ErrorCode.TokenExhausted, /used all 1 times/);

    const unknown = formatJoinString({ addresses: [`127.0.0.1:${c.port}`], token: `fy1.aaaaaaaaaa.${'B'.repeat(43)}`, caPin: c.pin });
    await expectJoinError(c, unknown, ErrorCode.TokenUnknown, /does not know this token/);

    const onceInfo = parseJoinString(once);
    const wrongSecret = formatJoinString({ ...onceInfo, token: onceInfo.token.replace(/[^.]+$/, 'C'.repeat(43)) });
    await expectJoinError(c, wrongSecret, ErrorCode.TokenUnknown, /does not know this token/);

    const malformed = formatJoinString({ addresses: [`127.0.0.1:${c.port}`], token: 'fy1.short', caPin: c.pin });
    await expectJoinError(c, malformed, ErrorCode.TokenMalformed, /malformed/);
  });

  it('refuses a controller whose CA does not match the pin before the token leaves the host', async () => {
    const js = await joinString(c);
    const id = parseJoinString(js).token.split('.')[1]!;
    const wrong = formatJoinString({ ...parseJoinString(js), caPin: `sha256:${'0'.repeat(64)}` });
    await expectJoinError(c, wrong, ErrorCode.CaPinMismatch, /may be intercepted.*NOT sent/);
    assert.equal((await c.ctx.tokens.get(id))!.uses, 0, 'the token was never presented');
  });

  it('gives 200 concurrent enrollments on a 200-use token exactly 200 identities', async function () {
    this.timeout(120_000);
    const js = await joinString(c, { uses: 200 });
    const results = await Promise.allSettled(Array.from({ length: 201 }, (_, i) =>
      join({ joinString: js, state: new AgentState(tempDir('ferry-agent-')), facts: fakeFacts(`bulk-${i}`) })));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 200);
    assert.equal(refused.length, 1);
    assert.equal((refused[0]!.reason as FerryError).code, ErrorCode.TokenExhausted);
    const id = parseJoinString(js).token.split('.')[1]!;
    assert.equal((await c.ctx.tokens.get(id))!.uses, 200);
    assert.equal((await c.ctx.agents.list()).filter((a) => a.hostname.startsWith('bulk-')).length, 200);
  });
});

describe('enrollment under overload', function () {
  this.timeout(180_000);
  let c: Controller;
  before(async () => { c = await startController(); });
  after(async () => cleanup(c));

  it('never spends a token use on a request its caller gave up on, and a repeated join finishes the same enrollment', async () => {
    // Short deadlines against a flooded controller: some calls expire in the
    // queue (dropped before they cost a use), some answers arrive after the
    // caller's deadline (the retry, with the same key, gets the recorded
    // identity), some hosts give up. Whatever happens, uses spent == agents recorded.
    const js = await joinString(c, { uses: 150 });
    const states = Array.from({ length: 150 }, () => new AgentState(tempDir('ferry-agent-')));
    await Promise.allSettled(states.map((state, i) => join({ joinString: js, state, facts: fakeFacts(`flood-${i}`), timeoutMs: 1500 })));
    const id = parseJoinString(js).token.split('.')[1]!;
    const count = async () => ({
      uses: (await c.ctx.tokens.get(id))!.uses,
      recorded: (await c.ctx.agents.list()).filter((a) => a.hostname.startsWith('flood-')).length,
      enrolled: states.filter((s) => s.isEnrolled()).length,
    });
    const flood = await count();
    assert.equal(flood.recorded, flood.uses);
    assert.ok(flood.enrolled <= flood.uses && flood.enrolled > 0, JSON.stringify(flood));
    // The field tech runs join again where it failed: every host ends enrolled, each with one identity, one use each.
    for (const [i, state] of states.entries()) if (!state.isEnrolled()) await join({ joinString: js, state, facts: fakeFacts(`flood-${i}`) });
    assert.deepEqual(await count(), { uses: 150, recorded: 150, enrolled: 150 });
    assert.equal(new Set(states.map((s) => s.load().identity.agentId)).size, 150);
  });
});

describe('enrollment: hostile certificate requests', () => {
  let c: Controller;
  const agents: TestAgent[] = [];
  before(async () => { c = await startController(); });
  after(async () => cleanup(c, agents));

  async function enrollRaw(csrPem: string): Promise<FerryError> {
    const { EnrollmentClient } = await import('../../common/src/gen/ferry/v1/enrollment.js');
    const { controllerCreds } = await import('../../agent/src/grpc-creds.js');
    const { fromServiceError } = await import('../../common/src/grpc-status.js');
    const js = await joinString(c);
    const token = parseJoinString(js).token;
    const client = new EnrollmentClient(`127.0.0.1:${c.port}`, controllerCreds(c.ctx.ca.certPem));
    try {
      return await new Promise((resolve, reject) => client.enroll({ token, csrPem, facts: fakeFacts('evil'), agentVersion: 'x' }, (err) =>
        err ? resolve(fromServiceError(err)) : reject(new Error('enrollment unexpectedly succeeded'))));
    } finally {
      client.close();
    }
  }

  it('refuses a CSR whose signature does not verify', async () => {
    const keys = await generateKeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys, signingAlgorithm: EC_ALG });
    const der = Buffer.from(csr.rawData);
    der[der.length - 5] ^= 0xff; // flip a bit inside the signature
    const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const e = await enrollRaw(pem);
    assert.equal(e.code, ErrorCode.CsrInvalid);
    assert.match(e.message, /signature does not verify/);
  });

  it('refuses a CSR that asks to be a CA', async () => {
    const keys = await generateKeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=x', keys, signingAlgorithm: EC_ALG, extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    });
    const e = await enrollRaw(csr.toString('pem'));
    assert.equal(e.code, ErrorCode.CsrInvalid);
    assert.match(e.message, /CA:true/);
  });

  it("refuses a CSR that claims another agent's identity", async () => {
    const victim = await enrollAgent(c, 'victim', { start: false });
    agents.push(victim);
    const keys = await generateKeyPair();
    const byCn = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${victim.id}`, keys, signingAlgorithm: EC_ALG });
    const e1 = await enrollRaw(byCn.toString('pem'));
    assert.equal(e1.code, ErrorCode.IdentityClaimed);
    assert.match(e1.message, new RegExp(victim.id));
    const bySan = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=innocent', keys, signingAlgorithm: EC_ALG,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `urn:ferry:agent:${victim.id}` }])],
    });
    const e2 = await enrollRaw(bySan.toString('pem'));
    assert.equal(e2.code, ErrorCode.IdentityClaimed);
  });

  it('refuses a non-P-256 key', async () => {
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } });
    const e = await enrollRaw(csr.toString('pem'));
    assert.equal(e.code, ErrorCode.CsrInvalid);
    assert.match(e.message, /P-256/);
  });

  it('answers an oversized request with RESOURCE_EXHAUSTED and keeps serving', async () => {
    const e = await enrollRaw('x'.repeat(5 * 1024 * 1024));
    assert.equal(e.code, ErrorCode.ResourceExhausted);
    agents.push(await enrollAgent(c, 'after-big', { start: false }));
  });
});

describeStores('enrollment repeated after a lost answer', function (store) {
  let c: Controller;
  before(async () => { c = await startController(await store.flags()); });
  after(async () => cleanup(c));

  async function enrollWith(token: string, csrPem: string, hostname: string): Promise<{ agentId: string; certPem: string } | FerryError> {
    const { EnrollmentClient } = await import('../../common/src/gen/ferry/v1/enrollment.js');
    const { controllerCreds } = await import('../../agent/src/grpc-creds.js');
    const { fromServiceError } = await import('../../common/src/grpc-status.js');
    const client = new EnrollmentClient(`127.0.0.1:${c.port}`, controllerCreds(c.ctx.ca.certPem));
    try {
      return await new Promise((resolve) => client.enroll({ token, csrPem, facts: fakeFacts(hostname), agentVersion: 'x' }, (err, res) =>
        resolve(err ? fromServiceError(err) : { agentId: res!.agentId, certPem: res!.certPem })));
    } finally {
      client.close();
    }
  }
  const tokenOf = (js: string) => parseJoinString(js).token;
  const usesOf = async (token: string) => (await c.ctx.tokens.get(token.split('.')[1]!))!.uses;

  it('answers the same key and token again with the same identity, a new certificate and no second use', async () => {
    const token = tokenOf(await joinString(c, { uses: 1 }));
    const csr = await createCsr(await generateKeyPair());
    const first = await enrollWith(token, csr, 'lost-answer');
    const again = await enrollWith(token, csr, 'lost-answer');
    assert.ok(!(first instanceof FerryError) && !(again instanceof FerryError), String(again));
    assert.equal(again.agentId, first.agentId);
    assert.notEqual(new X509Certificate(again.certPem).serialNumber, new X509Certificate(first.certPem).serialNumber);
    assert.equal(await usesOf(token), 1, 'the single use was spent once');
    assert.equal((await c.ctx.agents.list()).filter((a) => a.hostname === 'lost-answer').length, 1);
    assert.equal((await c.ctx.agents.get(first.agentId))!.certSerial.toLowerCase(), new X509Certificate(again.certPem).serialNumber.toLowerCase(), 'only the newest certificate is the recorded one');
  });

  it('refuses the same key with another token, and once the agent has connected', async () => {
    const token = tokenOf(await joinString(c, { uses: 2 }));
    const keys = await generateKeyPair();
    const csr = await createCsr(keys);
    const first = await enrollWith(token, csr, 'key-reuse');
    assert.ok(!(first instanceof FerryError));
    const other = await enrollWith(tokenOf(await joinString(c)), csr, 'key-reuse');
    assert.ok(other instanceof FerryError && other.code === ErrorCode.IdentityClaimed && /another token/.test(other.message), String(other));
    await c.ctx.agents.seen(first.agentId, Date.now());
    const late = await enrollWith(token, csr, 'key-reuse');
    assert.ok(late instanceof FerryError && late.code === ErrorCode.AlreadyExists && /already enrolled as agent/.test(late.message), String(late));
    assert.equal(await usesOf(token), 1);
  });

  it('keeps the key of an unfinished join: running join again with the same join string is the same enrollment', async () => {
    const js = await joinString(c, { uses: 1 });
    const state = new AgentState(tempDir('ferry-agent-'));
    // A first join whose answer never arrived: its key was kept, and the controller recorded the agent.
    const keys = await generateKeyPair();
    const { exportPrivateKeyPem } = await import('../../common/src/pki.js');
    state.savePendingKey(tokenOf(js).split('.')[1]!, await exportPrivateKeyPem(keys.privateKey));
    assert.equal((statSync(state.pendingKeyPath).mode & 0o777), 0o600);
    const recorded = await enrollWith(tokenOf(js), await createCsr(keys), 'rerun');
    assert.ok(!(recorded instanceof FerryError));
    const identity = await join({ joinString: js, state, facts: fakeFacts('rerun') });
    assert.equal(identity.agentId, recorded.agentId);
    assert.equal(existsSync(state.pendingKeyPath), false, 'the pending key is gone once the identity is saved');
  });

  it('replaces a damaged pending key instead of failing every join', async () => {
    const js = await joinString(c, { uses: 1 });
    const state = new AgentState(tempDir('ferry-agent-'));
    state.savePendingKey(tokenOf(js).split('.')[1]!, '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');
    const identity = await join({ joinString: js, state, facts: fakeFacts('damaged-pending') });
    assert.match(identity.agentId, /^ag-/);
  });

  it('refuses a repeat for an agent that was revoked meanwhile', async () => {
    const token = tokenOf(await joinString(c, { uses: 1 }));
    const csr = await createCsr(await generateKeyPair());
    const first = await enrollWith(token, csr, 'revoked-meanwhile');
    assert.ok(!(first instanceof FerryError));
    await c.ctx.agents.revoke(first.agentId, Date.now());
    const again = await enrollWith(token, csr, 'revoked-meanwhile');
    assert.ok(again instanceof FerryError && again.code === ErrorCode.IdentityClaimed && /revoked/.test(again.message), String(again));
  });
});
