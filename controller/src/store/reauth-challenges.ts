import { createHash, randomBytes } from 'node:crypto';
import type { Db } from './db.js';

/** How long a challenge may be answered. Long enough for a slow link, short enough that a captured one is stale. */
export const CHALLENGE_TTL_MS = 60_000;

function hashNonce(nonce: Uint8Array): string {
  return createHash('sha256').update(nonce).digest('hex');
}

/**
 * Single-use re-authentication challenges. Kept in the store, not in
 * memory, so a challenge issued by one controller can be answered to
 * another one on the same store, and a restart in between loses nothing.
 * Only a hash of each nonce is kept: a copy of the store cannot answer
 * challenges that are still open.
 */
export class ReauthChallenges {
  constructor(private readonly db: Db) {}

  /** A fresh nonce for `agentId`, answerable once before the returned expiry. */
  async issue(agentId: string, now: number): Promise<{ nonce: Buffer; expiresAtMs: number }> {
    const nonce = randomBytes(32);
    const expiresAtMs = now + CHALLENGE_TTL_MS;
    // Expired challenges are swept as new ones are made, which bounds the table by the issue rate.
    await this.db.run('DELETE FROM reauth_challenges WHERE expires_at <= ?', [now]);
    await this.db.run('INSERT INTO reauth_challenges (nonce_hash, agent_id, expires_at) VALUES (?, ?, ?)',
      [hashNonce(nonce), agentId, expiresAtMs]);
    return { nonce, expiresAtMs };
  }

  /**
   * Marks the challenge used and says whether it was valid for `agentId`:
   * issued here, to that agent, not expired, never used before. One
   * conditional update does both, so two concurrent answers cannot both win.
   */
  async consume(agentId: string, nonce: Uint8Array, now: number): Promise<boolean> {
    const r = await this.db.run(
      'UPDATE reauth_challenges SET used_at = ? WHERE nonce_hash = ? AND agent_id = ? AND used_at IS NULL AND expires_at > ?',
      [now, hashNonce(nonce), agentId, now],
    );
    return r.changes === 1;
  }
}
