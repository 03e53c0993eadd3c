import { jobEventText } from '../jobs/job-history.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { RolloutLogLine, RolloutRequest, RolloutUpdate, RolloutsServer } from '../../../common/src/gen/ferry/v1/rollouts.js';
import type { ControllerContext } from './context.js';
import { operatorCalls, type OperatorCallOptions } from './operator-call.js';
import { abortRollout, approveRollout, pauseRollout, resumeRollout, retryRollout, settled } from '../rollouts/controls.js';
import type { RolloutEventRecord, StoredRollout } from '../rollouts/rollout-store.js';
import type { RolloutCommand } from '../rollouts/rollout-commands.js';
import type { RolloutScheduler } from '../rollouts/scheduler.js';
import { upgradeLogLines } from '../rollouts/upgrade-hosts.js';
import { UPGRADE_EVENT } from '../store/agent-upgrades.js';
import { eventMessage, rolloutInfo, snapshot } from '../rollouts/snapshot.js';

/** Snapshots during a watch are sent at most this often (events go out at once). */
const SNAPSHOT_EVERY_MS = 250;

async function find(s: RolloutScheduler, id: string): Promise<StoredRollout> {
  const r = s.get(id)?.stored ?? (await s.store.load(id));
  if (!r) throw new FerryError(ErrorCode.NotFound, `no rollout ${id}`, 'list rollouts with `ferry rollout ls`');
  return r;
}

/** The lines of `ferry rollout logs` of one stored job event. */
function logLines(attempt: number, hostJobId: string, e: { kind: string; body: string; at: number }): RolloutLogLine[] {
  // An agent-upgrade host's log is its upgrade reports (store/agent-upgrades.ts).
  if (e.kind === UPGRADE_EVENT) return upgradeLogLines(e.body).map((l) => ({ attempt, hostJobId, atMs: e.at, ...l }));
  const { text, stderr } = jobEventText(e.kind, e.body);
  return [{ attempt, hostJobId, atMs: e.at, kind: e.kind, stderr, text }];
}

/**
 * The Rollouts API. With `requireOperatorCert` (the TLS port) every call
 * must present an operator certificate; on the local Unix socket the
 * socket's file mode is the access control (as for Admin).
 */
