/**
 * `iptables.rule`: make sure one rule is (or is not) in a chain — the seeds' `iptables -C ||
 * iptables -A`, as a step. The agent checks with `-C`, then appends (`-A`), inserts (`-I`) or
 * deletes (`-D`, every copy). A `comment` becomes `-m comment --comment TEXT` so Ferry's
 * rules are recognisable in `iptables -S`.
 *
 * `persist: true` saves the whole ruleset with iptables-save (as `netfilter-persistent save`
 * does) to `/etc/iptables/rules.v4` (`rules.v6` for ipv6), which the iptables-persistent
 * package restores at boot. Without it, rules are gone after a reboot. Note that this saves
 * every rule present at that moment, including those other programs added.
 *
 * ```yaml
 * - id: metrics-dnat            # seed 004: metrics-server → CloudCore stream port
 *   type: iptables.rule
 *   args:
 *     table: nat
 *     chain: OUTPUT
 *     rule: [-p, tcp, --dport, "10350", -j, DNAT, --to-destination, "{{ cloudcoreIp }}:10003"]
 *     comment: "ferry: kubeedge metrics"
 *     persist: true
 * ```
 */
import { schema } from '../step-schema.js';
import { readAbsPath } from './file-install.js';

export type IptablesTable = 'filter' | 'nat' | 'mangle' | 'raw' | 'security';

export interface IptablesRuleArgs {
  table: IptablesTable;
  chain: string;
  /** The rule's match and target options, without table, chain or command (-A/-I/-D). */
  rule: string[];
  state: 'present' | 'absent';
  /** Where a missing rule goes: end of the chain (default) or `insertAt` (1 = first). */
  position: 'append' | 'insert';
  insertAt: number;
  comment?: string;
  /** Save the ruleset to persistFile after a change (see module comment). */
  persist: boolean;
  /** Default /etc/iptables/rules.v4, or rules.v6 for ipv6. */
  persistFile: string;
  /** ipv4 drives iptables, ipv6 ip6tables. */
  family: 'ipv4' | 'ipv6';
}

/** Options that say which table/chain/command to use: they have their own args. */
const RESERVED = new Set(['-t', '--table', '-A', '--append', '-I', '--insert', '-D', '--delete', '-C', '--check',
  '-R', '--replace', '-F', '--flush', '-X', '--delete-chain', '-N', '--new-chain', '-P', '--policy', '-Z', '--zero',
  '-L', '--list', '-S', '--list-rules', '-E', '--rename-chain']);

/** Schema for `iptables.rule`. */
export const iptablesRuleSchema = schema<IptablesRuleArgs>(
  'iptables.rule',
  'Ensure one iptables rule is present (append/insert) or absent in a table/chain, checked with -C first; optional comment and persistence',
  (r) => {
    const table = r.oneOf<IptablesTable>('table', ['filter', 'nat', 'mangle', 'raw', 'security'], { default: 'filter' })!;
    const chain = r.string('chain', { required: true });
    if (chain !== undefined && !/^[A-Za-z0-9_.:-]{1,28}$/.test(chain)) r.problem('chain', `"chain" must be a chain name like OUTPUT or PREROUTING (got "${chain}")`);
    const rule = r.stringList('rule', { required: true, nonEmpty: true });
    rule?.forEach((a, i) => {
      if (RESERVED.has(a)) r.problem(`rule[${i}]`, `"${a}" does not belong in "rule": use the table, chain, state and position args`);
      if (a === '--comment' && r.any('comment') !== undefined) r.problem(`rule[${i}]`, 'give the comment either in "rule" or in "comment", not both');
    });
    const comment = r.string('comment');
    if (comment !== undefined && (comment.length > 256 || /[\n\r"]/.test(comment) || comment === '')) {
      r.problem('comment', '"comment" must be 1–256 characters on one line without double quotes');
    }
    const family = r.oneOf('family', ['ipv4', 'ipv6'] as const, { default: 'ipv4' })!;
    const position = r.oneOf('position', ['append', 'insert'] as const, { default: 'append' })!;
    const insertAt = r.int('insertAt', { default: 1, min: 1 })!;
    if (r.any('insertAt') !== undefined && position !== 'insert') r.problem('insertAt', '"insertAt" needs position: insert');
    return {
      table, chain: chain!, rule: rule!,
      state: r.oneOf('state', ['present', 'absent'] as const, { default: 'present' })!,
      position, insertAt, comment,
      persist: r.bool('persist', { default: false })!,
      persistFile: readAbsPath(r, 'persistFile', false) ?? (family === 'ipv6' ? '/etc/iptables/rules.v6' : '/etc/iptables/rules.v4'),
      family,
    };
  },
);
