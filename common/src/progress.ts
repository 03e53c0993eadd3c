import { bytes, fit } from './table.js';
import { formatDuration } from './duration.js';

/**
 * Progress for long transfers: a redrawn bar on a terminal, plain lines
 * (every 10% or 5 s) when output goes to a file or pipe, nothing with --json.
 */
export class ProgressBar {
  private readonly started = Date.now();
  private lastDraw = 0;
  private lastLinePct = -1;
  private lastLineAt = 0;
  private readonly tty: boolean;

  constructor(private readonly label: string, private readonly total: number, private readonly out: NodeJS.WriteStream = process.stderr, private readonly enabled = true) {
    this.tty = Boolean(out.isTTY);
  }

  update(done: number, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    const pct = this.total > 0 ? Math.min(100, Math.floor((done / this.total) * 100)) : 100;
    const secs = (now - this.started) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const eta = rate > 0 && done < this.total ? formatDuration(((this.total - done) / rate) * 1000) : '-';
    const text = `${bytes(done)}/${bytes(this.total)} ${bytes(rate)}/s ETA ${eta}`;
    if (this.tty) {
      if (!force && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      this.out.write(`\r${barLine(this.label, pct, text, this.out.columns || 80)}\x1b[K`);
    } else if (force || pct >= this.lastLinePct + 10 || now - this.lastLineAt > 5000) {
      this.lastLinePct = pct;
      this.lastLineAt = now;
      this.out.write(`${this.label}: ${pct}% ${text}\n`);
    }
  }

  finish(done: number, note = ''): void {
    if (!this.enabled) return;
    this.update(done, true);
    // The note goes on a row of its own: appended to a full-width bar it would wrap.
    if (this.tty) this.out.write(note ? `\n${fit(`  ${note}`, (this.out.columns || 80) - 1)}\n` : '\n');
    else if (note) this.out.write(`${this.label}: ${note}\n`);
  }
}

/**
 * One progress row that fits `columns` (one column is left free, so the
 * cursor never wraps): the bar shrinks from 30 cells (down to what is left),
 * then the label is cut, then the rate and ETA; the percentage always shows.
 */
export function barLine(label: string, pct: number, text: string, columns: number): string {
  const room = Math.max(20, columns - 1);
  const pctText = ` ${String(pct).padStart(3)}%`;
  const labelMin = Math.min(label.length, 6);
  const maxCells = Math.max(1, room - pctText.length - 3 - labelMin);
  const cells = Math.max(Math.min(10, maxCells), Math.min(30, maxCells, room - label.length - pctText.length - text.length - 4));
  const fill = Math.round((pct / 100) * cells);
  const bar = ` [${'#'.repeat(fill)}${'.'.repeat(cells - fill)}]`;
  let avail = room - bar.length - pctText.length;
  const head = fit(label, Math.min(label.length, Math.max(labelMin, avail - text.length - 1)));
  avail -= head.length;
  return `${head}${bar}${pctText}${avail > 4 ? fit(` ${text}`, avail) : ''}`;
}
