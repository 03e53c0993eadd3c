/**
 * Versions: Ferry's own, the session protocol's, and the one rule for which
 * agent versions a controller works with.
 */

// Set by scripts/build-agent.mjs --version (esbuild `define`) to build an
// agent that reports another version; undefined everywhere else.
declare const __FERRY_BUILD_VERSION__: string | undefined;

/** Ferry's version, reported by agents in hello and by the controller in welcome. */
export const FERRY_VERSION: string = typeof __FERRY_BUILD_VERSION__ === 'string' ? __FERRY_BUILD_VERSION__ : '0.1.0';

/**
 * The agent session protocol (proto/ferry/v1/session.proto) this build
 * speaks. Raised when a change needs both ends to know it; agents older than
 * the hello field report 0.
 */
export const PROTOCOL_VERSION = 1;

/** A parsed `MAJOR.MINOR.PATCH[-pre]` version. */
export interface Semver {
  major: number;
  minor: number;
  patch: number;
  pre: string;
}

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?$/;

/** Parses a version, or returns undefined when it is not `MAJOR.MINOR.PATCH[-pre]`. */
export function parseVersion(v: string): Semver | undefined {
  const m = SEMVER.exec(v);
  return m ? { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), pre: m[4] ?? '' } : undefined;
}

/** Why `v` is not a usable version, or undefined when it is one. */
export function versionProblem(v: string): string | undefined {
  return parseVersion(v) ? undefined : `${JSON.stringify(v)} is not a version: use MAJOR.MINOR.PATCH, e.g. 0.2.0 (optionally -rc.1)`;
}

/** Orders two versions (a pre-release sorts before its release); unparsable ones sort first. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  if (!x || !y) return (x ? 1 : 0) - (y ? 1 : 0);
  const d = x.major - y.major || x.minor - y.minor || x.patch - y.patch;
  if (d) return Math.sign(d);
  if (x.pre === y.pre) return 0;
  if (!x.pre) return 1;
  if (!y.pre) return -1;
  return x.pre < y.pre ? -1 : 1;
}

/** How an agent's version stands against the controller's. */
export type AgentCompat =
  | { ok: true; behind: boolean; advice?: string }
  | { ok: false; reason: 'too-old' | 'newer' | 'unknown'; message: string; hint: string };

/**
 * The version rule: an agent runs the controller's minor version or the one
 * before it (same major; before 1.0 the minor is what breaks, so 0.x is the
 * same rule), and is never newer than the controller. Older agents and newer
 * ones are refused with what to do; one minor behind is accepted with advice
 * to upgrade.
 */
export function agentCompat(agentVersion: string, controllerVersion: string = FERRY_VERSION): AgentCompat {
  const a = parseVersion(agentVersion);
  const c = parseVersion(controllerVersion);
  if (!a || !c) {
    return { ok: false, reason: 'unknown', message: `agent version ${JSON.stringify(agentVersion)} cannot be compared with controller ${controllerVersion}`,
      hint: `install ferry-agent ${controllerVersion} on the host (copy dist/ferry-agent-linux-ARCH over the installed binary, then systemctl restart ferry-agent)` };
  }
  if (compareVersions(agentVersion, controllerVersion) > 0) {
    return { ok: false, reason: 'newer', message: `agent ${agentVersion} is newer than controller ${controllerVersion}; an agent is never newer than its controller`,
      hint: `upgrade the controller to ${agentVersion} or later first, or install ferry-agent ${controllerVersion} on the host` };
  }
  const minorsBehind = a.major === c.major ? c.minor - a.minor : Infinity;
  if (minorsBehind > 1) {
    return { ok: false, reason: 'too-old', message: `agent ${agentVersion} is more than one minor version behind controller ${controllerVersion}`,
      hint: `a controller works with agents of its own minor version and the one before; install ferry-agent ${controllerVersion} on the host by hand (copy dist/ferry-agent-linux-ARCH over the installed binary, then systemctl restart ferry-agent), or upgrade the fleet one minor version at a time` };
  }
  if (minorsBehind === 1) {
    return { ok: true, behind: true, advice: `agent ${agentVersion} is one minor version behind controller ${controllerVersion} and still accepted; the next controller minor version will refuse it: ferry agents upgrade --to ${controllerVersion} --selector ...` };
  }
  return { ok: true, behind: false };
}
