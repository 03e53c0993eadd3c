import { join, resolve } from 'node:path';
import { parseFlags } from '../../../common/src/cli-support.js';
import { parseDuration } from '../../../common/src/duration.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { createCsr, exportPrivateKeyPem, generateKeyPair } from '../../../common/src/pki.js';
import { ensurePrivateDir, writeFileAtomic } from '../../../common/src/secure-fs.js';
import { Admin, adminFlags } from './admin-client.js';

/**
 * `ferry operator cert NAME --out DIR [--ttl 720h]`: a client certificate for
 * remote admin. The key is generated where this command runs; only the CSR
 * goes to the controller.
 */
export async function cmdOperator(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'cert') throw new FerryError(ErrorCode.InvalidArgument, `unknown operator command "${sub ?? ''}"`, 'use `ferry operator cert NAME --out DIR`');
  const { values, positionals } = parseFlags(rest, { ...adminFlags, out: { type: 'string' }, ttl: { type: 'string' } });
  const name = positionals[0];
  if (!name || !values.out) throw new FerryError(ErrorCode.InvalidArgument, 'operator cert needs a NAME and --out DIR');
  const out = resolve(values.out);
  const keys = await generateKeyPair();
  const admin = Admin.connect(values);
  try {
    const res = await admin.call(admin.client.issueOperatorCert, {
      name, csrPem: await createCsr(keys, name), ttlMs: values.ttl ? parseDuration(values.ttl, '--ttl') : 0,
    });
    ensurePrivateDir(out);
    writeFileAtomic(join(out, 'operator.key'), await exportPrivateKeyPem(keys.privateKey), 0o600);
    writeFileAtomic(join(out, 'operator.crt'), res.certPem, 0o600);
    writeFileAtomic(join(out, 'ca.crt'), res.caPem, 0o600);
  } finally {
    admin.close();
  }
  process.stdout.write(`wrote ${out}/operator.{key,crt} and ca.crt\nuse: ferry --controller HOST:PORT --cert ${out}/operator.crt --key ${out}/operator.key --ca ${out}/ca.crt agents ls\n`);
  return Exit.Ok;
}
