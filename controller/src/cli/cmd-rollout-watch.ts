import { fit } from '../../../common/src/table.js';
import { ErrorCode, type FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { RolloutEvent, RolloutSnapshot, RolloutUpdate } from '../../../common/src/gen/ferry/v1/rollouts.js';
import { writeRecord } from '../../../common/src/cli/json-records.js';
import type { Rollouts } from './cmd-rollout-client.js';
import { eventLine, renderFrame, showText } from './cmd-rollout-render.js';
import { rolloutEventRecord, rolloutResultRecord } from './records-rollout.js';

/** How long `watch` keeps reconnecting to a controller that went away (a restart, a dropped link) before it gives up. */
export const RECONNECT_FOR_MS = 10 * 60_000;

/** The exit code for a rollout's outcome: 0 succeeded, 1 failed or aborted. */
export function outcomeCode(state: string): number {
  return state === 'succeeded' ? Exit.Ok : Exit.Failure;
}

/**
 * Follows a rollout until it finishes. On a terminal: the frame (waves with
 * bars, counts, failing hosts with their last lines, running hosts, ETA)
 * redrawn in place. Otherwise: one plain line per event. With --json: one
 * `event` record per event, then one `result` record (docs/json.md,
 * "rollout.event", "rollout.result"). Exit code: the outcome.
 */
export async function watchRollout(ro: Rollouts, id: string, opts: { json: boolean; exitOnPause: boolean; reconnectForMs?: number }, out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const reconnectForMs = opts.reconnectForMs ?? RECONNECT_FOR_MS;
  const tty = Boolean(out.isTTY) && !opts.json;
  let last: RolloutSnapshot | undefined;
  let drawn = 0;
  const draw = (s: RolloutSnapshot) => {
    // One terminal row per line, so the frame can be redrawn in place: cut at the width.
    // One column stays free so the cursor never wraps to a new row.
    const width = Math.max(40, (out.columns || 120) - 1);
    // One row stays free for the cursor: a frame taller than the screen would scroll its header away.
    const lines = renderFrame(s, Date.now(), true, width, Math.max(8, (out.rows || 48) - 1)).map((l) => fit(l, width));
    // Move to the start of the previous frame and clear below it, then draw.
    out.write(`${drawn ? `\x1b[${drawn}F\x1b[J` : ''}${lines.join('\n')}\n`);
    drawn = lines.length;
  };
  let pausedExit = false;
  let afterSeq = 0;
  const follow = () => new Promise<void>((resolve, reject) => {
    const stream = ro.client.watch({ id, afterSeq });
    stream.on('data', (u: RolloutUpdate) => {
      if (u.update?.$case === 'snapshot') {
        const first = !last;
        last = u.update.value;
        if (tty) draw(last);
        else if (first && !opts.json) out.write(`${renderFrame(last).join('\n')}\n`);
        const i = last.info!;
        if (opts.exitOnPause && (i.paused || i.state === 'awaiting-approval')) {
          pausedExit = true;
          stream.cancel();
          resolve();
        }
      } else if (u.update?.$case === 'event') {
        const e: RolloutEvent = u.update.value;
        afterSeq = Math.max(afterSeq, Number(e.seq));
        if (opts.json) writeRecord(rolloutEventRecord(e), out);
        else if (!tty) out.write(eventLine(e) + '\n');
      }
    });
    stream.on('error', (e) => {
      if (pausedExit) return;
      reject(ro.explain(e));
    });
    stream.on('end', () => resolve());
  });
  // A controller restart or a dropped link does not end the watch: it
  // reconnects and asks only for the events after the last one it showed.
  let downSince = 0;
  for (;;) {
    try {
      await follow();
      break;
    } catch (err) {
      const fe = err as FerryError;
      // A controller shutting down cancels its streams (CANCELLED); this side
      // only cancels for --exit-on-pause, which resolves instead.
      const transient = ([ErrorCode.Unavailable, ErrorCode.Unreachable, ErrorCode.DeadlineExceeded, ErrorCode.Cancelled] as string[]).includes(fe.code);
      downSince ||= Date.now();
      if (!transient || Date.now() - downSince > reconnectForMs) throw err;
      process.stderr.write(`watch: the controller is unreachable (${fe.message.split('\n')[0]}); reconnecting…\n`);
      drawn = 0; // the note broke the frame: draw the next one below it
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
  }
  if (!last) return Exit.Failure;
  const i = last.info!;
  if (opts.json) {
    writeRecord(rolloutResultRecord(i), out);
  } else if (!tty) {
    out.write(`\n${showText(last)}`);
  }
  if (pausedExit) return Exit.Paused;
  return outcomeCode(i.state);
}
