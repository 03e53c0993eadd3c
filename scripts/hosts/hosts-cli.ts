/**
 * hosts-cli — simulated hosts for humans debugging Ferry's e2e tests.
 *
 *   node build/scripts/hosts/hosts-cli.js up 3            # fabric 10.77.0.1 + h1..h3 (10.77.0.11..13)
 *   node build/scripts/hosts/hosts-cli.js status
 *   node build/scripts/hosts/hosts-cli.js exec h1 -- systemctl status
 *   node build/scripts/hosts/hosts-cli.js exec h1            # interactive bash inside h1
 *   node build/scripts/hosts/hosts-cli.js fabric -- ss -ltn  # a command in the fabric namespace
 *   node build/scripts/hosts/hosts-cli.js down
 *
 * Also: `containerd hN`, `cut hN [--reset]`, `restore hN`, `stop|kill|boot|reboot hN`.
 * The cluster lives in $FERRY_HOSTS_DIR/<name> (default /var/tmp/ferry-hosts/cli; pick another
 * with --name) and keeps running after `up` returns, until `down`. Must run as root.
 */
import { join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { Cluster, DEFAULT_BASE_DIR, ensurePrereqs, readState, type Host } from '../../test/e2e/harness/index.js';

const USAGE = `usage: hosts-cli [--name NAME] COMMAND
  up N [--containerd]     create and boot N hosts (h1..hN at 10.77.0.11..) on a fabric at 10.77.0.1
  status                  list hosts, state, PID 1 and memory
  exec hN [--] [CMD...]   run CMD inside hN (default: interactive bash)
  fabric [--] CMD...      run CMD in the fabric network namespace (e.g. a controller)
  containerd hN           unmask and start containerd in hN
  cut hN [--reset]        pull hN's cable (--reset: fabric sockets get TCP resets)
  restore hN              plug hN's cable back in
  stop|kill|boot|reboot hN  graceful poweroff / hard kill / boot / reboot from inside
  down                    stop everything and remove all traces`;

function fail(msg: string): never {
  process.stderr.write(`hosts-cli: ${msg}\n`);
  process.exit(2);
}

/** Everything after an optional "--". */
function rest(args: string[]): string[] {
  return args[0] === '--' ? args.slice(1) : args;
}

async function main(argv: string[]): Promise<number> {
  let name = 'cli';
  if (argv[0] === '--name') {
    name = argv[1] ?? fail('--name needs a value');
    argv = argv.slice(2);
  }
  const [cmd, ...args] = argv;
  const baseDir = resolve(process.env.FERRY_HOSTS_DIR ?? DEFAULT_BASE_DIR);
  const dir = join(baseDir, name);
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return cmd ? 0 : 2;
  }
  if (process.getuid?.() !== 0) fail('must run as root');

  if (cmd === 'up') {
    const n = Number(args[0]);
    if (!Number.isInteger(n) || n < 1) fail('up needs a host count');
    const pre = await ensurePrereqs({ log: (m) => console.log(`prereqs: ${m}`) });
    if (!pre.ok) fail(pre.skipReason ?? 'prerequisites missing');
    if (readState(dir)) fail(`cluster ${dir} exists; run "hosts-cli${name === 'cli' ? '' : ` --name ${name}`} down" first`);
    const t0 = Date.now();
    const c = await Cluster.create({ hosts: n, name, baseDir, persistent: true, log: (m) => console.log(m) });
    if (args.includes('--containerd')) await Promise.all(c.hosts.map((h) => h.enableContainerd()));
    console.log(`${n} host(s) up in ${Date.now() - t0} ms in ${c.dir}`);
    printStatus(c.hosts);
    return 0;
  }

  const c = readState(dir) ? Cluster.attach(dir) : fail(`no cluster at ${dir} (hosts-cli up N)`);
  const host = (): Host => c.host(args[0] ?? fail(`${cmd} needs a host name`));
  switch (cmd) {
    case 'status':
      printStatus(c.hosts);
      return 0;
    case 'exec': {
      const argvIn = rest(args.slice(1));
      return host().execInteractive(argvIn.length ? argvIn : ['bash', '-l']);
    }
    case 'fabric': {
      const argvIn = rest(args);
      if (!argvIn.length) fail('fabric needs a command');
      const child = spawn('nsenter', [`--net=${c.fabric.nsFile}`, '--', ...argvIn], { stdio: 'inherit' });
      return new Promise((res) => child.on('exit', (code) => res(code ?? 1)));
    }
    case 'containerd':
      await host().enableContainerd();
      return 0;
    case 'cut':
      await host().cutCable({ reset: args.includes('--reset') });
      return 0;
    case 'restore':
      await host().restoreCable();
      return 0;
    case 'stop':
      await host().stop();
      return 0;
    case 'kill':
      await host().hardKill();
      return 0;
    case 'boot': {
      const h = host();
      const st = await h.boot();
      console.log(`${h.name} ${st?.state} in ${h.msSinceBoot} ms`);
      return 0;
    }
    case 'reboot': {
      const h = host();
      const st = await h.reboot();
      console.log(`${h.name} ${st.state} in ${h.msSinceBoot} ms`);
      return 0;
    }
    case 'down': {
      const t0 = Date.now();
      await c.destroy();
      const left = c.leftovers();
      console.log(left.length ? `down, but left behind:\n  ${left.join('\n  ')}` : `down in ${Date.now() - t0} ms, nothing left behind`);
      return left.length ? 1 : 0;
    }
    default:
      fail(`unknown command ${cmd}\n${USAGE}`);
  }
}

function printStatus(hosts: readonly Host[]): void {
  for (const h of hosts) {
    const pid = h.pid1();
    const mem = h.memoryBytes();
    console.log([
      h.name.padEnd(5), h.ip.padEnd(12), (h.running ? 'running' : 'stopped').padEnd(8),
      pid ? `pid1=${pid}` : '', mem !== undefined && h.running ? `${(mem / 1048576).toFixed(1)} MiB` : '',
    ].join(' ').trimEnd());
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => fail(e instanceof Error ? e.message : String(e)),
);
