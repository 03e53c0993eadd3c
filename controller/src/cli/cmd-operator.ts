import { join, resolve } from 'node:path';
import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecords } from '../../../common/src/cli/json-records.js';
import { parseDuration } from '../../../common/src/duration.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { OperatorInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import { createCsr, exportPrivateKeyPem, generateKeyPair } from '../../../common/src/pki.js';
import { ensurePrivateDir, writeFileAtomic } from '../../../common/src/secure-fs.js';
import { table } from '../../../common/src/table.js';
import { parseOperatorRole } from '../store/operators.js';
import { Admin, adminFlags } from './admin-client.js';

const USAGE = 'use `ferry operator cert NAME --out DIR [--role viewer|admin] [--ttl 720h]`, `ferry operator login [NAME] [--role viewer|admin] [--ttl 10m]`, `ferry operator ls [--json]` or `ferry operator revoke NAME|SERIAL`';

function state(o: OperatorInfo, now = Date.now()): string {
  if (o.revokedAtMs) return 'revoked';
  return o.expiresAtMs <= now ? 'expired' : 'active';
}


const iso = (ms: number): string | null => (ms ? new Date(ms).toISOString() : null);

/** The `--json` record of one operator certificate (docs/json.md, "operator"); times in epoch ms. */
export function operatorRecord(o: OperatorInfo): Record<string, unknown> {
  return { name: o.name, role: o.role, serial: o.serial, state: state(o), issuedAtMs: o.issuedAtMs, expiresAtMs: o.expiresAtMs, revokedAtMs: o.revokedAtMs || null };
}

/**
 * `ferry operator cert | ls | revoke`: client certificates for remote
 * operators. For `cert` the key is generated where this command runs; only
 * the CSR goes to the controller. The role defaults to viewer: the weaker
 * certificate is the one that may leak harmlessly, and granting admin is
 * then a deliberate, audited choice (`--role admin`).
 */
export async function cmdOperator(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseFlags(rest, {
    ...adminFlags, out: { type: 'string' }, ttl: { type: 'string' }, role: { type: 'string' }, json: { type: 'boolean' },
  });
  if (sub !== 'cert' && sub !== 'ls' && sub !== 'revoke' && sub !== 'login') throw new FerryError(ErrorCode.InvalidArgument, `unknown operator command "${sub ?? ''}"`, USAGE);
  if (sub === 'login') {
    if (positionals.length > 1) throw new FerryError(ErrorCode.InvalidArgument, `operator login takes at most one NAME, not ${positionals.join(' ')}`, USAGE);
    return login(positionals[0] ?? '', values);
  }
  const wanted = sub === 'ls' ? 0 : 1;
  if (positionals.length !== wanted) {
    throw new FerryError(ErrorCode.InvalidArgument, `operator ${sub} takes ${wanted === 0 ? 'no arguments' : 'one NAME'}${positionals.length > wanted ? `, not ${positionals.join(' ')}` : ''}`, USAGE);
  }
  if (sub === 'cert') return cert(positionals[0]!, values);
  const admin = Admin.connect(values);
  try {
    if (sub === 'ls') {
      const { operators } = await admin.call(admin.client.listOperators, {});
      if (values.json) {
        writeRecords(operators.map(operatorRecord));
      } else {
        process.stdout.write(table([
          ['NAME', 'ROLE', 'STATE', 'SERIAL', 'ISSUED', 'EXPIRES', 'REVOKED'],
          ...operators.map((o) => [o.name, o.role, state(o), o.serial, iso(o.issuedAtMs)!.slice(0, 16), iso(o.expiresAtMs)!.slice(0, 16), iso(o.revokedAtMs)?.slice(0, 16) ?? '-']),
        ]));
      }
      return Exit.Ok;
    }
    const { revoked } = await admin.call(admin.client.revokeOperator, { nameOrSerial: positionals[0]! });
    if (values.json) {
      writeRecords(revoked.map(operatorRecord));
    } else if (revoked.length === 0) {
      process.stdout.write(`nothing to revoke: every certificate of ${positionals[0]} was revoked already\n`);
    } else {
      for (const o of revoked) process.stdout.write(`revoked operator certificate ${o.serial} (${o.name}, ${o.role}); the controller refuses it from now on\n`);
    }
    return Exit.Ok;
  } finally {
    admin.close();
  }
}

async function cert(name: string, values: { out?: string; ttl?: string; role?: string; json?: boolean } & Parameters<typeof Admin.connect>[0]): Promise<number> {
  if (!values.out) throw new FerryError(ErrorCode.InvalidArgument, 'operator cert needs --out DIR', USAGE);
  const role = parseOperatorRole(values.role ?? 'viewer');
  const out = resolve(values.out);
  const keys = await generateKeyPair();
  const admin = Admin.connect(values);
  let info: OperatorInfo | undefined;
  try {
    const res = await admin.call(admin.client.issueOperatorCert, {
      name, role, csrPem: await createCsr(keys, name), ttlMs: values.ttl ? parseDuration(values.ttl, '--ttl') : 0,
    });
    ensurePrivateDir(out);
    writeFileAtomic(join(out, 'operator.key'), await exportPrivateKeyPem(keys.privateKey), 0o600);
    writeFileAtomic(join(out, 'operator.crt'), res.certPem, 0o600);
    writeFileAtomic(join(out, 'ca.crt'), res.caPem, 0o600);
    info = res.operator;
  } finally {
    admin.close();
  }
  if (values.json) {
    process.stdout.write(JSON.stringify({ ...(info ? operatorRecord(info) : { name, role }), dir: out }) + '\n');
  } else {
    process.stdout.write(`wrote ${out}/operator.{key,crt} and ca.crt (${name}, role ${role}${info ? `, serial ${info.serial}` : ''})\n`
      + `use: ferry --controller HOST:PORT --cert ${out}/operator.crt --key ${out}/operator.key --ca ${out}/ca.crt agents ls\n`);
  }
  return Exit.Ok;
}

/**
 * `ferry operator login`: a single-use link for the web console. Only the
 * URL goes to stdout (so it can be piped to a browser); what it grants and
 * until when goes to stderr.
 */
async function login(name: string, values: { ttl?: string; role?: string } & Parameters<typeof Admin.connect>[0]): Promise<number> {
  const role = parseOperatorRole(values.role ?? 'viewer');
  const admin = Admin.connect(values);
  try {
    const res = await admin.call(admin.client.createConsoleLogin, { name, role, ttlMs: values.ttl ? parseDuration(values.ttl, '--ttl') : 0 });
    process.stdout.write(`${res.url}\n`);
    process.stderr.write(`opens one console session for ${res.name} (${res.role}); use it before ${new Date(res.expiresAtMs).toISOString()}\n`);
  } finally {
    admin.close();
  }
  return Exit.Ok;
}
