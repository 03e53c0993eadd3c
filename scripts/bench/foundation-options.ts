/**
 * The foundation benchmark's command line (run.ts) and its goals: parsed
 * after suites.ts has picked the suite and rewritten the arguments, so this
 * module only exports; nothing runs when it is imported. Apart from run.ts
 * so that every phase of the run reads the same options from one place.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO } from './kit.js';

/** The foundation run's options, from its command line (see run.ts). */
export interface FoundationOptions {
  /** --agents: how many simulated agents. */
  agents: number;
  /** --rounds: admin-API fan-out rounds. */
  rounds: number;
  /** --procs: child processes the simulated agents share. */
  procs: number;
  timeoutMin: number;
  /** Deadline of each join's Enroll call; the agent's own default is 30 s, the bench allows more so that a slow run still measures a rate. */
  joinTimeoutMs: number;
  out: string;
  /** The controller's, the fleet's and the peer's logs. */
  logs: string;
  profile: boolean;
  keep: boolean;
  /** Goal for the enrollment wall time, in seconds; scales linearly with the agents. */
  goalEnrollS: number;
}

// Goals from the issue, for 500 agents (the enrollment goal scales with N: FoundationOptions.goalEnrollS).
export const GOAL_SESSION_KIB = 100;
export const SETTLE_MS = 5_000;
/** A second, longer look without forced GC: V8's own idle-time heap shrinking has run by then. */
export const LONG_SETTLE_MS = 25_000;
export const ENROLL_BODY_BYTES = 2048; // peer request/response size, about a CSR + facts and a cert + CA
export const ENROLL_REPLY_BYTES = 2048;

/** Parses process.argv; prints the usage and exits 2 when the options are out of range. */
export function parseFoundationOptions(): FoundationOptions {
  const { values: opt } = parseArgs({
    options: {
      agents: { type: 'string', default: '500' },
      procs: { type: 'string' },
      rounds: { type: 'string', default: '5' },
      out: { type: 'string', default: join(REPO, 'bench-results') },
      'timeout-min': { type: 'string' },
      'join-timeout-ms': { type: 'string', default: '120000' },
      profile: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const N = Number(opt.agents);
  const ROUNDS = Number(opt.rounds);
  const PROCS = Math.max(1, Math.min(N, Number(opt.procs ?? (N >= 100 ? 2 : 1))));
  if (!Number.isInteger(N) || N < 1 || N > 5000 || !Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 50 || !Number.isInteger(PROCS)) {
    process.stderr.write('usage: run.js --suite foundation [--agents 1..5000] [--procs P] [--rounds 1..50] [--out DIR] [--timeout-min M] [--join-timeout-ms MS] [--profile] [--keep]\n');
    process.exit(2);
  }
  const TIMEOUT_MIN = Number(opt['timeout-min'] ?? Math.ceil(6 + N / 50));
  const JOIN_TIMEOUT_MS = Number(opt['join-timeout-ms']);
  const OUT = resolve(opt.out!);
  const LOGS = join(OUT, 'foundation-logs');
  // Goals from the issue, for 500 agents; enrollment scales linearly with N.
  const GOAL_ENROLL_S = 20 * (N / 500);
  return {
    agents: N, rounds: ROUNDS, procs: PROCS, timeoutMin: TIMEOUT_MIN, joinTimeoutMs: JOIN_TIMEOUT_MS, out: OUT, logs: LOGS,
    profile: opt.profile!, keep: opt.keep!, goalEnrollS: GOAL_ENROLL_S,
  };
}
