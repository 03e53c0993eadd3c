import assert from 'node:assert/strict';
import { agentCompat, compareVersions, parseVersion, versionProblem } from '../../common/src/version.js';

describe('version rules (common/src/version.ts)', () => {
  it('parses MAJOR.MINOR.PATCH[-pre] and nothing else', () => {
    assert.deepEqual(parseVersion('1.2.3-rc.1'), { major: 1, minor: 2, patch: 3, pre: 'rc.1' });
    for (const bad of ['1.2', 'v1.2.3', '01.2.3', '1.2.3.4', '', 'latest']) assert.equal(parseVersion(bad), undefined, bad);
    assert.match(versionProblem('v1.2')!, /"v1\.2" is not a version: use MAJOR\.MINOR\.PATCH/);
  });

  it('orders versions numerically, a pre-release before its release', () => {
    const sorted = ['0.10.0', '0.2.0', '0.2.0-rc.1', '1.0.0', '0.2.1'].sort(compareVersions);
    assert.deepEqual(sorted, ['0.2.0-rc.1', '0.2.0', '0.2.1', '0.10.0', '1.0.0']);
  });

  it('accepts the same minor, and one minor behind with advice', () => {
    assert.deepEqual(agentCompat('0.3.1', '0.3.0').ok, false); // newer patch is still newer
    assert.deepEqual(agentCompat('0.3.0', '0.3.4'), { ok: true, behind: false });
    const behind = agentCompat('0.2.9', '0.3.0');
    assert.equal(behind.ok, true);
    assert.match(behind.ok ? behind.advice ?? '' : '', /one minor version behind controller 0\.3\.0.*ferry agents upgrade --to 0\.3\.0/);
  });

  it('refuses agents more than one minor behind, of another major, newer, or unparsable — each with what to do', () => {
    const cases: Array<[string, string, string, RegExp]> = [
      ['0.1.0', '0.3.0', 'too-old', /install ferry-agent 0\.3\.0 on the host by hand/],
      ['1.9.0', '2.0.0', 'too-old', /one minor version at a time|by hand/],
      ['0.4.0', '0.3.0', 'newer', /upgrade the controller to 0\.4\.0 or later first/],
      ['t', '0.3.0', 'unknown', /install ferry-agent 0\.3\.0/],
    ];
    for (const [agent, controller, reason, hint] of cases) {
      const c = agentCompat(agent, controller);
      assert.equal(c.ok, false, `${agent} vs ${controller}`);
      if (!c.ok) {
        assert.equal(c.reason, reason);
        assert.match(c.hint, hint);
      }
    }
  });
});
