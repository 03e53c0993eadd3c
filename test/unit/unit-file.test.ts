import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, type FerryError } from '../../common/src/errors.js';
import { MALLOC_ENV } from '../../common/src/malloc-env.js';
import { installService, renderUnit, stopService, uninstallService, type ServiceHost } from '../../agent/src/service/unit-file.js';
import { renderControllerUnit } from '../../controller/src/service/controller-unit.js';
import { quoteExecArg } from '../../common/src/service/systemd-service.js';

describe('agent systemd unit', () => {
  const base = { command: ['/usr/local/bin/ferry-agent'], stateDir: '/var/lib/ferry-agent', unitDir: '/etc/systemd/system', name: 'ferry-agent' };

  it('runs the agent on its state directory and does not restart it when retrying is pointless', () => {
    const u = renderUnit(base);
    assert.match(u, /^ExecStart=\/usr\/local\/bin\/ferry-agent run --state \/var\/lib\/ferry-agent$/m);
    assert.match(u, /^RestartPreventExitStatus=3 4$/m);
  });

  it('starts the agent with the glibc malloc settings for staging (read by glibc before any code runs)', () => {
    const u = renderUnit(base);
    for (const [k, v] of Object.entries(MALLOC_ENV)) assert.match(u, new RegExp(`^Environment=${k}=${v}$`, 'm'));
    assert.equal(Object.keys(MALLOC_ENV).length, 3);
  });

  it('passes the settings file install-service was given to the service', () => {
    const u = renderUnit({ ...base, configFile: '/etc/ferry/agent settings.yaml' });
    assert.match(u, /^ExecStart=\/usr\/local\/bin\/ferry-agent run --state \/var\/lib\/ferry-agent --config "\/etc\/ferry\/agent settings.yaml"$/m);
  });
});

