import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecord, writeRecords } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { generateSigningKey, readPublicKey } from '../../../common/src/bundle/manifest.js';
import { writeFileAtomic } from '../../../common/src/secure-fs.js';
import { table } from '../../../common/src/table.js';
import { Admin, adminFlags } from './admin-client.js';
import { keyRecord } from './records-delivery.js';

/**
 * `ferry key gen [--out NAME]`: an ed25519 signing key pair on this machine
 * (NAME.key, 0600, never sent anywhere; NAME.pub to share).
 * `ferry key add NAME.pub [--name alice]`: the controller trusts it; agents
 * enrolled from then on pin it. `ferry key ls`.
 */
export async function cmdKey(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseFlags(rest, { ...adminFlags, out: { type: 'string' }, name: { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' } });
  switch (sub) {
    case 'gen': {
      const base = resolve(values.out ?? 'operator');
      if (!values.force && (existsSync(`${base}.key`) || existsSync(`${base}.pub`))) {
        throw new FerryError(ErrorCode.AlreadyExists, `${base}.key or .pub already exists`, 'pick another --out, or pass --force to replace it (bundles signed with the old key stop verifying)');
      }
      const k = generateSigningKey();
      writeFileAtomic(`${base}.key`, k.privatePem, 0o600);
      writeFileAtomic(`${base}.pub`, k.publicPem, 0o644);
      process.stdout.write(`wrote ${base}.key (secret, mode 0600) and ${base}.pub\nkey id: ${k.keyId}\nnext: ferry key add ${base}.pub   (before enrolling hosts: they pin the keys they are given)\n`);
      return Exit.Ok;
    }
    case 'add': {
      const file = positionals[0];
      if (!file) throw new FerryError(ErrorCode.InvalidArgument, 'key add needs the .pub file', 'ferry key add operator.pub');
      const admin = Admin.connect(values);
      try {
        const k = await admin.call(admin.client.addSigningKey, { publicPem: readPublicKey(file), name: values.name ?? '' });
        if (values.json) writeRecord(keyRecord(k));
        else process.stdout.write(`trusted ${k.keyId} (${k.name}); hosts enrolled from now on pin it\n`);
      } finally {
        admin.close();
      }
      return Exit.Ok;
    }
    case 'ls': {
      const admin = Admin.connect(values);
      try {
        const { keys } = await admin.call(admin.client.listSigningKeys, {});
        if (values.json) writeRecords(keys.map(keyRecord));
        else process.stdout.write(table([['KEY ID', 'NAME', 'ADDED'], ...keys.map((k) => [k.keyId, k.name, new Date(k.addedAtMs).toISOString()])]));
      } finally {
        admin.close();
      }
      return Exit.Ok;
    }
    default:
      throw new FerryError(ErrorCode.InvalidArgument, `unknown key command "${sub ?? ''}"`, 'use gen, add or ls');
  }
}
