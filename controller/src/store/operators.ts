import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Db } from './db.js';

/**
 * What an operator certificate lets its holder do: `viewer` reads only,
 * `admin` may also change things. The local admin socket is always admin.
 */
export type OperatorRole = 'viewer' | 'admin';

export const OPERATOR_ROLES: readonly OperatorRole[] = ['viewer', 'admin'];

/** Parses a role name from a flag or request; empty means `viewer` (least privilege). */
export function parseOperatorRole(s: string, where = '--role'): OperatorRole {
  if (s === '') return 'viewer';
  if ((OPERATOR_ROLES as readonly string[]).includes(s)) return s as OperatorRole;
  throw new FerryError(ErrorCode.InvalidArgument, `${where} "${s}" is not a role`, `use ${OPERATOR_ROLES.join(' or ')}`);
}

/** One issued operator certificate, as recorded at issue. */
export interface OperatorRecord {
  name: string;
  role: OperatorRole;
  serial: string;
  issuedAt: number;
  notAfter: number;
  revokedAt: number | null;
}

interface Row { name: string; role: string; cert_serial: string; issued_at: number; not_after: number; revoked_at: number | null }

const COLUMNS = 'name, role, cert_serial, issued_at, not_after, revoked_at';

function fromRow(r: Row): OperatorRecord {
  return {
    name: r.name, role: r.role === 'admin' ? 'admin' : 'viewer', serial: r.cert_serial,
    issuedAt: Number(r.issued_at), notAfter: Number(r.not_after), revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  };
}

/** The certificate facts the TLS layer proved, as `authenticatePeer` returns them. */
export interface PresentedCert {
  id: string;
  serial: string;
  /** The role the certificate itself names ('' for certificates issued before roles existed). */
  operatorRole: string;
}

/** Operator certificates: recorded at issue, listed, revoked, and checked on every remote call. */
export class OperatorStore {
  constructor(private readonly db: Db) {}

  async record(r: Omit<OperatorRecord, 'revokedAt'>): Promise<OperatorRecord> {
    await this.db.run('INSERT INTO operators (name, role, cert_serial, issued_at, not_after) VALUES (?, ?, ?, ?, ?)',
      [r.name, r.role, r.serial, r.issuedAt, r.notAfter]);
    return { ...r, revokedAt: null };
  }

  /** Every certificate issued, newest first. */
  async list(): Promise<OperatorRecord[]> {
    return (await this.db.all<Row>(`SELECT ${COLUMNS} FROM operators ORDER BY issued_at DESC, cert_serial`)).map(fromRow);
  }

  /**
   * Revokes the certificate with serial `nameOrSerial`, or else every live
   * certificate of that operator name. Returns what was revoked now (empty
   * when all were revoked already); NOT_FOUND when nothing has that name or serial.
   */
  async revoke(nameOrSerial: string, now = Date.now()): Promise<OperatorRecord[]> {
    const key = nameOrSerial.trim().toLowerCase().replace(/:/g, '');
    const bySerial = await this.db.get<Row>(`SELECT ${COLUMNS} FROM operators WHERE cert_serial = ?`, [key]);
    const rows = bySerial ? [bySerial] : await this.db.all<Row>(`SELECT ${COLUMNS} FROM operators WHERE name = ?`, [nameOrSerial]);
    if (rows.length === 0) {
      throw new FerryError(ErrorCode.NotFound, `no operator certificate with name or serial "${nameOrSerial}"`, 'list them with `ferry operator ls`');
    }
    const live = rows.filter((r) => r.revoked_at === null);
    for (const r of live) await this.db.run('UPDATE operators SET revoked_at = ? WHERE cert_serial = ? AND revoked_at IS NULL', [now, r.cert_serial]);
    return live.map((r) => fromRow({ ...r, revoked_at: now }));
  }

  /**
   * The record of a presented certificate, if it may still be used: known to
   * this controller, not revoked, and naming the same operator and role as
   * recorded. Throws UNAUTHENTICATED otherwise.
   */
  async authorize(cert: PresentedCert): Promise<OperatorRecord> {
    const row = await this.db.get<Row>(`SELECT ${COLUMNS} FROM operators WHERE cert_serial = ?`, [cert.serial]);
    const hint = 'ask an admin for a new certificate: `ferry operator cert NAME --role viewer|admin`';
    if (!row) {
      throw new FerryError(ErrorCode.Unauthenticated, `operator certificate ${cert.serial} (${cert.id}) is not on this controller's record of issued certificates`, hint);
    }
    const r = fromRow(row);
    if (r.revokedAt !== null) {
      throw new FerryError(ErrorCode.Unauthenticated, `operator certificate ${r.serial} of ${r.name} was revoked at ${new Date(r.revokedAt).toISOString()}`, hint);
    }
    if (r.name !== cert.id || (cert.operatorRole !== '' && cert.operatorRole !== r.role)) {
      throw new FerryError(ErrorCode.Unauthenticated,
        `operator certificate ${r.serial} names ${cert.id}${cert.operatorRole ? ` (${cert.operatorRole})` : ''} but was issued to ${r.name} (${r.role})`, hint);
    }
    return r;
  }
}