describe('agent service install and uninstall', () => {
  /** A host whose root-ness and systemd we choose; records systemctl calls. */
  function fakeHost(o: { root?: boolean; systemd?: string } = {}) {
    const calls: string[] = [];
    const host: ServiceHost = {
      isRoot: () => o.root ?? true,
      systemdProblem: () => o.systemd,
      systemctl: async (args) => { calls.push(args.join(' ')); return { exitCode: 0, output: '' }; },
    };
    return { host, calls };
  }
  const opts = (unitDir: string) => ({ command: ['/usr/local/bin/ferry-agent'], stateDir: '/var/lib/ferry-agent', unitDir, name: 'ferry-agent' });

  it('refuses before writing anything when not root, or when systemd is not running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-unit-'));
    try {
      await assert.rejects(installService(opts(dir), true, fakeHost({ root: false }).host),
        (e: FerryError) => e.code === ErrorCode.InvalidArgument && /install-service must run as root/.test(e.message) && /sudo/.test(e.hint ?? ''));
      const noSystemd = fakeHost({ systemd: 'systemd is not running on this host (no /run/systemd/system)' });
      await assert.rejects(installService(opts(dir), true, noSystemd.host),
        (e: FerryError) => e.code === ErrorCode.InvalidArgument && /systemd is not running/.test(e.message));
      assert.deepEqual(readdirSync(dir), []);
      assert.deepEqual(noSystemd.calls, []);
      // Only writing the unit (--no-start, e.g. into an image) does not need a running systemd.
      await installService(opts(dir), false, noSystemd.host);
      assert.deepEqual(readdirSync(dir), ['ferry-agent.service']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('installs, then uninstalls (disable --now, remove, daemon-reload), and a second uninstall changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-unit-'));
    try {
      const { host, calls } = fakeHost();
      await installService(opts(dir), true, host);
      assert.deepEqual(calls.splice(0), ['daemon-reload', 'enable --now ferry-agent.service']);
      assert.equal(await uninstallService(dir, 'ferry-agent', host), true);
      assert.deepEqual(calls.splice(0), ['disable --now ferry-agent.service', 'daemon-reload']);
      assert.equal(existsSync(join(dir, 'ferry-agent.service')), false);
      assert.equal(await uninstallService(dir, 'ferry-agent', host), false);
      assert.deepEqual(calls, []);
      await assert.rejects(uninstallService(dir, 'ferry-agent', fakeHost({ root: false }).host), /uninstall-service must run as root/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops the service for reset only when its unit is installed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-unit-'));
    try {
      // No unit: nothing to stop, and neither root nor systemd is needed.
      assert.equal(await stopService(dir, 'ferry-agent', fakeHost({ root: false, systemd: 'no' }).host), false);
      const { host, calls } = fakeHost();
      await installService(opts(dir), false, host);
      assert.equal(await stopService(dir, 'ferry-agent', host), true);
      assert.deepEqual(calls, ['stop ferry-agent.service']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('controller systemd unit', () => {
  const base = { command: ['/usr/bin/node', '/opt/ferry/bin/ferry.js'], startArgs: ['--data', '/var/lib/ferry'], dataDir: '/var/lib/ferry', adminSocket: '/var/lib/ferry/admin.sock', readPaths: [], lowestPort: 7443 };

  it('writes only the data directory, with no capabilities, and is not restarted on a configuration error', () => {
    const u = renderControllerUnit(base);
    assert.match(u, /^ExecStart=\/usr\/bin\/node \/opt\/ferry\/bin\/ferry\.js controller start --data \/var\/lib\/ferry$/m);
    assert.deepEqual(u.match(/^ReadWritePaths=.*$/gm), ['ReadWritePaths=/var/lib/ferry']);
    assert.match(u, /^ProtectSystem=strict$/m);
    assert.match(u, /^ProtectHome=yes$/m);
    assert.match(u, /^CapabilityBoundingSet=$/m);
    assert.doesNotMatch(u, /AmbientCapabilities/);
    assert.match(u, /^NoNewPrivileges=yes$/m);
    assert.match(u, /^RestartPreventExitStatus=2$/m);
    assert.doesNotMatch(u, /MemoryDenyWriteExecute/, 'Node\'s JIT needs writable code pages');
    for (const [k, v] of Object.entries(MALLOC_ENV)) assert.match(u, new RegExp(`^Environment=${k}=${v}$`, 'm'), 'the glibc malloc settings for serving chunks');
  });

  it('keeps CAP_NET_BIND_SERVICE only for a port below 1024', () => {
    const u = renderControllerUnit({ ...base, lowestPort: 443 });
    assert.match(u, /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m);
    assert.match(u, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
  });

  it('opens a chunk directory outside the data directory (a replica\'s shared storage), and none when the chunks are under it', () => {
    const shared = renderControllerUnit({ ...base, chunkDir: '/srv/ferry-chunks', startArgs: [...base.startArgs, '--chunks', '/srv/ferry-chunks'] });
    assert.deepEqual(shared.match(/^ReadWritePaths=.*$/gm), ['ReadWritePaths=/var/lib/ferry', 'ReadWritePaths=/srv/ferry-chunks']);
    assert.match(shared, /^ExecStart=.* --chunks \/srv\/ferry-chunks$/m);
    const own = renderControllerUnit({ ...base, chunkDir: '/var/lib/ferry/chunks' });
    assert.deepEqual(own.match(/^ReadWritePaths=.*$/gm), ['ReadWritePaths=/var/lib/ferry']);
  });

  it('opens the admin socket\'s own directory, and leaves home directories reachable when the program or data lives there', () => {
    const other = renderControllerUnit({ ...base, adminSocket: '/srv/ferry-sock/admin.sock' });
    assert.deepEqual(other.match(/^ReadWritePaths=.*$/gm), ['ReadWritePaths=/var/lib/ferry', 'ReadWritePaths=/srv/ferry-sock']);
    const run = renderControllerUnit({ ...base, adminSocket: '/run/ferry/admin.sock' });
    assert.match(run, /^RuntimeDirectory=ferry$/m);
    assert.deepEqual(run.match(/^ReadWritePaths=.*$/gm), ['ReadWritePaths=/var/lib/ferry']);
    assert.match(renderControllerUnit({ ...base, command: ['/usr/bin/node', '/home/ops/ferry/bin/ferry.js'] }), /^ProtectHome=read-only$/m);
    assert.doesNotMatch(renderControllerUnit({ ...base, dataDir: '/root/ferry', adminSocket: '/root/ferry/admin.sock' }), /ProtectHome/);
  });
});

describe('systemd command-line quoting (quoteExecArg)', () => {
  it('leaves plain paths alone, quotes spaces and quotes, and keeps % and $ literal (systemd expands them even in quotes)', () => {
    assert.equal(quoteExecArg('/usr/local/bin/ferry-agent'), '/usr/local/bin/ferry-agent');
    assert.equal(quoteExecArg('/opt/ferry agent/bin'), '"/opt/ferry agent/bin"');
    assert.equal(quoteExecArg('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(quoteExecArg('/data/50%'), '/data/50%%');
    assert.equal(quoteExecArg('/p/$HOME'), '"/p/$$HOME"');
  });
});
