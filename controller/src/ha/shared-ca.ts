import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { spkiPin } from '../../../common/src/pki.js';
import { ensurePrivateDir, writeFileAtomic } from '../../../common/src/secure-fs.js';
import { CertificateAuthority } from '../pki/ca.js';
import type { Db } from '../store/db.js';

/**
 * One CA for every replica on a shared store. The CA's certificate and key
 * live in the store (table shared_ca, the key as PEM, not encrypted: whoever
 * can read the Ferry database can already change every record the
 * controllers trust, so the database and its backups are protected like the
 * CA key; docs/ha.md). Each replica keeps a copy in DATA/pki, which the
 * existing CA code loads, and issues its own server certificate from it.
 *
 * The first replica to start puts its CA in the store (a data directory
 * that already had one, e.g. a SQLite controller moved to PostgreSQL, keeps
 * its CA and so its enrolled agents); replicas starting at the same time
 * agree on whichever row was inserted first. A data directory holding a
 * different CA than the store is refused rather than overwritten.
 */
export async function loadSharedCa(db: Db, pki: string): Promise<{ ca: CertificateAuthority; created: boolean }> {
  ensurePrivateDir(pki);
  const certPath = join(pki, 'ca.crt');
  const keyPath = join(pki, 'ca.key');
  const stored = () => db.get<{ cert_pem: string; key_pem: string }>('SELECT cert_pem, key_pem FROM shared_ca WHERE id = 1');
  let row = await stored();
  const hadLocal = existsSync(certPath);
  if (!row) {
    const { ca } = await CertificateAuthority.loadOrCreate(pki);
    await db.run('INSERT INTO shared_ca (id, cert_pem, key_pem, created_at) VALUES (1, ?, ?, ?) ON CONFLICT DO NOTHING',
      [ca.certPem, readFileSync(keyPath, 'utf8'), Date.now()]);
    row = (await stored())!;
    if (row.cert_pem === ca.certPem) return { ca, created: !hadLocal };
  }
  // Compared as PEM text without surrounding whitespace: the CA code writes its file without the final newline it keeps in memory (and stores).
  if (hadLocal && readFileSync(certPath, 'utf8').trim() !== row.cert_pem.trim()) {
    throw new FerryError(ErrorCode.Config,
      `${pki} holds a CA (${spkiPin(readFileSync(certPath, 'utf8'))}) other than the one the store's replicas share (${spkiPin(row.cert_pem)})`,
      'this data directory belonged to another controller: give this replica an empty --data directory, or move its pki/ aside');
  }
  writeFileAtomic(keyPath, row.key_pem, 0o600);
  writeFileAtomic(certPath, row.cert_pem, 0o644);
  const { ca } = await CertificateAuthority.loadOrCreate(pki);
  return { ca, created: false };
}
