import { readFileSync, statSync } from 'node:fs';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';

/** The environment variable that may hold the passphrase (for secret stores that inject variables). */
export const PASSPHRASE_ENV = 'FERRY_BACKUP_PASSPHRASE';
/** Shortest passphrase a new backup accepts: it is all that protects the CA key inside. */
export const MIN_PASSPHRASE = 12;

/**
 * The backup passphrase, from a file (`--passphrase-file`, first line, its
 * newline dropped) or the environment, never from the command line (argv
 * is visible to every user in /proc and lands in shell history). A file
 * others can read is refused: it would give the CA key away with the backup.
 */
export function readPassphrase(file: string | undefined, env: NodeJS.ProcessEnv, forNewBackup: boolean): string {
  let p: string | undefined;
  if (file !== undefined) {
    let text: string;
    try {
      if ((statSync(file).mode & 0o077) !== 0) {
        throw new FerryError(ErrorCode.InvalidArgument, `the passphrase file ${file} can be read by others`, `make it private: chmod 600 ${file}`);
      }
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if (err instanceof FerryError) throw err;
      throw new FerryError(ErrorCode.InvalidArgument, `cannot read the passphrase file ${file}: ${(err as Error).message}`, 'give a readable file with --passphrase-file');
    }
    p = text.split(/\r?\n/)[0];
  } else {
    p = env[PASSPHRASE_ENV];
  }
  if (!p) {
    throw new FerryError(ErrorCode.InvalidArgument, file !== undefined ? `the passphrase file ${file} is empty` : 'no backup passphrase given',
      `give it in a file (--passphrase-file FILE, mode 0600) or in ${PASSPHRASE_ENV}; never on the command line`);
  }
  if (forNewBackup && p.length < MIN_PASSPHRASE) {
    throw new FerryError(ErrorCode.InvalidArgument, `the backup passphrase is ${p.length} characters; at least ${MIN_PASSPHRASE} are needed`,
      'it is all that protects the CA key in the backup: use a long random one, e.g. `openssl rand -base64 24 > passphrase`');
  }
  return p;
}
