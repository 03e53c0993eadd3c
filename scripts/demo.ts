// `npm run demo`: Ferry's main job on the embedded default, end to end on this
// machine — a controller (SQLite in .ferry-demo/), an operator signing key,
// three enrolled agents, the fleet listing, a `ferry exec`, then a signed
// offline bundle and plan pushed and rolled out to the edge hosts (canary
// first, bundle prefetched), the result on disk, and a check run showing a
// second run would change nothing. The agents run with --root, so the plan
// writes under .ferry-demo/<agent>/root, not this machine's /. Every command
// is printed before it runs, so the demo doubles as a walkthrough.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(process.argv[1]!, '../../..');
const dir = join(root, '.ferry-demo');
const ferry = join(root, 'bin', 'ferry.js');
const agent = join(root, 'bin', 'ferry-agent.js');
const keep = process.argv.includes('--keep');
const children: ChildProcess[] = [];

function show(argv: string[]): void {
  const pretty = argv.map((a) => (a.startsWith(root) ? a.slice(root.length + 1) : a)).map((a) => (/[\s&?']/.test(a) ? `'${a}'` : a));
  process.stdout.write(`\n$ ${pretty.join(' ').replace(/^bin\/ferry(-agent)?\.js/, 'ferry$1')}\n`);
}

function run(argv: string[], capture = false, program = process.execPath): Promise<string> {
  show(program === process.execPath ? argv : [program, ...argv]);
  return new Promise((res, rej) => {
    const p = spawn(program, argv, { stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'] });
    let out = '';
    p.stdout?.on('data', (d: Buffer) => { out += d.toString(); process.stdout.write(d); });
    p.on('exit', (code) => (code === 0 ? res(out) : rej(new Error(`${argv.join(' ')} exited ${code}`))));
  });
}

function background(argv: string[], logFile: string, waitFor?: RegExp): Promise<ChildProcess> {
  show(argv);
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(p);
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      if (waitFor && waitFor.test(buf)) { res(p); waitFor = undefined; }
    };
    p.stdout!.on('data', onData);
    p.stderr!.on('data', (d: Buffer) => { if (waitFor) process.stdout.write(d); onData(d); });
    p.on('exit', (code) => { if (waitFor) rej(new Error(`${argv.join(' ')} exited ${code}; see ${logFile}\n${buf}`)); });
    if (!waitFor) res(p);
  });
}

async function stopAll(): Promise<void> {
  for (const c of children.reverse()) {
    c.kill('SIGTERM');
    await new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)));
  }
}

async function main(): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const data = join(dir, 'controller');
  process.stdout.write('Ferry demo: one controller and three agents on this machine (state in .ferry-demo/)\n');
  await background([ferry, 'controller', 'start', '--data', data, '--listen', '127.0.0.1:0', '--log-level', 'warn'], join(dir, 'controller.log'), /CA pin:.*\n.*\n/);
  const key = join(dir, 'operator');
  await run([ferry, 'key', 'gen', '--out', key]);
  await run([ferry, '--data', data, 'key', 'add', `${key}.pub`, '--name', 'demo-operator']);
  const joinEdge = (await run([ferry, '--data', data, 'token', 'create', '--ttl', '30m', '--uses', '2', '--label', 'site=plant-7', '--label', 'role=edge'], true)).trim().replace(/^ferry-agent join /, '');
  const joinCloud = (await run([ferry, '--data', data, 'token', 'create', '--ttl', '30m', '--uses', '1', '--label', 'site=plant-7', '--label', 'role=cloud'], true)).trim().replace(/^ferry-agent join /, '');
  for (const [name, js] of [['edge-1', joinEdge], ['edge-2', joinEdge], ['cloud-1', joinCloud]] as const) {
    const state = join(dir, name);
    await run([agent, 'join', js, '--state', state, '--hostname', name]);
    mkdirSync(join(dir, name, 'root'), { recursive: true });
    await background([agent, 'run', '--state', state, '--root', join(dir, name, 'root'), '--log-level', 'warn'], join(dir, `${name}.log`));
  }
  // Give the three sessions a moment to come up, then look at the fleet.
  for (let i = 0; i < 50; i++) {
    const out = await new Promise<string>((res) => {
      const p = spawn(process.execPath, [ferry, '--data', data, 'agents', 'ls', '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let o = '';
      p.stdout.on('data', (d: Buffer) => { o += d.toString(); });
      p.on('exit', () => res(o));
    });
    if (out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { connected: boolean }).filter((a) => a.connected).length === 3) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await run([ferry, '--data', data, 'agents', 'ls']);
  await run([agent, 'status', '--state', join(dir, 'edge-1')]);
  await run([ferry, '--data', data, 'exec', '--selector', 'role=edge', '--timeout', '30s', '--', 'uname', '-a']);
  await run([ferry, '--data', data, 'exec', '--all', '--', 'sh', '-c', 'echo "$(hostname): $(nproc) CPUs, up $(cut -d. -f1 /proc/uptime)s"']);
  // The main job: a signed offline bundle and plan, rolled out canary first.
  const example = join(root, 'examples', 'demo');
  await run([ferry, '--data', data, 'bundle', 'push', join(example, 'package'), '--key', `${key}.key`]);
  await run([ferry, '--data', data, 'plan', 'push', join(example, 'plan.yaml'), '--key', `${key}.key`]);
  await run([ferry, '--data', data, 'rollout', 'create', '--plan', 'edge-demo', '--selector', 'role=edge', '--param', 'cloudcore_ip=10.0.0.5',
    '--waves', '1,100%', '--prefetch', '--watch']);
  await run(['-A', '3', 'edgeStream:', join(dir, 'edge-1', 'root', 'etc', 'kubeedge', 'config', 'edgecore.yaml')], false, 'grep');
  await run([join(dir, 'edge-2', 'root', 'usr', 'local', 'bin', 'edge-hello')], false, 'sh');
  await run([ferry, '--data', data, 'run', 'edge-demo', '--selector', 'role=edge', '--param', 'cloudcore_ip=10.0.0.5', '--check']);
  if (keep) {
    process.stdout.write(`\nThe controller and agents keep running (Ctrl-C stops them). Try:\n  node bin/ferry.js --data ${data} exec --selector role=cloud -- id\n`);
    await new Promise<void>((r) => process.once('SIGINT', () => r()));
  }
  process.stdout.write('\nstopping agents and controller (SIGTERM)...\n');
  await stopAll();
  process.stdout.write('demo finished: everything above ran for real over mTLS gRPC.\n');
}

main().catch(async (err: Error) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  await stopAll();
  process.exit(1);
});
