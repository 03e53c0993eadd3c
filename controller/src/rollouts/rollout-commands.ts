/**
 * Rollout changes asked through a replica that is not the scheduler. The
 * scheduler alone changes rollouts (one writer, fenced by its lease), so a
 * change asked elsewhere is a row in `rollout_commands`: the replica asked
 * records it and sends a wake-up hint (PostgreSQL NOTIFY); the scheduler
 * looks for pending rows at once on the hint and every `pollMs` anyway (a
 * hint may be lost), applies each through the same functions as a change
 * asked of it directly (controls.ts: serialised with its own changes,
 * recorded as a rollout event, audited with who asked), and writes the
 * outcome to the row. The caller waits for that outcome, bounded: a row
 * nobody took within `waitMs` is withdrawn (it is then never applied) and the
 * caller told so; the row is removed once the caller has its answer.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { systemClock, type Clock, type Timer } from '../../../common/src/clock.js';
import type { Logger } from '../../../common/src/log.js';
import type { Db } from '../store/db.js';
import { PgDb } from '../store/pg-db.js';
import { abortRollout, approveRollout, pauseRollout, resumeRollout, retryRollout } from './controls.js';
import type { StoredRollout } from './rollout-store.js';
import type { RolloutScheduler } from './scheduler.js';

const CHANNEL = 'ferry_rollout_commands';
/** How long an answered row is kept when its caller went away before removing it. */
const KEEP_ANSWERED_MS = 3_600_000;

/** A rollout change as the operator asked for it. */
export type RolloutCommand =
  | { action: 'create'; spec: string; file: string }
  | { action: 'pause'; rolloutId: string; reason: string }
  | { action: 'resume'; rolloutId: string }
  | { action: 'abort'; rolloutId: string; reason: string; force: boolean }
  | { action: 'approve'; rolloutId: string }
  | { action: 'retry'; rolloutId: string; hosts: string[] };

interface Outcome { rolloutId?: string; error?: { code: ErrorCode; message: string; hint?: string } }

interface Row { id: string; rollout_id: string; action: string; args: string; created_by: string; state: string; result: string | null }

export interface RolloutCommandsOptions {
  /** The store as every replica writes it (commands are asked anywhere). */
  db: Db;
  /** The store as the scheduler writes it: taking a command is fenced by the lease. */
  fenced: Db;
  scheduler: RolloutScheduler;
  replicaId: string;
  log: Logger;
  clock?: Clock;
  /** How often the scheduler looks for commands without a hint (default 1 s). */
  pollMs?: number;
  /** How long a caller waits for the scheduler to take its command (default 20 s: over the default lease time, so a takeover fits). */
  waitMs?: number;
  /** How often a caller reads its command's row while it waits (default 100 ms). */
  checkMs?: number;
}

/** Applies commands on the scheduler's replica; records and awaits them on any replica. */
export class RolloutCommands {
  private readonly clock: Clock;
  private poller: Timer | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** When answered rows left behind were last removed (0: not yet since this replica started). */
  private cleaned = 0;

  constructor(private readonly o: RolloutCommandsOptions) {
    this.clock = o.clock ?? systemClock;
  }

  /**
   * This replica runs the scheduler now: looks for commands on every hint
   * and `pollMs`. Only the scheduler's replica listens, so the others hold
   * no connection for it.
   */
  startApplying(): void {
    if (this.poller) return;
    this.stopped = false;
    this.poller = this.clock.every(this.o.pollMs ?? 1000, () => this.wake());
    if (this.o.db instanceof PgDb) this.unlisten = this.o.db.listen(CHANNEL, () => this.wake());
    this.wake();
  }

  /** This replica no longer runs the scheduler (or stops): no more commands are taken here. */
  async stopApplying(): Promise<void> {
    this.stopped = true;
    this.poller?.cancel();
    this.poller = undefined;
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    await unlisten?.();
    await this.running;
  }

  /**
   * Records `cmd` asked by `who`, hints the scheduler and waits until it has
   * been applied there; returns the rollout as it then is, or throws the
   * scheduler's refusal as it would have been thrown to a direct call.
   */
  async submit(cmd: RolloutCommand, who: string): Promise<StoredRollout> {
    const id = `rc-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const waitMs = this.o.waitMs ?? 20_000;
    const now = this.clock.now();
    const { action, ...args } = cmd;
    await this.o.db.run(`INSERT INTO rollout_commands (id, rollout_id, action, args, created_by, created_at, expires_at, state)
      VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')`, [id, 'rolloutId' in cmd ? cmd.rolloutId : '', action, JSON.stringify(args), who, now, now + waitMs]);
    if (this.o.db instanceof PgDb) {
      await this.o.db.notify(CHANNEL).catch((err: Error) => this.o.log.warn({ err: err.message }, 'rollout command hint not sent; the scheduler\'s poll finds it'));
    }
    try {
      let row = await this.waitFor(id, (r) => r.state !== 'pending', waitMs);
      if (row?.state === 'pending') {
        const withdrawn = await this.o.db.run("UPDATE rollout_commands SET state = 'expired' WHERE id = ? AND state = 'pending'", [id]);
        if (withdrawn.changes > 0) {
          throw new FerryError(ErrorCode.Unavailable, `no rollout scheduler took the change within ${Math.round(waitMs / 1000)} s; it was withdrawn and not applied`,
            '`ferry controller status` shows whether a replica holds the scheduler lease; ask again once one does');
        }
        row = await this.load(id);
      }
      // Taken: applying a change takes one scheduling pass at most; wait as long again for its outcome.
      if (row?.state === 'applying') row = await this.waitFor(id, (r) => r.state === 'done', waitMs);
      if (row?.state !== 'done' || !row.result) {
        throw new FerryError(ErrorCode.Unavailable, 'the rollout scheduler took the change but did not confirm it in time (its replica may have stopped)',
          '`ferry rollout show` says whether it was applied');
      }
      const outcome = JSON.parse(row.result) as Outcome;
      if (outcome.error) throw new FerryError(outcome.error.code, outcome.error.message, outcome.error.hint);
      const stored = await this.o.scheduler.store.load(outcome.rolloutId ?? row.rollout_id);
      if (!stored) throw new FerryError(ErrorCode.NotFound, `no rollout ${outcome.rolloutId ?? row.rollout_id}`);
      return stored;
    } finally {
      // The row is the way there, not the record (that is the rollout's events and the audit log).
      await this.o.db.run("DELETE FROM rollout_commands WHERE id = ? AND state IN ('done', 'expired')", [id]).catch(() => undefined);
    }
  }

