import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { GroupTracker } from '../../../common/src/proc/run-process.js';

/** What every step executor gets from the job runner. */
export interface StepContext {
  /** Check mode: report what would change (with a diff) and change nothing. */
  check: boolean;
  /** Plan parameters after defaults, with `{{ }}` already expanded into args by the runner. */
  params: Record<string, unknown>;
  /** Host facts and labels, for templates and conditions. */
  facts: Record<string, unknown>;
  labels: Record<string, string>;
  /** Directory of a staged bundle's files by the plan's `as` name; throws a clear error if it is not staged. */
  bundleDir(as: string): string;
  /** Where a step may keep backups and scratch files that survive a reboot. */
  stateDir: string;
  /** Streams one line of output for the controller (stdout or stderr of a command, or a note). */
  output(line: string, stream?: 'stdout' | 'stderr'): void;
  /** Aborted on cancel or timeout; executors pass it to every child process (whole process group). */
  signal: AbortSignal;
  /** Root under which absolute host paths live (normally "/"; tests point it elsewhere). */
  root: string;
  /**
   * Hears about every process group the step starts and ends (the job runner
   * journals them, so a restarted agent can end a group a killed agent left).
   */
  track?: GroupTracker;
  /**
   * Host paths of this agent's fleet CA certificate, own certificate and key, for steps that
   * point other programs at them (containerd.mirror's `ca: fleet`, `client: fleet`). Unset when
   * the agent has no identity (tests that run an executor alone).
   */
  fleet?: FleetTlsPaths;
  /**
   * `host:port` of the registry endpoints of this host's site relays, most preferred first, as
   * the controller assigned them (containerd.mirror's `relay` entry); empty or unset: none.
   */
  relayRegistries?: readonly string[];
}

/** Where the agent keeps its fleet TLS files (renewals replace them in place, same paths). */
export interface FleetTlsPaths {
  ca: string;
  cert: string;
  key: string;
}

/**
 * One step type on the host. Its args were parsed by the type's schema in
 * common/src/plan/steps/ (shared with the controller's plan validation).
 * `run` is idempotent: a second run changes nothing and reports `unchanged`;
 * in check mode it changes nothing and reports what would change.
 */
export interface StepExecutor<A> {
  readonly type: string;
  run(args: A, ctx: StepContext): Promise<StepOutcome>;
}
