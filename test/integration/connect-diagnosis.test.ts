import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { probeController } from '../../agent/src/enroll/tls-probe.js';
import { join } from '../../agent/src/enroll/join.js';
import { AgentState } from '../../agent/src/state/agent-state.js';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, fakeFacts, joinString, startController, tempDir } from '../support/fixtures.js';

function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve) => server.listen(0, host, () => resolve((server.address() as { port: number }).port)));
}

async function freePort(): Promise<number> {
  const s = createServer();
  const p = await listen(s);
  await new Promise((r) => s.close(r));
  return p;
}

function expectCode(code: ErrorCode, re: RegExp) {
  return (e: FerryError) => {
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    assert.ok(e.hint);
    return true;
  };
}

describe('agent connection diagnosis', () => {
  let c: Controller;
  before(async () => { c = await startController({ listen: '0.0.0.0:0' }); });
  after(async () => cleanup(c));

  it('says when nothing listens on the port', async () => {
    const port = await freePort();
    await assert.rejects(probeController(`127.0.0.1:${port}`, { pin: c.pin }), expectCode(ErrorCode.Unreachable, /nothing is listening on 127\.0\.0\.1:\d+/));
  });

  it('says when the port is not a Ferry controller (wrong port)', async () => {
    const plain = createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    const port = await listen(plain);
    try {
      await assert.rejects(probeController(`127.0.0.1:${port}`, { pin: c.pin }), expectCode(ErrorCode.TlsFailed, /does not speak TLS/));
    } finally {
      plain.close();
    }
  });

  it('says when the certificate does not name the address dialled', async () => {
    // 127.0.0.2 reaches the wildcard listener but is not in the certificate.
    await assert.rejects(probeController(`127.0.0.2:${c.port}`, { pin: c.pin }), expectCode(ErrorCode.TlsNameMismatch, /not for "127\.0\.0\.2"/));
  });

  it("says when this host's clock is behind the controller's certificate", async () => {
    const twoDaysAgo = Date.now() - 2 * 86_400_000;
    await assert.rejects(probeController(`127.0.0.1:${c.port}`, { pin: c.pin, now: twoDaysAgo }),
      expectCode(ErrorCode.ClockSkew, /valid only from .* this host's clock says/));
  });

  it('tries the next controller address when the first is unreachable', async () => {
    const dead = await freePort();
    const js = (await joinString(c)).replace('ferry1/', `ferry1/127.0.0.1:${dead},`);
    const state = new AgentState(tempDir('ferry-agent-'));
    const id = await join({ joinString: js, state, facts: fakeFacts('multi') });
    assert.match(id.agentId, /^ag-/);
    assert.equal(id.addresses.length, 2);
  });

  it('refuses to enroll over an existing identity without --force', async () => {
    const state = new AgentState(tempDir('ferry-agent-'));
    await join({ joinString: await joinString(c), state, facts: fakeFacts('twice') });
    await assert.rejects(join({ joinString: await joinString(c), state, facts: fakeFacts('twice') }),
      expectCode(ErrorCode.AlreadyExists, /already enrolled as ag-/));
    const again = await join({ joinString: await joinString(c), state, facts: fakeFacts('twice'), force: true });
    assert.equal(state.load().identity.agentId, again.agentId);
  });
});
