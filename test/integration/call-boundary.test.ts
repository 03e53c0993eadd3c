import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import {
  credentials, makeGenericClientConstructor, Metadata, Server, ServerCredentials, type Client, type ServiceDefinition,
} from '@grpc/grpc-js';
import { pino } from 'pino';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import { CallBoundary } from '../../controller/src/services/call-boundary.js';
import { waitFor } from '../support/fixtures.js';

const json = { serialize: (v: unknown) => Buffer.from(JSON.stringify(v)), deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown };
const method = (path: string, responseStream: boolean, requestStream = false) => ({
  path, requestStream, responseStream,
  requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize,
});
const definition: ServiceDefinition = {
  boom: method('/t.T/Boom', false),
  refuse: method('/t.T/Refuse', false),
  ok: method('/t.T/Ok', false),
  stream: method('/t.T/Stream', true),
  sum: method('/t.T/Sum', false, true),
};

describe('the controller\'s one error boundary (real gRPC server)', () => {
  let server: Server;
  let client: Client & Record<string, (...a: unknown[]) => unknown>;
  const lines: Array<Record<string, unknown>> = [];
  let streamAborted: Promise<unknown>;
  const calls: Array<{ method: string; type: string; code: string; seconds: number }> = [];

  before(async () => {
    const log = pino({ level: 'debug' }, new Writable({ write(c: Buffer, _e, done) { for (const l of c.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>); done(); } }));
    const b = new CallBoundary({
      api: 'test', log,
      metrics: { callFinished: (m, type, code, seconds) => calls.push({ method: m, type, code, seconds }) },
      caller: (call) => {
        if (call.getPeer().length === 0) throw new FerryError(ErrorCode.Unauthenticated, 'no peer');
        return 'operator:alice';
      },
    });
    let onAbort!: (r: unknown) => void;
    streamAborted = new Promise((r) => { onAbort = r; });
    server = new Server();
    server.addService(definition, {
      boom: b.unary(async () => { throw new TypeError('cannot read properties of undefined'); }),
      refuse: b.unary(async () => { throw new FerryError(ErrorCode.NotFound, 'no such rollout', 'list them with ferry rollout ls'); }),
      ok: b.unary(async (req: { n: number }, who) => ({ n: req.n + 1, who })),
      stream: b.serverStream(async (call, { signal }) => {
        call.write({ i: 1 });
        await new Promise((r) => signal.addEventListener('abort', r));
        onAbort(signal.reason);
      }),
      sum: b.clientStream(async (call) => {
        let total = 0;
        for await (const m of call as AsyncIterable<{ n: number }>) total += m.n;
        return { total };
      }),
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const Ctor = makeGenericClientConstructor(definition, 'T');
    client = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure()) as typeof client;
  });
  after(() => { client.close(); server.forceShutdown(); });

  const unary = (name: string, req: unknown) => new Promise<unknown>((resolve, reject) => {
    client[name]!(req, new Metadata(), (err: unknown, res: unknown) => (err ? reject(fromServiceError(err)) : resolve(res)));
  });

  it('answers with the handler\'s result and the caller it checked', async () => {
    assert.deepEqual(await unary('ok', { n: 1 }), { n: 2, who: 'operator:alice' });
  });

  it('keeps Ferry codes and hints, and logs them without alarm', async () => {
    const e = await unary('refuse', {}).then(() => assert.fail('no error'), (err: FerryError) => err);
    assert.equal(e.code, ErrorCode.NotFound);
    assert.equal(e.hint, 'list them with ferry rollout ls');
    assert.ok(!lines.some((l) => l['level'] === 50 && l['method'] === '/t.T/Refuse'));
  });

  it('hides an unexpected error from the caller and logs it with who called and which method', async () => {
    const e = await unary('boom', {}).then(() => assert.fail('no error'), (err: FerryError) => err);
    assert.equal(e.code, ErrorCode.Internal);
    assert.doesNotMatch(e.message, /undefined/);
    const line = lines.find((l) => l['level'] === 50 && l['method'] === '/t.T/Boom');
    assert.ok(line, 'an error line for the unexpected failure');
    assert.equal(line['who'], 'operator:alice');
    assert.match(JSON.stringify(line['err']), /cannot read properties of undefined/);
  });

  it('aborts a stream handler\'s signal when the caller cancels', async () => {
    const call = client['stream']!({}, new Metadata()) as NodeJS.EventEmitter & { cancel(): void };
    call.on('error', () => undefined);
    await new Promise((r) => call.once('data', r));
    call.cancel();
    const reason = await streamAborted;
    assert.equal((reason as FerryError).code, ErrorCode.Cancelled);
  });

  it('serves client streams through the same boundary', async () => {
    const res = await new Promise<unknown>((resolve, reject) => {
      const call = client['sum']!(new Metadata(), (err: unknown, r: unknown) => (err ? reject(fromServiceError(err)) : resolve(r))) as NodeJS.WritableStream;
      call.write({ n: 2 } as never);
      call.write({ n: 40 } as never);
      call.end();
    });
    assert.deepEqual(res, { total: 42 });
  });

  it('reports every call\'s end once, with its kind, status and time', async () => {
    await waitFor(() => calls.some((c) => c.method === '/t.T/Stream'), 5_000, 'the cancelled stream reported');
    const by = (m: string) => calls.filter((c) => c.method === m);
    assert.deepEqual(by('/t.T/Ok').map((c) => [c.type, c.code]), [['unary', 'OK']]);
    assert.deepEqual(by('/t.T/Refuse').map((c) => [c.type, c.code]), [['unary', 'NOT_FOUND']]);
    assert.deepEqual(by('/t.T/Boom').map((c) => [c.type, c.code]), [['unary', 'INTERNAL']]);
    assert.deepEqual(by('/t.T/Stream').map((c) => [c.type, c.code]), [['server_stream', 'CANCELLED']]);
    assert.deepEqual(by('/t.T/Sum').map((c) => [c.type, c.code]), [['client_stream', 'OK']]);
    for (const c of calls) assert.ok(c.seconds >= 0 && c.seconds < 30, `${c.method} took ${c.seconds} s`);
  });
});

