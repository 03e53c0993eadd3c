import { ErrorCode, FerryError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses durations like `30s`, `2h`, `1h30m`, `500ms` into milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const s = text.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
  let total = 0;
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) {
    if (m.index !== consumed) break;
    total += Number(m[1]) * UNITS[m[2]!]!;
    consumed = m.index + m[0].length;
  }
  if (consumed === 0 || consumed !== s.length) {
    throw new FerryError(ErrorCode.InvalidArgument, `${what} "${text}" is not a duration`, 'write durations like 500ms, 30s, 5m, 2h or 1h30m');
  }
  return Math.round(total);
}

/**
 * Formats milliseconds compactly for people: 950ms, 12.3s, 4m10s, 2m, 2h5m, 1h.
 * A zero last unit is left out, so a configured `2m` reads back as `2m`.
 */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const [big, unit, small, smallUnit] = ms < 3_600_000 ? [Math.floor(ms / 60_000), 'm', Math.round((ms % 60_000) / 1000), 's'] : [Math.floor(ms / 3_600_000), 'h', Math.round((ms % 3_600_000) / 60_000), 'm'];
  return small === 0 ? `${big}${unit}` : `${big}${unit}${small}${smallUnit}`;
}
