import { randomBytes } from 'node:crypto';
import type { Db } from './db.js';

/** Append-only record of operator actions: who did what to which object. */
export class AuditLog {
  constructor(private readonly db: Db) {}

  async record(actor: string, action: string, subject: string, detail: unknown = {}, at = Date.now()): Promise<void> {
    // Time-ordered ids without AUTOINCREMENT, which PostgreSQL spells differently.
    const id = `${at.toString(36).padStart(9, '0')}-${randomBytes(4).toString('hex')}`;
    await this.db.run('INSERT INTO audit (id, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)',
      [id, at, actor, action, subject, JSON.stringify(detail)]);
  }

  async list(limit = 100): Promise<Array<{ at: number; actor: string; action: string; subject: string; detail: string }>> {
    return this.db.all('SELECT at, actor, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?', [limit]);
  }
}
