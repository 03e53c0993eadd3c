/**
 * Executor for `iptables.rule` (args: common/src/plan/steps/iptables-rule.ts). Drives the
 * host's real iptables/ip6tables: `-S CHAIN` (the chain must exist), `-C` (is the rule
 * there?), then `-A`/`-I` or `-D` for every copy, `-C` again to prove it, and optionally
 * iptables-save into the persistence file. A rule that is already there without Ferry's
 * comment (added by a seed script's `iptables -C || -A`) counts as present: adding a second,
 * commented copy would DNAT twice.
 */
import { ErrorCode } from '../../../common/src/errors.js';
import { join } from 'node:path';
import type { IptablesRuleArgs } from '../../../common/src/plan/steps/iptables-rule.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { StepContext, StepExecutor } from './step.js';
import { writeFileAtomicAsync } from '../../../common/src/secure-fs.js';
import { readTextIfExists, SYSTEM_DIR_MODE } from './util/file-ops.js';
import { fileDiff } from './util/text-diff.js';
import { commandError, runCommand, runOk, shellQuote, type RunContext } from './sys/run.js';
import { guarded, StepError } from './step-error.js';

/** Largest iptables-save output we persist (hosts with thousands of kube-proxy rules reach tens of MiB). */
const SAVE_MAX_BYTES = 256 << 20;
/** How many copies of one rule `absent` removes at most (a loop guard, not a real limit). */
const MAX_COPIES = 100;

const INSTALL_HINT = 'install the iptables package on this host (Debian/Ubuntu: apt-get install iptables; RHEL: dnf install iptables-nft) and run the step again';

/** The `iptables.rule` step executor. */
export const iptablesRuleExecutor: StepExecutor<IptablesRuleArgs> = {
  type: 'iptables.rule',
  run: (args, ctx) => guarded(ctx.signal, () => ensureRule(args, ctx)),
};

/** The rule's argv with `-m comment --comment` before the target (so -S lists matches, comment, target). */
export function ruleWithComment(rule: readonly string[], comment: string | undefined): string[] {
  if (comment === undefined) return [...rule];
  const j = rule.findIndex((a) => a === '-j' || a === '--jump' || a === '-g' || a === '--goto');
  const at = j < 0 ? rule.length : j;
  return [...rule.slice(0, at), '-m', 'comment', '--comment', comment, ...rule.slice(at)];
}

/** iptables-save output made comparable: no "# Generated ... on <date>" lines, zeroed counters. */
export function normalizeSave(text: string): string {
  return text.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]')).join('\n').trim() + '\n';
}

class Tables {
  readonly bin: string;
  constructor(readonly ctx: RunContext, readonly args: IptablesRuleArgs) {
    this.bin = args.family === 'ipv6' ? 'ip6tables' : 'iptables';
  }

  /** `-w 10`: wait for the xtables lock kube-proxy and friends hold, instead of failing at once. */
  argv(cmd: string[]): string[] {
    return [this.bin, '-w', '10', '-t', this.args.table, ...cmd];
  }

  run(cmd: string[]) {
    return runCommand(this.ctx, this.argv(cmd), { stream: false, tool: this.bin, installHint: INSTALL_HINT });
  }

  /**
   * The chain must exist. Read from the whole table's `-S` (`-P` built-in, `-N` user chains):
   * `-S CHAIN` on a missing chain says "No chain/target/match" with the legacy backend but
   * "chain ... is incompatible, use 'nft' tool" with iptables-nft 1.8.9.
   */
  async requireChain(): Promise<void> {
    const r = await this.run(['-S']);
    if (r.exitCode !== 0) {
      throw commandError(r, `${this.bin} cannot list table ${this.args.table}`, 'the agent must run as root with CAP_NET_ADMIN; check the kernel has netfilter support');
    }
    const chains = r.stdout.split('\n').map((l) => /^-[PN] (\S+)/.exec(l)?.[1]).filter(Boolean);
    if (!chains.includes(this.args.chain)) {
      throw new StepError(ErrorCode.StepInputMissing, `chain ${this.args.chain} does not exist in table ${this.args.table} on this host (chains: ${chains.join(', ')})`,
        'check the chain name or create the chain in an earlier step');
    }
  }

  /** `-C`: exit 0 present, 1 with "Bad rule" absent; anything else is a bad rule or a broken iptables. */
  async has(rule: string[]): Promise<boolean> {
    const r = await this.run(['-C', this.args.chain, ...rule]);
    if (r.exitCode === 0) return true;
    if (r.exitCode === 1 && /bad rule|does a matching rule exist|no chain\/target\/match/i.test(r.stderr)) return false;
    throw commandError(r, `${this.bin} rejected the rule`, 'fix the "rule" arguments (try the command by hand on the host to see what iptables expects)');
  }

