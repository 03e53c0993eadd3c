/**
 * The `Range` header, for blobs and files. One range is served (`bytes=A-B`,
 * `bytes=A-`, `bytes=-N`). A header that is not a single well-formed byte
 * range (several ranges, another unit, garbage) is ignored and the whole
 * body is sent with 200, which RFC 9110 §14.2 allows: no client gets wrong
 * bytes, and containerd's resume copes with a 200 by discarding what it
 * already has. A well-formed range that starts past the end is 416.
 */

/** Inclusive byte positions. */
export interface ByteRange {
  start: number;
  end: number;
}

/** What to send: the whole body, one range, or 416. */
export type RangeDecision = { kind: 'full' } | { kind: 'partial'; range: ByteRange } | { kind: 'unsatisfiable' };

const SINGLE = /^bytes=(\d{0,15})-(\d{0,15})$/;

/** Decides how to answer `header` for a body of `size` bytes. */
export function decideRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'full' };
  const m = SINGLE.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'full' };
  if (m[1] === '') {
    // Suffix: the last N bytes.
    const n = Number(m[2]);
    if (n === 0) return { kind: 'unsatisfiable' };
    return size === 0 ? { kind: 'unsatisfiable' } : { kind: 'partial', range: { start: Math.max(0, size - n), end: size - 1 } };
  }
  const start = Number(m[1]);
  if (m[2] !== '' && Number(m[2]) < start) return { kind: 'full' }; // syntactically invalid: ignored
  if (start >= size) return { kind: 'unsatisfiable' };
  const last = m[2] === '' ? size - 1 : Number(m[2]);
  return { kind: 'partial', range: { start, end: Math.min(last, size - 1) } };
}