export function rolloutsService(ctx: ControllerContext, s: RolloutScheduler, opts: OperatorCallOptions): RolloutsServer {
  const { unary, serverStream } = operatorCalls(ctx, opts, 'rollout');
  /**
   * A change is made by the scheduler: here when this replica runs it, else
   * recorded for the replica that does (rollouts/rollout-commands.ts) and
   * awaited. Without replicas (no commands) a stopped scheduler refuses.
   */
  const change = async (cmd: RolloutCommand, who: string, here: () => Promise<StoredRollout>) =>
    rolloutInfo(s.isStopped() && ctx.rolloutCommands ? await ctx.rolloutCommands.submit(cmd, who) : await here());

  return {
    create: unary(async (req, who) => change({ action: 'create', spec: req.spec, file: req.file || 'rollout.yaml' }, who,
      () => s.create(req.spec, req.file || 'rollout.yaml', who))),
    list: unary(async (req) => {
      const ids = await s.store.ids(req.limit || 50);
      return { rollouts: await Promise.all(ids.map(async (id) => rolloutInfo(await find(s, id)))) };
    }),
    get: unary(async (req) => snapshot(await find(s, req.id), s.store, ctx.sessions, s.clock.now())),
    pause: unary(async (req, who) => change({ action: 'pause', rolloutId: req.id, reason: req.reason }, who, () => pauseRollout(s, req.id, who, req.reason))),
    resume: unary(async (req, who) => change({ action: 'resume', rolloutId: req.id }, who, () => resumeRollout(s, req.id, who))),
    abort: unary(async (req, who) => change({ action: 'abort', rolloutId: req.id, reason: req.reason, force: req.force }, who,
      () => abortRollout(s, req.id, who, req.reason, req.force))),
    approve: unary(async (req, who) => change({ action: 'approve', rolloutId: req.id }, who, () => approveRollout(s, req.id, who))),
    retry: unary(async (req, who) => change({ action: 'retry', rolloutId: req.id, hosts: req.hosts }, who, () => retryRollout(s, req.id, who, req.hosts))),
    logs: unary(async (req) => {
      const r = await find(s, req.id);
      const h = r.model.hosts.find((x) => x.agentId === req.host || x.hostname === req.host);
      if (!h) throw new FerryError(ErrorCode.NotFound, `host ${req.host} is not a target of rollout ${req.id}`, `see \`ferry rollout show ${req.id}\``);
      const lines: RolloutLogLine[] = [];
      for (let attempt = 1; attempt <= h.attempt; attempt++) {
        if (req.attempt && req.attempt !== attempt) continue;
        const hostJobId = `${r.jobId}-${h.agentId}-${attempt}`;
        for (const e of await s.store.jobEvents(hostJobId)) lines.push(...logLines(attempt, hostJobId, e));
      }
      return { lines };
    }),
    watch: serverStream<RolloutRequest, RolloutUpdate>(async (call, { signal }) => {
      const id = call.request.id;
      // Settles when the rollout is over (resolve), the caller left (resolve) or something broke (reject).
      let finish!: (err?: unknown) => void;
      const done = new Promise<void>((resolve, reject) => { finish = (err) => (err === undefined ? resolve() : reject(err)); });
      signal.addEventListener('abort', () => finish());
      let dirty = false;
      const send = async () => {
        dirty = false;
        const r = await find(s, id);
        if (signal.aborted) return;
        call.write({ update: { $case: 'snapshot', value: await snapshot(r, s.store, ctx.sessions, s.clock.now()) } });
        if (!settled(r)) return;
        // The state can be stored before its event reaches this watch (published, or polled on another
        // replica): send the stored events the watch has not sent yet, so it never ends without `finished`.
        for (const ev of await s.store.events(id, lastSeq)) write(ev);
        finish();
      };
      // Live events are held back until the stored history is replayed, then deduplicated by seq.
      let replayed = false;
      let lastSeq = call.request.afterSeq;
      const held: RolloutEventRecord[] = [];
      const write = (ev: RolloutEventRecord) => {
        if (ev.seq <= lastSeq || signal.aborted) return;
        lastSeq = ev.seq;
        call.write({ update: { $case: 'event', value: eventMessage(ev) } });
      };
      const unsubscribe = s.subscribe((rid, ev) => {
        if (rid !== id || signal.aborted) return;
        if (ev) {
          if (replayed) write(ev);
          else held.push(ev);
        }
        dirty = true;
      });
      // On a replica that is not the scheduler nothing is published here: the
      // scheduler's events are read from the store instead (same seq, so a
      // replica elected mid-watch sends each event once).
      let polling = false;
      const poll = async () => {
        polling = true;
        try {
          for (const ev of await s.store.events(id, lastSeq)) {
            write(ev);
            dirty = true;
          }
        } finally {
          polling = false;
        }
      };
      const timer = setInterval(() => {
        if (signal.aborted) return;
        if (replayed && s.isStopped() && !polling) poll().then(() => (dirty ? send() : undefined)).catch(finish);
        else if (dirty) send().catch(finish);
      }, SNAPSHOT_EVERY_MS);
      try {
        const r = await find(s, id);
        call.write({ update: { $case: 'snapshot', value: await snapshot(r, s.store, ctx.sessions, s.clock.now()) } });
        for (const ev of await s.store.events(id, lastSeq)) write(ev);
        replayed = true;
        for (const ev of held.splice(0)) write(ev);
        if (settled(r)) await send();
        await done;
      } finally {
        clearInterval(timer);
        unsubscribe();
      }
    }),
  };
}