  /** One look for commands now (or right after the one running). */
  wake(): void {
    if (this.stopped || this.o.scheduler.isStopped()) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.applyPending()
      .catch((err: Error) => this.o.log.warn({ err: err.message }, 'applying rollout commands failed; the next poll tries again'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  /** Takes (fenced) and applies every pending command not past its caller's wait, oldest first. */
  private async applyPending(): Promise<void> {
    const now = this.clock.now();
    const rows = await this.o.db.all<Row>(
      "SELECT id, rollout_id, action, args, created_by, state, result FROM rollout_commands WHERE state = 'pending' AND expires_at > ? ORDER BY created_at, id", [now]);
    for (const r of rows) {
      if (this.o.scheduler.isStopped()) return;
      // Taken under the lease: a deposed scheduler cannot take it, and a caller that gave up (expired) has it back.
      const took = await this.o.fenced.run("UPDATE rollout_commands SET state = 'applying', applied_by = ? WHERE id = ? AND state = 'pending'", [this.o.replicaId, r.id]);
      if (took.changes === 0) continue;
      const outcome = await this.apply(r);
      await this.o.fenced.run("UPDATE rollout_commands SET state = 'done', result = ?, applied_at = ? WHERE id = ?", [JSON.stringify(outcome), this.clock.now(), r.id]);
      this.o.log.info({ command: r.id, action: r.action, rollout: outcome.rolloutId ?? r.rollout_id, by: r.created_by, error: outcome.error?.message }, 'rollout change applied for another replica');
    }
    // Rows whose caller went away (its replica stopped) without removing them: looked for hourly, not on every poll.
    if (now - this.cleaned >= KEEP_ANSWERED_MS) {
      this.cleaned = now;
      await this.o.db.run("DELETE FROM rollout_commands WHERE state <> 'pending' AND created_at < ?", [now - KEEP_ANSWERED_MS]);
    }
  }

  private async apply(r: Row): Promise<Outcome> {
    const s = this.o.scheduler;
    const who = r.created_by;
    const a = JSON.parse(r.args) as Record<string, unknown>;
    const id = r.rollout_id;
    try {
      switch (r.action) {
        case 'create': return { rolloutId: (await s.create(String(a['spec']), String(a['file']), who)).model.id };
        case 'pause': await pauseRollout(s, id, who, String(a['reason'] ?? '')); break;
        case 'resume': await resumeRollout(s, id, who); break;
        case 'abort': await abortRollout(s, id, who, String(a['reason'] ?? ''), Boolean(a['force'])); break;
        case 'approve': await approveRollout(s, id, who); break;
        case 'retry': await retryRollout(s, id, who, (a['hosts'] as string[] | undefined) ?? []); break;
        default: return { error: { code: ErrorCode.InvalidArgument, message: `unknown rollout change ${JSON.stringify(r.action)} (a newer replica asked?)` } };
      }
      return { rolloutId: id };
    } catch (err) {
      if (err instanceof FerryError) return { error: { code: err.code, message: err.message, hint: err.hint } };
      this.o.log.error({ err, command: r.id }, 'a rollout change failed');
      return { error: { code: ErrorCode.Internal, message: `the scheduler could not apply the change: ${(err as Error).message}` } };
    }
  }

  private async load(id: string): Promise<Row | undefined> {
    return this.o.db.get<Row>('SELECT id, rollout_id, action, args, created_by, state, result FROM rollout_commands WHERE id = ?', [id]);
  }

  /** Reads the row every `checkMs` until `ok` holds or `ms` passed; returns the last read. */
  private async waitFor(id: string, ok: (r: Row) => boolean, ms: number): Promise<Row | undefined> {
    const until = this.clock.now() + ms;
    for (;;) {
      const row = await this.load(id);
      if (!row || ok(row) || this.clock.now() >= until) return row;
      await this.clock.sleep(Math.min(this.o.checkMs ?? 100, until - this.clock.now()));
    }
  }
}
