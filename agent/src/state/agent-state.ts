import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { ensurePrivateDir, writeFileAtomic } from '../../../common/src/secure-fs.js';
import type { Labels } from '../../../common/src/labels.js';

/** What `join` leaves on the host, besides the key and certificates. */
export interface Identity {
  agentId: string;
  addresses: string[];
  caPin: string;
  labels: Labels;
  operatorKeys: string[];
  enrolledAtMs: number;
  /** The name given with `join --hostname`, reported instead of the kernel's host name. */
  hostname?: string;
}

/** Live status written by `ferry-agent run` for `ferry-agent status`. */
export interface RunStatus {
  pid: number;
  state: string;
  controller: string;
  sinceMs: number;
  lastError: string;
  updatedMs: number;
}

/**
 * The agent's state directory (mode 0700). Every file in it is 0600: the key
 * never leaves the host, and nobody else on the host may read or swap it.
 */
export class AgentState {
  constructor(readonly dir: string) {}

  get keyPath(): string { return join(this.dir, 'agent.key'); }
  get certPath(): string { return join(this.dir, 'agent.crt'); }
  get caPath(): string { return join(this.dir, 'ca.crt'); }
  get identityPath(): string { return join(this.dir, 'identity.json'); }
  get statusPath(): string { return join(this.dir, 'status.json'); }
  get pendingKeyPath(): string { return join(this.dir, 'join-pending.json'); }

  isEnrolled(): boolean {
    return existsSync(this.identityPath) && existsSync(this.keyPath) && existsSync(this.certPath) && existsSync(this.caPath);
  }

  /** Loads everything `run` needs, or says why the host is not enrolled. */
  load(): { identity: Identity; keyPem: string; certPem: string; caPem: string } {
    if (!this.isEnrolled()) {
      throw new FerryError(ErrorCode.NotEnrolled, `this host is not enrolled (no identity in ${this.dir})`,
        'run `ferry-agent join <join-string>` with the join string from your fleet operator');
    }
    try {
      return {
        identity: JSON.parse(readFileSync(this.identityPath, 'utf8')) as Identity,
        keyPem: readFileSync(this.keyPath, 'utf8'),
        certPem: readFileSync(this.certPath, 'utf8'),
        caPem: readFileSync(this.caPath, 'utf8'),
      };
    } catch (err) {
      throw new FerryError(ErrorCode.NotEnrolled, `the agent state in ${this.dir} is unreadable: ${(err as Error).message}`,
        'enroll again with `ferry-agent join --force <join-string>`');
    }
  }

  /** Writes a new identity; the key first, the identity file last, so a half-done join reads as not enrolled. */
  saveEnrollment(keyPem: string, certPem: string, caPem: string, identity: Identity): void {
    ensurePrivateDir(this.dir);
    rmSync(this.identityPath, { force: true });
    writeFileAtomic(this.keyPath, keyPem, 0o600);
    writeFileAtomic(this.certPath, certPem, 0o600);
    writeFileAtomic(this.caPath, caPem, 0o600);
    writeFileAtomic(this.identityPath, JSON.stringify(identity, null, 2) + '\n', 0o600);
    rmSync(this.pendingKeyPath, { force: true });
  }

  /**
   * The key of a join that has not finished, for the token it was sent with:
   * a join run again after its answer was lost presents the same key, so the
   * controller recognises the enrollment it already recorded.
   */
  loadPendingKey(tokenId: string): string | undefined {
    try {
      const p = JSON.parse(readFileSync(this.pendingKeyPath, 'utf8')) as { tokenId: string; keyPem: string };
      return p.tokenId === tokenId ? p.keyPem : undefined;
    } catch {
      return undefined;
    }
  }

  savePendingKey(tokenId: string, keyPem: string): void {
    ensurePrivateDir(this.dir);
    writeFileAtomic(this.pendingKeyPath, JSON.stringify({ tokenId, keyPem }) + '\n', 0o600);
  }

  /** Replaces the certificate after renewal; the key stays (it never leaves the host). */
  saveCert(certPem: string): void {
    writeFileAtomic(this.certPath, certPem, 0o600);
  }

  writeStatus(s: RunStatus): void {
    try {
      writeFileAtomic(this.statusPath, JSON.stringify(s) + '\n', 0o600);
    } catch {
      // status is advisory; a full disk must not stop the session
    }
  }

  readStatus(): RunStatus | undefined {
    try {
      return JSON.parse(readFileSync(this.statusPath, 'utf8')) as RunStatus;
    } catch {
      return undefined;
    }
  }
}
