import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { loadUpgradeState } from '../../../agent/src/upgrade/upgrade-state.js';
import { tempDir } from '../../support/fixtures.js';

/** `node -e` in a child: `n` read-change-writes of the state, each adding one failed version named after the child. */
function writer(dir: string, name: string, n: number): Promise<number | null> {
  const mod = new URL('../../../agent/src/upgrade/upgrade-state.js', import.meta.url).href;
  const code = `const { updateUpgradeState } = await import(${JSON.stringify(mod)});
for (let i = 0; i < ${n}; i++) updateUpgradeState(${JSON.stringify(dir)}, (d) => ({ ...d, failed: { ...d.failed, ['${name}-' + i]: { upgradeId: 'u', atMs: i, reason: 'r' } } }));`;
  const c = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'ignore', 'inherit'] });
  return new Promise((res) => c.once('exit', (code) => res(code)));
}

describe('upgrade state: one writer at a time across processes (agent/src/upgrade/upgrade-state.ts)', () => {
  it('read-change-writes of two processes at once lose nothing (the agent, the watcher and the CLI are separate processes)', async function () {
    this.timeout(60_000);
    const dir = tempDir('ferry-upg-lock-');
    try {
      const n = 150;
      assert.deepEqual(await Promise.all([writer(dir, 'a', n), writer(dir, 'b', n)]), [0, 0]);
      const failed = Object.keys(loadUpgradeState(dir).failed);
      assert.equal(failed.length, 2 * n, `lost updates: ${2 * n - failed.length}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