  async change(cmd: string[], what: string): Promise<void> {
    await runOk(this.ctx, this.argv(cmd), what, 'see iptables\' message; for "Index of insertion too big" lower insertAt', { tool: this.bin, installHint: INSTALL_HINT });
  }
}

async function ensureRule(args: IptablesRuleArgs, ctx: StepContext): Promise<StepOutcome> {
  const t = new Tables(ctx, args);
  await t.requireChain();
  const ours = ruleWithComment(args.rule, args.comment);
  const where = `table ${args.table} chain ${args.chain}`;
  const shown = shellQuote(ours);
  const lines: string[] = [];
  let changed = false;
  let undo: (() => Promise<void>) | undefined;

  if (args.state === 'present') {
    const present = await t.has(ours);
    const plain = !present && args.comment !== undefined && (await t.has(args.rule));
    if (!present && !plain) {
      const cmd = args.position === 'insert' ? ['-I', args.chain, String(args.insertAt), ...ours] : ['-A', args.chain, ...ours];
      lines.push(`+ ${shellQuote(t.argv(cmd))}`);
      if (!ctx.check) {
        await t.change(cmd, `could not add the rule to ${where}`);
        if (!(await t.has(ours))) throw new StepError(ErrorCode.StepCommandFailed, `${t.bin} accepted the rule but -C does not find it in ${where}`, 'report this with the output of iptables -S on the host');
        undo = () => t.change(['-D', args.chain, ...ours], 'undo');
      }
      changed = true;
    } else if (plain) {
      lines.push(`(present without the comment "${args.comment}", left as is)`);
    }
  } else {
    for (const rule of args.comment !== undefined ? [ours, [...args.rule]] : [ours]) {
      let n = 0;
      while (n < MAX_COPIES && (await t.has(rule))) {
        lines.push(`- ${shellQuote(t.argv(['-D', args.chain, ...rule]))}`);
        changed = true;
        n++;
        if (ctx.check) break; // one copy is enough to know it would change
        await t.change(['-D', args.chain, ...rule], `could not delete the rule from ${where}`);
      }
    }
  }

  let saved = '';
  if (args.persist) {
    try {
      saved = await persist(t, args, ctx, changed);
    } catch (err) {
      if (undo) await undo().catch(() => undefined);
      if (err instanceof StepError && undo) throw new StepError(err.code, `${err.message} (the rule just added was removed again)`, err.hint, err.details);
      throw err;
    }
  }
  const diff = [...lines.filter((l) => /^[+-] /.test(l)), saved].filter(Boolean).join('\n');
  const verb = args.state === 'present' ? (changed ? 'added' : 'present') : (changed ? 'removed' : 'absent');
  const note = lines.find((l) => l.startsWith('(')) ?? '';
  const msg = `${ctx.check && changed ? 'would be ' : ''}${verb} in ${where}: ${shown}${note ? ` ${note}` : ''}${saved ? `; ${ctx.check ? 'would save' : 'saved'} to ${args.persistFile}` : ''}`;
  return { status: changed || saved ? 'changed' : 'unchanged', message: msg, ...(diff ? { diff } : {}) };
}

/**
 * Saves the current ruleset when the persistence file differs from it (ignoring comments and
 * counters). Returns a diff of the file, or "" when it was already up to date.
 */
async function persist(t: Tables, args: IptablesRuleArgs, ctx: StepContext, ruleChanging: boolean): Promise<string> {
  const saveBin = `${t.bin}-save`;
  const file = join(ctx.root, args.persistFile);
  const r = await runOk(ctx, [saveBin], `${saveBin} failed`, 'check that the iptables package is complete on this host',
    { stream: false, tool: saveBin, installHint: INSTALL_HINT, captureBytes: SAVE_MAX_BYTES });
  // A cut ruleset saved as the boot-time file would drop rules at the next boot.
  if (r.truncated) {
    throw new StepError(ErrorCode.StepCommandFailed, `${saveBin} printed more than ${SAVE_MAX_BYTES >> 20} MiB; not saving a partial ruleset to ${args.persistFile}`,
      'save the rules with the distribution\'s own tool (netfilter-persistent save) and drop "persist" from this step');
  }
  const next = normalizeSave(r.stdout);
  const old = readTextIfExists(file);
  const stale = old === undefined || normalizeSave(old) !== next;
  // Check mode changed no rule, so the saved text cannot be shown yet, only that saving follows.
  if (ctx.check) return stale || ruleChanging ? `# ${saveBin} > ${args.persistFile}` : '';
  if (!stale) return '';
  try {
    await writeFileAtomicAsync(file, next, { mode: 0o640, dirMode: SYSTEM_DIR_MODE });
  } catch (err) {
    throw new StepError(ErrorCode.StepCommandFailed, `cannot write ${args.persistFile}: ${(err as Error).message}`, 'check that /etc is writable and the disk is not full');
  }
  return fileDiff(args.persistFile, old === undefined ? undefined : normalizeSave(old), next);
}
