import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DirLock, processIdentity, processStartTime } from '../../common/src/dir-lock.js';
import { FerryError } from '../../common/src/errors.js';

const opts = { owner: 'a test', what: 'the test directory', hint: 'stop it' };

/** A child that lives until its stdin closes: a real, separate process to hold or lose locks. */
function sleeper(): { proc: ChildProcess; exited: Promise<void> } {
  const proc = spawn(process.execPath, ['-e', 'process.stdin.resume(); process.stdin.on("end", () => process.exit(0))'], { stdio: ['pipe', 'ignore', 'ignore'] });
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  return { proc, exited };
}

/** The pid of a process that has already exited. */
async function deadPid(): Promise<{ pid: number; startTime: string; bootId: string }> {
  const s = sleeper();
  const id = processIdentity(s.proc.pid!);
  s.proc.kill('SIGKILL');
  await s.exited;
  return id;
}

function lockFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith('ferry.lock.')).sort();
}

describe('DirLock: one process per directory', () => {
  let dir: string;
  const children: ChildProcess[] = [];
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ferry-lock-')); });
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('is exclusive, names the holder, is 0600, and can be taken again after release', () => {
    const old = process.umask(0);
    let a: DirLock;
    try {
      a = DirLock.acquire(dir, opts);
    } finally {
      process.umask(old);
    }
    assert.equal(statSync(a.path).mode & 0o777, 0o600);
    assert.throws(() => DirLock.acquire(dir, opts), (e: FerryError) => {
      assert.equal(e.code, 'CONFIG');
      assert.ok(e.message.includes(dir) && e.message.includes(`pid ${process.pid}`), e.message);
      assert.equal(e.hint, 'stop it');
      return true;
    });
    assert.equal(DirLock.holder(dir)?.pid, process.pid);
    a.release();
    a.release();
    assert.equal(DirLock.holder(dir), undefined);
    const b = DirLock.acquire(dir, opts);
    assert.deepEqual(lockFiles(dir), [`ferry.lock.${b.gen}`], 'older generations are cleaned up');
    b.release();
  });

  it('takes over from a holder that died (kill -9 leaves its file behind)', async () => {
    const s = sleeper();
    children.push(s.proc);
    const held = DirLock.acquire(dir, { ...opts, as: processIdentity(s.proc.pid!) });
    assert.throws(() => DirLock.acquire(dir, opts), new RegExp(`pid ${s.proc.pid}`));
    s.proc.kill('SIGKILL');
    await s.exited;
    const mine = DirLock.acquire(dir, opts);
    assert.ok(mine.gen > held.gen);
    assert.deepEqual(lockFiles(dir), [`ferry.lock.${mine.gen}`]);
    mine.release();
  });

  it('takes over when the pid now belongs to another process (start time differs) or predates a reboot', () => {
    const s = sleeper();
    children.push(s.proc);
    const real = processIdentity(s.proc.pid!);
    assert.match(real.startTime, /^\d+$/);
    DirLock.acquire(dir, { ...opts, as: { ...real, startTime: String(Number(real.startTime) + 1) } });
    const a = DirLock.acquire(dir, opts);
    a.release();
    DirLock.acquire(dir, { ...opts, as: { ...real, bootId: 'a-boot-before-this-one' } });
    const b = DirLock.acquire(dir, opts);
    b.release();
    DirLock.acquire(dir, { ...opts, as: real });
    assert.throws(() => DirLock.acquire(dir, opts), /in use by a test/);
  });

  it('treats a damaged lock file as stale', () => {
    writeFileSync(join(dir, 'ferry.lock.5'), 'not json');
    const a = DirLock.acquire(dir, opts);
    assert.equal(a.gen, 6);
    a.release();
  });

  it('reads start times from /proc, and none for a pid that does not exist', () => {
    assert.equal(processStartTime(process.pid), processIdentity().startTime);
    assert.equal(processStartTime(2 ** 22 + 7), undefined);
  });

  it('lets only one of two starters that both found the same stale lock win', async () => {
    DirLock.acquire(dir, { ...opts, as: await deadPid() });
    const live = sleeper();
    children.push(live.proc);
    let raced = false;
    // The other starter claims generation 2 between our judging 1 stale and our claim.
    assert.throws(() => DirLock.acquire(dir, {
      ...opts,
      beforeClaim: (gen) => {
        if (raced) return;
        raced = true;
        assert.equal(gen, 2);
        DirLock.acquire(dir, { ...opts, as: processIdentity(live.proc.pid!) });
      },
    }), new RegExp(`pid ${live.proc.pid}`));
  });

  it('backs off when it acted on an old view of the directory (its generation is no longer the highest)', async () => {
    DirLock.acquire(dir, { ...opts, as: await deadPid() });
    const dead2 = await deadPid();
    const live = sleeper();
    children.push(live.proc);
    let raced = false;
    // While we are slow, one starter takes 2 and dies, a third takes 3 and
    // deletes 1 and 2: our claim of 2 succeeds, but 3 is live above it.
    assert.throws(() => DirLock.acquire(dir, {
      ...opts,
      beforeClaim: () => {
        if (raced) return;
        raced = true;
        DirLock.acquire(dir, { ...opts, as: dead2 });
        DirLock.acquire(dir, { ...opts, as: processIdentity(live.proc.pid!) });
        assert.deepEqual(lockFiles(dir), ['ferry.lock.3']);
      },
    }), new RegExp(`pid ${live.proc.pid}`));
    assert.deepEqual(lockFiles(dir), ['ferry.lock.3'], 'the loser removed its claim');
  });

  it('gives the lock to exactly one of several processes starting at once over a stale lock', async function () {
    this.timeout(30_000);
    const moduleUrl = new URL('../../common/src/dir-lock.js', import.meta.url).href;
    const script = `
      import { DirLock } from ${JSON.stringify(moduleUrl)};
      import { createInterface } from 'node:readline';
      const rl = createInterface({ input: process.stdin });
      console.log('ready');
      rl.once('line', () => {
        try {
          DirLock.acquire(process.argv[1], { owner: 'racer', what: 'dir', hint: '' });
          console.log('held');
        } catch (e) {
          console.log(e.code === 'CONFIG' ? 'refused' : 'error ' + e.message);
        }
        rl.on('close', () => process.exit(0));
      });`;
    for (let round = 0; round < 3; round++) {
      DirLock.acquire(dir, { ...opts, as: await deadPid() }); // a stale lock for all to judge
      const racers = Array.from({ length: 6 }, () => spawn(process.execPath, ['--input-type=module', '-e', script, dir], { stdio: ['pipe', 'pipe', 'inherit'] }));
      children.push(...racers);
      const lines = racers.map((p) => {
        const rl = createInterface({ input: p.stdout! });
        const it = rl[Symbol.asyncIterator]();
        return async () => String((await it.next()).value);
      });
      assert.deepEqual(await Promise.all(lines.map((next) => next())), racers.map(() => 'ready'));
      for (const p of racers) p.stdin!.write('go\n');
      const outcomes = await Promise.all(lines.map((next) => next()));
      assert.deepEqual(outcomes.filter((o) => o === 'held').length, 1, outcomes.join(', '));
      assert.deepEqual(outcomes.filter((o) => o === 'refused').length, 5, outcomes.join(', '));
      const winner = racers[outcomes.indexOf('held')]!;
      assert.equal(DirLock.holder(dir)?.pid, winner.pid);
      for (const p of racers) p.stdin!.end();
      await Promise.all(racers.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.on('exit', r)))));
    }
  });
});
