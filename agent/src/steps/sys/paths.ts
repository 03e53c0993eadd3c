/**
 * Turning plan paths into host files: bundle-relative paths (with `*`, `?` globs, as the
 * seeds' `for tar in images/*.tar`) and absolute host paths under the context's root. A
 * pattern that matches nothing is an error, never an empty loop: that is how "we forgot the
 * images" shows up on the host instead of as a half-installed cluster.
 */
import { ErrorCode } from '../../../../common/src/errors.js';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import type { StepContext } from '../step.js';
import { StepError } from '../step-error.js';

/** A resolved input file: the host path to open and how the plan named it (for messages). */
export interface ResolvedFile {
  path: string;
  label: string;
}

const hasGlob = (s: string) => /[*?[]/.test(s);

/** Matches one path segment against a glob segment (`*`, `?`, `[abc]`); dot files only by an explicit dot. */
export function segmentMatcher(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = glob.indexOf(']', i + 1);
      if (close < 0) { re += '\\['; continue; }
      const body = glob.slice(i + 1, close).replace(/^!/, '^').replace(/\\/g, '\\\\');
      re += `[${body}]`;
      i = close;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${glob.startsWith('.') ? '' : '(?!\\.)'}${re}$`);
}

/**
 * Expands a relative pattern under `base`: segment by segment, so `images/*.tar` lists one
 * directory. Returns sorted paths relative to base; plain paths are returned if they exist.
 */
export function expandGlob(base: string, pattern: string): string[] {
  const segs = posix.normalize(pattern).split('/').filter((s) => s && s !== '.');
  let found = [''];
  for (const seg of segs) {
    const next: string[] = [];
    for (const dir of found) {
      if (!hasGlob(seg)) {
        const p = dir ? `${dir}/${seg}` : seg;
        if (existsSync(join(base, p))) next.push(p);
        continue;
      }
      const re = segmentMatcher(seg);
      let names: string[] = [];
      try { names = readdirSync(join(base, dir)); } catch { /* not a directory: no match */ }
      for (const n of names) if (re.test(n)) next.push(dir ? `${dir}/${n}` : n);
    }
    found = next;
  }
  return found.filter((p) => p !== '').sort();
}

/**
 * Files for `bundle` + relative patterns. Each must match at least one regular file, and no
 * match may lead out of the bundle directory through a symlink.
 */
export function resolveBundleFiles(ctx: Pick<StepContext, 'bundleDir'>, bundle: string, patterns: readonly string[], what: string): ResolvedFile[] {
  let dir: string;
  try {
    dir = ctx.bundleDir(bundle);
  } catch (err) {
    throw new StepError(ErrorCode.StepInputMissing, `bundle "${bundle}" is not staged on this host: ${(err as Error).message}`,
      'check the plan\'s bundles list and that the bundle was pushed and fetched (ferry bundle ls)');
  }
  const realDir = realpathSync(dir);
  const out: ResolvedFile[] = [];
  for (const pat of patterns) {
    const matches = expandGlob(dir, pat);
    const files = matches.filter((m) => {
      const full = join(dir, m);
      const real = realpathSync(full);
      if (real !== realDir && !real.startsWith(realDir + sep)) {
        throw new StepError(ErrorCode.StepInputMissing, `${what} "${m}" in bundle "${bundle}" points outside the bundle (${relative(realDir, real)})`, 'rebuild the bundle without links that leave it');
      }
      return statSync(full).isFile() || statSync(full).isDirectory();
    });
    if (files.length === 0) {
      throw new StepError(ErrorCode.StepInputMissing, `${what} "${pat}" matched no file in bundle "${bundle}" (${dir})`,
        'check the path against `ferry bundle show`, or add the missing files to the bundle and push it again');
    }
    for (const m of files) out.push({ path: join(dir, m), label: `${bundle}:${m}` });
  }
  return out;
}

/** Files for absolute host patterns (globs allowed), under ctx.root; each must match. */
export function resolveHostFiles(root: string, patterns: readonly string[], what: string): ResolvedFile[] {
  const out: ResolvedFile[] = [];
  for (const pat of patterns) {
    const matches = expandGlob(root, pat.replace(/^\/+/, ''));
    if (matches.length === 0) {
      throw new StepError(ErrorCode.StepInputMissing, `${what} "${pat}" matched no file on this host`, 'copy the file to the host first (file.install) or fix the path');
    }
    for (const m of matches) out.push({ path: join(root, m), label: `/${m}` });
  }
  return out;
}
