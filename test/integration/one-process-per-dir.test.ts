import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { DirLock } from '../../common/src/dir-lock.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, joinString, startController, tempDir, waitFor } from '../support/fixtures.js';
import { jsonLines } from '../support/json-lines.js';
import { daemon, repoRoot, run, type Daemon } from '../support/proc.js';

const root = repoRoot();
const ferryBin = join(root, 'bin', 'ferry.js');
const agentBin = join(root, 'bin', 'ferry-agent.js');

/** Exit code of `d`, or 'still running' after `ms` (the old behaviour this guards against). */
function exitWithin(d: Daemon, ms: number): Promise<number | null | 'still running'> {
  let t: NodeJS.Timeout;
  return Promise.race([d.exited, new Promise<'still running'>((r) => { t = setTimeout(() => r('still running'), ms); })])
    .finally(() => clearTimeout(t));
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('one process per directory (real ferry and ferry-agent processes)', function () {
  this.timeout(120_000);
  const procs: Daemon[] = [];
  after(() => { for (const p of procs) p.proc.kill('SIGKILL'); });

  it('a second `ferry controller start` on a data directory exits 2 naming it and the holder, never listens, and the first keeps working; after kill -9 a new start takes over', async () => {
    const dir = tempDir('ferry-one-ctl-');
    const data = join(dir, 'data');
    const ferry = (...args: string[]) => run([process.execPath, ferryBin, '--data', data, ...args]);
    const start = (listen: string) => {
      const d = daemon([process.execPath, ferryBin, 'controller', 'start', '--data', data, '--listen', listen, '--http-addr', '127.0.0.1:0']);
      procs.push(d);
      return d;
    };
    try {
      const first = start('127.0.0.1:0');
      await waitFor(() => /CA pin:\s+sha256:/.test(first.out()), 20_000, 'first controller banner');
      assert.equal((await ferry('token', 'create', '--ttl', '10m')).code, 0);

      const port = await freePort();
      const second = start(`127.0.0.1:${port}`);
      let listened = false;
      let watching = true;
      const watch = (async () => {
        while (watching && second.proc.exitCode === null && second.proc.signalCode === null) {
          if (await accepts(port)) listened = true;
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      const code = await exitWithin(second, 15_000);
      watching = false;
      await watch;
      assert.equal(code, 2, second.out());
      assert.equal(listened, false, 'the second controller never listened on its port');
      assert.match(second.out(), new RegExp(`error: the controller data directory ${data} is in use by a ferry controller \\(pid ${first.proc.pid}, since `));
      assert.match(second.out(), /hint: one controller per data directory/);

      // The first is untouched: its socket, its store.
      const ls = await ferry('token', 'ls', '--json');
      assert.equal(ls.code, 0, ls.stderr);
      assert.equal(jsonLines(ls.stdout).length, 1);
      assert.equal((await ferry('token', 'create', '--ttl', '10m')).code, 0);

      first.proc.kill('SIGKILL');
      await first.exited;
      const third = start('127.0.0.1:0');
      await waitFor(() => /CA pin:\s+sha256:/.test(third.out()), 20_000, 'a new controller after kill -9');
      const after = await ferry('token', 'ls', '--json');
      assert.equal(after.code, 0, after.stderr);
      assert.equal(jsonLines(after.stdout).length, 2, 'same store');
      assert.equal(DirLock.holder(data)?.pid, third.proc.pid);
      third.proc.kill('SIGTERM');
      assert.equal(await third.exited, 0);
      assert.equal(DirLock.holder(data), undefined, 'a clean stop releases the directory');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a second `ferry-agent run` on a state directory exits 2 without touching the first session; join refuses to replace the identity under a running agent; after kill -9 a new run takes over', async () => {
    let c: Controller | undefined;
    const state = tempDir('ferry-one-agent-');
    const agent = (...args: string[]) => run([process.execPath, agentBin, ...args, '--state', state]);
    const runAgent = () => {
      const d = daemon([process.execPath, agentBin, 'run', '--state', state]);
      procs.push(d);
      return d;
    };
    try {
      c = await startController();
      const js = await joinString(c, { uses: 2 });
      const j = await agent('join', js);
      assert.equal(j.code, 0, j.stderr);
      const identityText = readFileSync(join(state, 'identity.json'), 'utf8');
      const id = (JSON.parse(identityText) as { agentId: string }).agentId;

      const first = runAgent();
      await waitFor(() => c!.ctx.sessions.get(id) !== undefined, 20_000, 'the first agent connected');
      const session = c.ctx.sessions.get(id);

      const second = runAgent();
      assert.equal(await exitWithin(second, 15_000), 2, second.out());
      assert.match(second.out(), new RegExp(`the agent state directory ${state} is in use by ferry-agent run \\(pid ${first.proc.pid}, since `));
      assert.equal(c.ctx.sessions.get(id), session, 'the first session was never replaced');

      const rejoin = await agent('join', js, '--force');
      assert.equal(rejoin.code, 2, rejoin.stderr);
      assert.match(rejoin.stderr, new RegExp(`in use by ferry-agent run \\(pid ${first.proc.pid}[\\s\\S]*hint: one ferry-agent per state directory`));
      assert.equal(readFileSync(join(state, 'identity.json'), 'utf8'), identityText, 'identity untouched');

      let status = await agent('status', '--json');
      await waitFor(async () => (status = await agent('status', '--json')).code === 0, 10_000, 'status: connected');
      assert.equal((JSON.parse(status.stdout) as { pid: number }).pid, first.proc.pid);

      first.proc.kill('SIGKILL');
      await first.exited;
      const notRunning = await agent('status');
      assert.equal(notRunning.code, 1);
      assert.match(notRunning.stdout, /agent:\s+not running/);
      const third = runAgent();
      await waitFor(() => { const s = c!.ctx.sessions.get(id); return s !== undefined && s !== session; }, 20_000, 'a new run after kill -9');
      assert.equal(DirLock.holder(state)?.pid, third.proc.pid);
      third.proc.kill('SIGTERM');
      assert.equal(await third.exited, 0);
      assert.equal(DirLock.holder(state), undefined, 'a clean stop releases the directory');
    } finally {
      await cleanup(c);
      rmSync(state, { recursive: true, force: true });
    }
  });
});
