/**
 * `hosts.entry`: pin names to an address in /etc/hosts — what sealer does for `sea.hub`, so
 * image names rewritten to a local registry (`sea.hub:5000/...`) resolve to the controller or
 * a relay without DNS.
 *
 * ```yaml
 * - id: sea-hub
 *   type: hosts.entry
 *   args:
 *     address: "{{ registryAddress }}"     # 10.77.0.1
 *     names: [sea.hub]
 * ```
 *
 * `state: absent` removes the names again (address not needed).
 */
import { isIP } from 'node:net';
import { schema } from '../step-schema.js';
import { readAbsPath } from './file-install.js';

/** Parsed args of `hosts.entry`. */
export interface HostsEntryArgs {
  /** IPv4 or IPv6 address; empty for `absent`. */
  address: string;
  /** Host names, lower-case, unique. */
  names: string[];
  state: 'present' | 'absent';
  /** The hosts file (default /etc/hosts). */
  file: string;
  backup: boolean;
}

const LABEL = /^(?:[a-z0-9]|[a-z0-9][a-z0-9-]{0,61}[a-z0-9])$/;

/** A host name /etc/hosts can carry (RFC 1123 labels), or a problem. */
export function checkHostName(n: string): string | undefined {
  if (n.length > 253 || !n.split('.').every((l) => LABEL.test(l))) return `"${n}" is not a host name (letters, digits, dashes, dot-separated)`;
  if (isIP(n)) return `"${n}" is an address, not a name`;
  if (n === 'localhost' || n.endsWith('.localhost')) return `"${n}" must keep resolving to the loopback address`;
  return undefined;
}

/** Schema for `hosts.entry`. */
export const hostsEntrySchema = schema<HostsEntryArgs>(
  'hosts.entry',
  'Pin host names to an address in /etc/hosts (e.g. sea.hub → the registry), removing other addresses for those names; leaves other lines as they are',
  (r) => {
    const state = r.oneOf('state', ['present', 'absent'] as const, { default: 'present' })!;
    const address = r.string('address', { required: state === 'present' }) ?? '';
    if (address && !isIP(address)) r.problem('address', `"address" must be an IPv4 or IPv6 address (got "${address}"); /etc/hosts cannot hold a name`);
    const names = (r.stringList('names', { required: true, nonEmpty: true }) ?? []).map((n) => n.trim().toLowerCase());
    const seen = new Map<string, number>();
    names.forEach((n, i) => {
      const p = checkHostName(n);
      if (p) r.problem(`names[${i}]`, p);
      else if (seen.has(n)) r.problem(`names[${i}]`, `"${n}" is listed twice (also names[${seen.get(n)}])`);
      seen.set(n, i);
    });
    return {
      address, names, state,
      file: readAbsPath(r, 'file', false) ?? '/etc/hosts',
      backup: r.bool('backup', { default: true })!,
    };
  },
);
