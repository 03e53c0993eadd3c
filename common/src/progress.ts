import { bytes, } from './table.js';
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
      const width = 30;
      const fill = Math.round((pct / 100) * width);
      this.out.write(`\r${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(pct).padStart(3)}% ${text}\x1b[K`);
    } else if (force || pct >= this.lastLinePct + 10 || now - this.lastLineAt > 5000) {
      this.lastLinePct = pct;
      this.lastLineAt = now;
      this.out.write(`${this.label}: ${pct}% ${text}\n`);
    }
  }

  finish(done: number, note = ''): void {
    if (!this.enabled) return;
    this.update(done, true);
    if (this.tty) this.out.write(note ? ` ${note}\n` : '\n');
    else if (note) this.out.write(`${this.label}: ${note}\n`);
  }
}
