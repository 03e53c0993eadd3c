// Smoke entry for scripts/build-agent.mjs: exercises every dependency the agent
// bundles so the SEA pipeline can be checked without the real agent CLI.
//
//   node scripts/build-agent.mjs --entry scripts/sea/probe.ts --out dist/sea-probe
//   env -i PATH=<dir without node> dist/sea-probe     # prints JSON, exits 0 if all OK
//   dist/sea-probe --noop                             # only loads the modules (startup time)
//
// 'reflect-metadata' must be imported before @peculiar/x509 (tsyringe needs it).
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as grpc from '@grpc/grpc-js';
import si from 'systeminformation';
import { execa } from 'execa';
import { pino } from 'pino';
import YAML from 'yaml';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EnrollmentClient,
  EnrollmentService,
  EnrollRequest,
  EnrollResponse,
} from '../../common/src/gen/ferry/v1/enrollment.js';

type Check = { name: string; ok: boolean; detail: string };
const checks: Check[] = [];

async function check(name: string, fn: () => Promise<string>): Promise<void> {
  try {
    checks.push({ name, ok: true, detail: await fn() });
  } catch (err) {
    checks.push({ name, ok: false, detail: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
}

async function grpcRoundTrip(): Promise<string> {
  const server = new grpc.Server();
  server.addService(EnrollmentService, {
    enroll: (
      call: grpc.ServerUnaryCall<EnrollRequest, EnrollResponse>,
      cb: grpc.sendUnaryData<EnrollResponse>,
    ) => {
      cb(
        null,
        EnrollResponse.fromPartial({
          agentId: `agent-for-${call.request.token}`,
          labels: [{ key: 'env', value: 'probe' }],
          serverTimeMs: Date.now(),
        }),
      );
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  try {
    const client = new EnrollmentClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const res = await new Promise<EnrollResponse>((resolve, reject) =>
      client.enroll(
        EnrollRequest.fromPartial({ token: 'tok123', agentVersion: 'probe', facts: { arch: process.arch, cpus: 1 } }),
        (err, r) => (err ? reject(err) : resolve(r)),
      ),
    );
    client.close();
    if (res.agentId !== 'agent-for-tok123' || res.labels[0]?.value !== 'probe') {
      throw new Error(`unexpected response ${JSON.stringify(res)}`);
    }
    return `port ${port}, agentId=${res.agentId}`;
  } finally {
    server.forceShutdown();
  }
}

async function csr(): Promise<string> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify']);
  const req = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=probe.ferry',
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: alg,
  });
  const pem = req.toString('pem');
  const parsed = new x509.Pkcs10CertificateRequest(pem);
  if (!(await parsed.verify())) throw new Error('CSR self-signature does not verify');
  return `${parsed.subject}, ${pem.length} bytes PEM`;
}

async function sysinfo(): Promise<string> {
  const [os, cpu, mem] = await Promise.all([si.osInfo(), si.cpu(), si.mem()]);
  if (!os.platform || !(mem.total > 0) || !(cpu.cores > 0)) {
    throw new Error(`implausible: ${JSON.stringify({ os, cpu, mem })}`);
  }
  return `${os.distro} ${os.release} (${os.kernel}), ${cpu.brand} x${cpu.cores}, ${mem.total} bytes`;
}

async function exec(): Promise<string> {
  const r = await execa('uname', ['-a']);
  if (r.exitCode !== 0 || !r.stdout) throw new Error(`uname failed: ${r.exitCode}`);
  return r.stdout;
}

async function logging(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sea-probe-'));
  try {
    const file = join(dir, 'log.ndjson');
    const dest = pino.destination({ dest: file, sync: true });
    const fileLog = pino({ name: 'probe' }, dest);
    fileLog.info({ n: 1 }, 'to file');
    dest.flushSync();
    const line = JSON.parse(readFileSync(file, 'utf8').trim()) as { msg: string; n: number };
    if (line.msg !== 'to file' || line.n !== 1) throw new Error(`bad line ${JSON.stringify(line)}`);
    // And the stdout path the agent uses by default (pino.transport() is not usable bundled).
    pino({ name: 'probe' }).info('hello from pino on stdout');
    return 'file + stdout';
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function yaml(): Promise<string> {
  const doc = YAML.parse('a: 1\nlist: [x, y]\n') as { a: number; list: string[] };
  if (doc.a !== 1 || doc.list.length !== 2) throw new Error('bad parse');
  return YAML.stringify({ ok: true }).trim();
}

async function meta(): Promise<string> {
  // import.meta.url is defined by the build script for the CJS bundle.
  const p = fileURLToPath(import.meta.url);
  return `import.meta.url -> ${p}; execPath=${process.execPath}`;
}

async function sea(): Promise<string> {
  const { isSea } = await import('node:sea');
  if (!isSea()) throw new Error('not running as a single executable application');
  return 'isSea() === true';
}

// No top-level await: the bundle is CommonJS (what Node 20 SEA runs), and esbuild
// cannot emit top-level await in CJS.
async function main(): Promise<void> {
  // --noop: exit right after every module above has been evaluated; times the
  // startup cost of the whole dependency graph (what `ferry-agent --help` pays).
  if (process.argv.includes('--noop')) return;
  await check('grpc', grpcRoundTrip);
  await check('x509', csr);
  await check('systeminformation', sysinfo);
  await check('execa', exec);
  await check('pino', logging);
  await check('yaml', yaml);
  await check('import.meta', meta);
  if (!process.argv.includes('--no-sea-check')) await check('sea', sea);

  const failed = checks.filter((c) => !c.ok);
  process.stdout.write(`${JSON.stringify({ ok: failed.length === 0, checks }, null, 2)}\n`);
  process.exitCode = failed.length === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 2;
});
