/**
 * Test helper: a StepContext rooted in a fresh temp directory, recording
 * output lines, with an AbortController for cancellation tests.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { StepContext } from '../../../agent/src/steps/step.js';

export interface TestContext {
  ctx: StepContext;
  /** The temp directory that stands for the host's "/". */
  root: string;
  /** Every ctx.output line, in order. */
  lines: Array<{ line: string; stream: 'stdout' | 'stderr' }>;
  abort: AbortController;
  /** Absolute host path → path under root. */
  at(hostPath: string): string;
  /** Writes a host file (creating directories). */
  put(hostPath: string, content: string | Buffer, mode?: number): string;
  read(hostPath: string): string;
  cleanup(): void;
}

export interface ContextOptions {
  check?: boolean;
  params?: Record<string, unknown>;
  facts?: Record<string, unknown>;
  labels?: Record<string, string>;
  /** Bundle alias → directory of its staged files. */
  bundles?: Record<string, string>;
}

export function makeContext(opts: ContextOptions = {}): TestContext {
  const root = mkdtempSync(join(tmpdir(), 'ferry-steps-'));
  const lines: TestContext['lines'] = [];
  const abort = new AbortController();
  const at = (p: string) => join(root, p);
  const ctx: StepContext = {
    check: opts.check ?? false,
    params: opts.params ?? {},
    facts: opts.facts ?? {},
    labels: opts.labels ?? {},
    bundleDir(as) {
      const d = opts.bundles?.[as];
      if (!d) throw new Error(`bundle "${as}" is not staged on this host`);
      return d;
    },
    stateDir: join(root, 'var/lib/ferry'),
    output(line, stream = 'stdout') { lines.push({ line, stream }); },
    signal: abort.signal,
    root,
  };
  return {
    ctx, root, lines, abort, at,
    put(p, content, mode = 0o644) {
      mkdirSync(dirname(at(p)), { recursive: true });
      writeFileSync(at(p), content);
      chmodSync(at(p), mode);
      return at(p);
    },
    read: (p) => readFileSync(at(p), 'utf8'),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** A copy of a context with some fields changed (e.g. check mode) sharing root and output. */
export function withCtx(t: TestContext, over: Partial<StepContext>): StepContext {
  return { ...t.ctx, ...over };
}
