import assert from 'node:assert/strict';
import { ARCHES, archProblem, platformArch } from '../../common/src/arch.js';
import { collectFacts } from '../../agent/src/facts.js';

describe('architecture names: one mapping to image-platform names', () => {
  it("maps Node's and uname's names to the names bundles use, and keeps those as they are", () => {
    const cases: Array<[string, string]> = [
      ['x64', 'amd64'], ['x86_64', 'amd64'], ['arm64', 'arm64'], ['aarch64', 'arm64'], ['ia32', '386'], ['i686', '386'],
      ['arm', 'arm'], ['armv7l', 'arm/v7'], ['ppc64', 'ppc64le'], ['s390x', 's390x'], ['riscv64', 'riscv64'], ['loong64', 'loong64'],
      ['amd64', 'amd64'], ['386', '386'], ['arm/v7', 'arm/v7'],
    ];
    for (const [from, to] of cases) {
      assert.equal(platformArch(from), to, from);
      assert.equal(archProblem(platformArch(from)), undefined, `${from} maps to a name bundles accept`);
    }
    assert.equal(platformArch('sparc'), 'sparc', 'an unknown name passes through, to be reported rather than hidden');
  });

  it('every name Node can report on Linux maps to a bundle architecture', () => {
    for (const node of ['x64', 'arm64', 'arm', 'ia32', 'ppc64', 's390x', 'riscv64', 'loong64']) {
      const base = platformArch(node).split('/')[0]!;
      assert.ok(ARCHES.has(base), `${node} → ${platformArch(node)}`);
    }
  });

  it('names the same architecture in bundle configs as in host facts, suggesting the mapping for aliases', () => {
    assert.match(archProblem('x64')!, /unknown architecture "x64" \(did you mean amd64\?\)/);
    assert.match(archProblem('aarch64')!, /did you mean arm64\?/);
  });

  it("reports this host's facts.arch in bundle terms, not Node's", async function () {
    this.timeout(30_000);
    const facts = await collectFacts();
    assert.equal(facts.arch, platformArch(process.arch));
    assert.equal(archProblem(facts.arch), undefined, `facts.arch "${facts.arch}" is a bundle architecture name`);
    if (process.arch === 'x64') assert.equal(facts.arch, 'amd64');
  });
});
