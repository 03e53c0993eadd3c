// The agent as shipped: dist/ferry-agent, a Node single executable application
// built by scripts/build-agent.mjs, must run on a host with no node and no
// node_modules. Builds the binary (or reuses it when it is newer than every
// bundled input), then runs it with an empty environment whose PATH has the
// usual system tools but no node, from a temp dir with no node_modules.
//
// FERRY_AGENT_ENTRY=<file> builds from another entry (to exercise this test
// itself against a stand-in CLI); the build script notices the entry change.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanup, joinString, startController, waitFor } from '../support/fixtures.js';

const BUILD_TIMEOUT_MS = 10 * 60_000;
const RUN_TIMEOUT_MS = 30_000;
// Names that would put a node runtime on PATH (npm & co. are node scripts).
const NODE_NAMES = new Set(['node', 'nodejs', 'npm', 'npx', 'corepack']);

function repoRoot(): string {
  // Runs from build/test/integration/ (compiled) or test/integration/.
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'scripts', 'build-agent.mjs'))) return dir;
    if (dirname(dir) === dir) throw new Error('cannot find the repo root (scripts/build-agent.mjs)');
  }
}

/**
 * `env -i PATH=/usr/bin:/bin` is not enough to hide node here: it is installed
 * as /usr/bin/node (and /bin is a symlink to /usr/bin). So PATH is a directory
 * of symlinks to everything in /usr/bin and /bin except node and its scripts.
 */
function nodelessPath(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const seen = new Set<string>();
  for (const src of ['/usr/bin', '/bin']) {
    if (!existsSync(src)) continue;
    for (const name of readdirSync(src)) {
      if (NODE_NAMES.has(name) || seen.has(name)) continue;
      seen.add(name);
      symlinkSync(join(src, name), join(dir, name));
    }
  }
  return dir;
}

function output(r: SpawnSyncReturns<string>): string {
  return `exit ${r.status ?? `signal ${r.signal}`}${r.error ? ` (${r.error.message})` : ''}\n` +
    `--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

describe('agent single executable (dist/ferry-agent)', function () {
  this.timeout(BUILD_TIMEOUT_MS + 60_000);

  const root = repoRoot();
  const script = join(root, 'scripts', 'build-agent.mjs');
  const binary = join(root, 'dist', 'ferry-agent');
  let tmp = '';
  let path = '';
  let cwd = '';

  /** Runs argv under `env -i PATH=<no node>` from a dir with no node_modules. */
  function nodeless(argv: string[], opts: { cwd?: string } = {}): SpawnSyncReturns<string> {
    return spawnSync('/usr/bin/env', ['-i', `PATH=${path}`, ...argv], {
      cwd: opts.cwd ?? cwd,
      encoding: 'utf8',
      timeout: RUN_TIMEOUT_MS,
    });
  }

  before(function () {
    const check = spawnSync(process.execPath, [script, '--check'], { cwd: root, encoding: 'utf8' });
    if (check.status === 2) {
      // Only when this node/platform cannot make a SEA at all (not expected on linux).
      console.log(`      skipping: ${check.stdout.trim()}`);
      this.skip();
    }
    assert.equal(check.status, 0, `build-agent.mjs --check failed\n${output(check)}`);

    const args = [script, '--if-stale'];
    const entry = process.env['FERRY_AGENT_ENTRY'];
    if (entry) args.push('--entry', entry);
    const build = spawnSync(process.execPath, args, {
      cwd: root,
      encoding: 'utf8',
      timeout: BUILD_TIMEOUT_MS,
      maxBuffer: 16 << 20,
    });
    assert.equal(build.status, 0, `npm run build:agent failed\n${output(build)}`);
    console.log(`      ${build.stdout.trim().split('\n').pop()}`);
    assert.ok(existsSync(binary), `${binary} was not built`);

    tmp = mkdtempSync(join(tmpdir(), 'ferry-agent-binary-'));
    path = nodelessPath(join(tmp, 'bin'));
    cwd = join(tmp, 'cwd');
    mkdirSync(cwd);
  });

  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('runs in an environment with no node on PATH and no node_modules', () => {
    const which = nodeless(['which', 'node']);
    assert.notEqual(which.status, 0, `node is still on PATH: ${which.stdout.trim()}`);
    assert.equal(nodeless(['which', 'uname']).status, 0, 'the PATH lacks ordinary system tools');
    for (let dir = cwd; dirname(dir) !== dir; dir = dirname(dir)) {
      assert.ok(!existsSync(join(dir, 'node_modules')), `${dir}/node_modules exists`);
    }
  });

  it('--help exits 0 and lists join, run and status', () => {
    const r = nodeless([binary, '--help']);
    assert.equal(r.status, 0, output(r));
    const text = `${r.stdout}${r.stderr}`;
    for (const cmd of ['join', 'run', 'status']) {
      assert.match(text, new RegExp(`\\b${cmd}\\b`), `usage does not mention '${cmd}'\n${output(r)}`);
    }
  });

  it('status --state <empty dir> exits 3 and says it is not enrolled', () => {
    const state = join(tmp, 'state');
    mkdirSync(state);
    const r = nodeless([binary, 'status', '--state', state]);
    assert.equal(r.status, 3, output(r));
    assert.match(`${r.stdout}\n${r.stderr}`, /not enrolled/i, output(r));
  });

  /** Like nodeless(), without blocking the event loop (the controller runs in this process). */
  function nodelessAsync(argv: string[]): Promise<SpawnSyncReturns<string>> {
    return new Promise((resolve) => {
      const p = spawn('/usr/bin/env', ['-i', `PATH=${path}`, ...argv], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      p.on('close', (status, signal) => resolve({ status, signal, stdout, stderr, pid: p.pid ?? 0, output: [] }));
    });
  }

  it('joins, runs a session, reports status and exits cleanly on SIGTERM', async () => {
    const c = await startController();
    const state = join(tmp, 'enrolled');
    try {
      const j = await nodelessAsync([binary, 'join', await joinString(c, { labels: { role: 'edge' } }), '--state', state]);
      assert.equal(j.status, 0, output(j));
      assert.match(j.stdout, /enrolled as ag-/);
      const run = spawn('/usr/bin/env', ['-i', `PATH=${path}`, binary, 'run', '--state', state], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
      let log = '';
      run.stdout.on('data', (d: Buffer) => { log += d.toString(); });
      const exited = new Promise<number | null>((resolve) => run.on('exit', (code) => resolve(code)));
      await waitFor(() => c.ctx.sessions.size === 1, 15_000, 'binary agent connected');
      const st = await nodelessAsync([binary, 'status', '--state', state]);
      assert.equal(st.status, 0, output(st));
      assert.match(st.stdout, /running \(pid \d+\), connected/);
      run.kill('SIGTERM');
      assert.equal(await exited, 0, log);
      assert.match(log, /"msg":"stopping"/);
      await waitFor(() => c.ctx.sessions.size === 0, 5_000, 'session closed');
    } finally {
      await cleanup(c);
    }
  });
});
