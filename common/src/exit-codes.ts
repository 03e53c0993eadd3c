import { ErrorCode, type FerryError } from './errors.js';

/**
 * Every exit code of `ferry` and `ferry-agent`, in one table, so scripts and
 * systemd can tell outcomes apart. The README's table is this one (a test
 * holds them equal), and both CLIs' help is written from it.
 */
export const EXIT_CODES = [
  { name: 'Ok', code: 0, meaning: 'ok (`ferry-agent status`: enrolled and connected; `rollout watch`: the rollout succeeded)' },
  { name: 'Failure', code: 1, meaning: 'failure (`exec`/`plan run`: at least one host failed, timed out or was offline; `rollout watch`: failed or aborted; `ferry-agent status`: agent not running)' },
  { name: 'Usage', code: 2, meaning: 'usage or configuration error, or the directory is in use by another controller or agent' },
  { name: 'NotEnrolled', code: 3, meaning: 'this host is not enrolled (or the controller no longer knows it)' },
  { name: 'Revoked', code: 4, meaning: 'this agent was revoked (the systemd unit does not restart on it)' },
  { name: 'Unreachable', code: 5, meaning: 'controller unreachable, wrong port, TLS name mismatch or clock skew' },
  { name: 'TokenRefused', code: 6, meaning: 'the join token was refused (malformed, unknown, expired, revoked, used up)' },
  { name: 'Untrusted', code: 7, meaning: 'CA pin mismatch (possible interception)' },
  { name: 'Paused', code: 8, meaning: '`rollout watch --exit-on-pause`: the rollout is paused or waits for an approval (a person must act)' },
  { name: 'Interrupted', code: 130, meaning: 'interrupted by Ctrl-C (`exec` cancels the command on every host first; `run` leaves the plan running there and names the job); a second Ctrl-C, or one while the controller shuts down, exits at once' },
] as const;

type ExitName = (typeof EXIT_CODES)[number]['name'];

/** Exit codes by name: `Exit.Revoked` is 4. */
export const Exit = Object.fromEntries(EXIT_CODES.map((e) => [e.name, e.code])) as { readonly [K in ExitName]: Extract<(typeof EXIT_CODES)[number], { name: K }>['code'] };

/** The table as Markdown, as the README shows it. */
export function exitCodeMarkdown(): string {
  return ['| code | meaning |', '|---|---|', ...EXIT_CODES.map((e) => `| ${e.code} | ${e.meaning} |`)].join('\n') + '\n';
}

/** One line per code for `--help`. */
export function exitCodeHelp(): string {
  return `Exit codes:\n${EXIT_CODES.map((e) => `  ${String(e.code).padStart(3)}  ${e.meaning.replace(/`/g, '')}`).join('\n')}\n`;
}

export function exitCodeFor(err: FerryError): number {
  switch (err.code) {
    case ErrorCode.InvalidArgument:
    case ErrorCode.Config:
      return Exit.Usage;
    case ErrorCode.NotEnrolled:
      return Exit.NotEnrolled;
    case ErrorCode.AgentRevoked:
      return Exit.Revoked;
    case ErrorCode.Unreachable:
    case ErrorCode.Unavailable:
    case ErrorCode.TlsFailed:
    case ErrorCode.TlsNameMismatch:
    case ErrorCode.ClockSkew:
    case ErrorCode.DeadlineExceeded:
      return Exit.Unreachable;
    case ErrorCode.TokenMalformed:
    case ErrorCode.TokenUnknown:
    case ErrorCode.TokenExpired:
    case ErrorCode.TokenRevoked:
    case ErrorCode.TokenExhausted:
      return Exit.TokenRefused;
    case ErrorCode.CaPinMismatch:
      return Exit.Untrusted;
    default:
      return Exit.Failure;
  }
}
