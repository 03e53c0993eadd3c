import assert from 'node:assert/strict';
import { join } from 'node:path';
import { repoRoot, run } from '../support/proc.js';

// The README's first command must keep working: `npm run demo` is this
// script after a build. It is Ferry's main job end to end on this machine.
describe('npm run demo', function () {
  this.timeout(180_000);

  it('enrolls three agents, execs, pushes a signed bundle and plan, rolls it out canary first, and a check run changes nothing', async () => {
    const r = await run([process.execPath, join(repoRoot(), 'build', 'scripts', 'demo.js')], { timeoutMs: 170_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const all = `${r.stdout}\n${r.stderr}`; // tables on stdout, summaries on stderr
    assert.match(all, /3 agent\(s\), 3 online/);
    assert.match(all, /3 host\(s\): 3 ok, 0 failed, 0 offline/);
    assert.match(all, /pushed edge-demo:1\.0\.0/);
    assert.match(all, /edge-1 +1 +succeeded[\s\S]*edge-2 +2 +succeeded/);
    assert.match(all, /edgeStream:\n +enable: true\n[\s\S]*server: 10\.0\.0\.5:10004/);
    assert.match(all, /2 host\(s\): 2 succeeded, 0 failed, 0 offline \(check mode: nothing was changed\)/);
    assert.doesNotMatch(all, /edge-\d +succeeded +[1-9]/, 'the check run found nothing to change');
  });
});
