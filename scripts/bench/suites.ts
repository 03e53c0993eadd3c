/**
 * Suite selection for `npm run bench` (build/scripts/bench/run.js):
 *
 *   run.js                         every suite, one child process each: foundation, bundles, steps, rollouts
 *   run.js --suite foundation      the foundation benchmark (run.ts itself)
 *   run.js --suite bundles         ingest, distribution vs nginx, upgrade dedupe, agent RSS (bundles.ts)
 *   run.js --suite steps           per-step overhead, image.import vs ctr (steps.ts)
 *   run.js --suite rollouts        a 500-host rollout of a no-op plan: wall, CPU per host-step, latency (rollouts.ts)
 *   run.js --suite registry        skopeo pulls from Ferry's registry vs docker-registry, files by curl vs nginx (registry.ts)
 *   run.js --suite upgrades        ferry agents upgrade of 100 agents: bytes moved per host, time to all committed (upgrades.ts)
 *   run.js --suite relays          a bundle to 32 agents in 4 simulated sites behind shaped uplinks, vs nginx + curl (relays.ts; needs root)
 *   run.js --suite ha              1,000 simulated agents over 3 replicas on PostgreSQL beside one SQLite controller: enrollment, rollout CPU, PostgreSQL load, failover (ha.ts)
 *   run.js [--suite S] --quick     a small run of the same
 *
 * Options shared by all suites: --out DIR, --keep, --profile, --timeout-min M.
 * Options of one suite go to that suite (foundation: --agents --procs
 * --rounds --join-timeout-ms; bundles: --agents 1,8,32; steps: --rounds; rollouts: --agents --procs --steps; ha: --agents --procs --steps;
 * relays: --bundle-mib (or BENCH_RELAYS_MIB) --rate-mbit --loss-pct --rtt-ms;
 * upgrades: --agents --procs --live).
 * Without --suite, only the shared options are passed on.
 *
 * This module has no side effects when imported; run.ts calls
 * dispatchSuite() before anything else it does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const SUITES = ['foundation', 'bundles', 'steps', 'rollouts', 'registry', 'relays', 'upgrades', 'ha'] as const;
type Suite = (typeof SUITES)[number];

/** What `--quick` means for the foundation benchmark, unless given explicitly. */
const FOUNDATION_QUICK = ['--agents', '100', '--rounds', '2'];
const SHARED_WITH_VALUE = new Set(['--out', '--timeout-min']);
const SHARED_FLAGS = new Set(['--keep', '--profile']);

function take(argv: string[], name: string): { value?: string; rest: string[]; present: boolean } {
  const rest: string[] = [];
  let value: string | undefined;
  let present = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === name) {
      present = true;
      if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) value = argv[++i];
    } else if (a.startsWith(`${name}=`)) {
      present = true;
      value = a.slice(name.length + 1);
    } else {
      rest.push(a);
    }
  }
  return { value, rest, present };
}

function shared(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.split('=')[0]!;
    if (SHARED_FLAGS.has(a)) out.push(a);
    else if (SHARED_WITH_VALUE.has(name)) {
      if (a.includes('=')) out.push(a);
      else if (i + 1 < argv.length) out.push(a, argv[++i]!);
    }
  }
  return out;
}

/**
 * Returns (with process.argv rewritten) when this process should run the
 * foundation benchmark; otherwise runs the chosen suite(s) and exits.
 */
export async function dispatchSuite(): Promise<void> {
  const argv = process.argv.slice(2);
  const s = take(argv, '--suite');
  const q = take(s.rest, '--quick');
  const rest = q.rest;
  if (s.present && !SUITES.includes(s.value as Suite)) {
    process.stderr.write(`--suite: one of ${SUITES.join(', ')}\n`);
    process.exit(2);
  }
  const suite = s.value as Suite | undefined;
  if (suite === 'foundation') {
    const quickArgs: string[] = [];
    for (let i = 0; q.present && i < FOUNDATION_QUICK.length; i += 2) {
      const flag = FOUNDATION_QUICK[i]!;
      if (!rest.some((a) => a === flag || a.startsWith(`${flag}=`))) quickArgs.push(flag, FOUNDATION_QUICK[i + 1]!);
    }
    process.argv = [process.argv[0]!, process.argv[1]!, ...quickArgs, ...rest];
    return;
  }
  if (suite === 'bundles' || suite === 'steps' || suite === 'rollouts' || suite === 'registry' || suite === 'relays' || suite === 'upgrades' || suite === 'ha') {
    const load = {
      bundles: () => import('./bundles.js'), steps: () => import('./steps.js'), rollouts: () => import('./rollouts.js'), registry: () => import('./registry.js'), relays: () => import('./relays.js'), upgrades: () => import('./upgrades.js'), ha: () => import('./ha.js'),
    }[suite];
    const mod = (await load()) as { main(argv: string[]): Promise<number> };
    process.exit(await mod.main([...(q.present ? ['--quick'] : []), ...rest]));
  }
  // Every suite, each in a process of its own, one after the other.
  const self = fileURLToPath(new URL('./run.js', import.meta.url));
  const pass = shared(rest);
  if (pass.length !== rest.length) {
    process.stderr.write(`without --suite only ${[...SHARED_FLAGS, ...SHARED_WITH_VALUE].join(', ')} are passed on; run one suite with --suite to give it its own options\n`);
    process.exit(2);
  }
  let current: ChildProcess | undefined;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => { current?.kill(sig); });
  }
  const codes: Record<string, number> = {};
  for (const name of SUITES) {
    process.stderr.write(`[bench] ===== suite ${name} =====\n`);
    current = spawn(process.execPath, [self, '--suite', name, ...(q.present ? ['--quick'] : []), ...pass], { stdio: 'inherit' });
    codes[name] = await new Promise<number>((res) => current!.once('exit', (code, sig) => res(code ?? (sig ? 128 : 1))));
  }
  process.stderr.write(`[bench] suites: ${Object.entries(codes).map(([k, v]) => `${k} ${v === 0 ? 'ok' : `exit ${v}`}`).join(', ')}\n`);
  process.exit(Math.max(...Object.values(codes)));
}
