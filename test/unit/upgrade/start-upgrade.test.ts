// Every refusal of the first half of a self-upgrade (start-upgrade.ts), with
// a fake systemd and real files in a temp dir: each one says what and what
// next, is recorded as the last outcome (so the controller hears of it), and
// leaves the running version untouched. Then the happy path's files.
import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { platformArch } from '../../../common/src/arch.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import { startUpgrade, type StartUpgradeOptions } from '../../../agent/src/upgrade/start-upgrade.js';
import type { UpgradeHost } from '../../../agent/src/upgrade/upgrade-host.js';
import { loadUpgradeState, updateUpgradeState, UpgradePaths } from '../../../agent/src/upgrade/upgrade-state.js';
import { tempDir } from '../../support/fixtures.js';

const UNIT = `ferry-agent-unittest-${process.pid}.service`;

describe('starting a self-upgrade: refusals and the installed files (agent/src/upgrade/start-upgrade.ts)', () => {
  let dir = '';
  let link = '';
  let source = '';
  let described: { version?: string; arch?: string } | 'crash' = {};
  let single = true;
  let noUnit = false;
  const calls: string[][] = [];

  const host: UpgradeHost = {
    get unitDir() { return join(dir, 'systemd'); },
    ownUnit: () => UNIT, launchPath: () => link, isSingleBinary: () => single,
    systemctl: async (args) => {
      calls.push(args);
      if (args[0] === 'show' && noUnit) return { exitCode: 1, output: `Unit ${UNIT} could not be found.` };
      return args[0] === 'show' ? { exitCode: 0, output: `{ path=${link} ; argv[]=${link} run ; ignore_errors=no }` } : { exitCode: 0, output: '' };
    },
    systemdRun: async (unit, argv) => { calls.push(['systemd-run', unit, ...argv]); return { exitCode: 0, output: '' }; },
    unitState: async () => ({ activeState: 'inactive', subState: 'dead', nRestarts: 0, mainPid: 0, execMainStatus: '' }),
    journalTail: async () => [],
    describeBinary: async () => (described === 'crash'
      ? { exitCode: 127, stdout: '', stderr: 'cannot execute binary file: Exec format error' }
      : { exitCode: 0, stdout: JSON.stringify(described), stderr: '' }),
  };
  const opts = (o: Partial<StartUpgradeOptions> = {}): StartUpgradeOptions => ({
    stateDir: dir, upgradeId: 'up-1', source, unit: UNIT, host, holdAt: undefined, statfs: async () => ({ bavail: 1 << 30, bsize: 4096 }), ...o,
  });

  beforeEach(() => {
    dir = tempDir('ferry-upgrade-start-');
    link = join(dir, 'ferry-agent');
    source = join(dir, 'new-agent');
    writeFileSync(link, 'running binary');
    writeFileSync(source, 'new binary');
    described = { version: '9.9.9', arch: platformArch() };
    single = true;
    noUnit = false;
    calls.length = 0;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function refused(o: StartUpgradeOptions, message: RegExp, hint: RegExp, code: string = ErrorCode.UpgradeRefused): Promise<void> {
    const err = await startUpgrade(o).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof FerryError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, message);
    assert.match(err.hint ?? '', hint);
    assert.equal(readFileSync(link, 'utf8'), 'running binary', 'the running binary is untouched');
    assert.ok(!lstatSync(link).isSymbolicLink());
    assert.ok(!calls.some((c) => c[0] === 'systemd-run'));
  }

  it('refuses a binary that does not run here, and records the refusal for the controller', async () => {
    described = 'crash';
    await refused(opts(), /does not run on this host \(`version --json` exited 127\): cannot execute binary file/, /built for this architecture/);
    const last = loadUpgradeState(dir).last!;
    assert.equal(last.outcome, 'refused');
    assert.equal(last.errorCode, ErrorCode.UpgradeRefused);
  });

  it('refuses a binary for another architecture', async () => {
    described = { version: '9.9.9', arch: platformArch() === 'arm64' ? 'amd64' : 'arm64' };
    await refused(opts(), /is built for (arm64|amd64), this host is/, new RegExp(`ferry-agent-linux-${platformArch()}`));
  });

  it('refuses a binary whose version is not the release\'s, or not a version', async () => {
    await refused(opts({ expectVersion: '9.9.8' }), /reports version 9\.9\.9, but the release is 9\.9\.8/, /rebuild or re-sign/);
    described = { version: 'latest', arch: platformArch() };
    await refused(opts(), /reports version "latest": "latest" is not a version/, /rebuild/);
  });

  it('refuses the version already running', async () => {
    described = { version: FERRY_VERSION, arch: platformArch() };
    await refused(opts(), new RegExp(`already runs ferry-agent ${FERRY_VERSION.replace(/\./g, '\\.')}`), /nothing to do/);
  });

  it('refuses a version that failed here before unless asked, and an upgrade while one is in flight', async () => {
    updateUpgradeState(dir, () => ({ previous: '', failed: { '9.9.9': { upgradeId: 'up-0', atMs: 0, reason: 'the new version exited' } } }));
    await refused(opts(), /9\.9\.9 was rolled back on this host at 1970-01-01T00:00:00\.000Z \(the new version exited\); it is not tried again by itself/, /--retry-failed/);
    const d = loadUpgradeState(dir);
    updateUpgradeState(dir, () => ({ ...d, pending: { id: 'up-9', from: 'a', to: 'b', link, fromBinary: 'x', toBinary: 'y', unit: UNIT, watcherUnit: 'w', phase: 'switched', windowMs: 1 } }));
    await refused(opts({ retryFailed: true }), /an upgrade to b \(up-9\) is already in progress/, /wait for it to commit or roll back/);
  });

  it('refuses when the agent is not the single binary', async () => {
    single = false;
    await refused(opts(), /runs from node and a script/, /install the single binary/);
  });

  it('refuses when the agent is not installed as a systemd service', async () => {
    noUnit = true;
    await refused(opts(), new RegExp(`cannot tell which program systemd runs for ${UNIT.replace(/\./g, '\\.')}: Unit .* could not be found`), /ferry-agent install-service/);
  });

  it('refuses when the disk cannot hold the new binary and a copy of the running one (DISK_FULL, what to free)', async () => {
    await refused(opts({ statfs: async () => ({ bavail: 10, bsize: 4096 }) }), /not enough free space in .*: the new agent binary and a copy of the running one need/, /free at least/, ErrorCode.DiskFull);
  });

  it('installs versioned binaries with completion markers, switches by symlink, and hands over to a watcher via systemd-run', async () => {
    const started = await startUpgrade(opts({ windowMs: 30_000, now: () => 1_000 }));
    const p = new UpgradePaths(dir);
    assert.deepEqual([started.from, started.to, started.deadlineMs], [FERRY_VERSION, '9.9.9', 31_000]);
    assert.equal(readlinkSync(link), p.binary('9.9.9'));
    assert.equal(readFileSync(p.binary('9.9.9'), 'utf8'), 'new binary');
    assert.equal(readFileSync(p.binary(FERRY_VERSION), 'utf8'), 'running binary', 'the running version is kept for rollback');
    for (const v of ['9.9.9', FERRY_VERSION]) assert.match(readFileSync(p.marker(v), 'utf8'), /^[0-9a-f]{64}\n$/);
    const d = loadUpgradeState(dir);
    assert.equal(d.pending?.phase, 'switched');
    assert.equal(d.last?.outcome, 'in-progress');
    const run = calls.find((c) => c[0] === 'systemd-run')!;
    assert.deepEqual(run.slice(2), [p.binary(FERRY_VERSION), 'upgrade-watch', '--state', dir], 'the watcher is the old binary');
    assert.ok(calls.some((c) => c[0] === 'daemon-reload'), 'the guard drop-in was installed');
    assert.match(readFileSync(join(dir, 'systemd', `${UNIT}.d`, 'ferry-upgrade-guard.conf'), 'utf8'),
      new RegExp(`ExecStartPre=-${p.binary(FERRY_VERSION).replace(/\./g, '\\.')} upgrade-guard --state `));
  });
});
