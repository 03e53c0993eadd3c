import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BundleFile } from '../../../common/src/bundle/manifest.js';
import { FileHasher, HoldBudget } from '../../../agent/src/bundles/file-hasher.js';
import { seededBytes, sha, tempDir } from './fixtures.js';

describe('agent/bundles/file-hasher: whole-file sha256 from chunks written in any order', () => {
  const sizes = [1000, 2000, 1500, 3000, 500];
  const data = seededBytes(sizes.reduce((a, b) => a + b, 0), 11);
  const pieces: Buffer[] = [];
  const file: BundleFile = { path: 'f', mode: 0o644, size: data.length, sha256: sha(data), chunks: [] };
  let at = 0;
  for (const s of sizes) {
    const p = data.subarray(at, at + s);
    pieces.push(p);
    file.chunks.push({ digest: sha(p), size: s });
    at += s;
  }
  let dir: string;
  let part: string;
  beforeEach(async () => {
    dir = await tempDir();
    part = join(dir, 'part');
    await writeFile(part, data); // what the part file holds once every chunk is written
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const orders: Array<[string, number[], number]> = [
    ['in order', [0, 1, 2, 3, 4], 0],
    ['reversed, all held', [4, 3, 2, 1, 0], 1 << 20],
    ['reversed, nothing may be held (read back)', [4, 3, 2, 1, 0], 0],
    ['shuffled, a small budget', [2, 0, 4, 1, 3], 2500],
  ];
  for (const [name, order, limit] of orders) {
    it(`${name}: the digest of the file, and the budget returned`, async () => {
      const budget = new HoldBudget(limit);
      const h = new FileHasher(file, budget, [], part);
      for (const i of order) h.written(i, pieces[i]!);
      assert.deepEqual(await h.digest(), { sha256: file.sha256, size: file.size });
      assert.equal(budget.used, 0);
    });
  }

  it('a transient buffer is never held, and may be reused once its promise resolves', async () => {
    const budget = new HoldBudget(1 << 20);
    const h = new FileHasher(file, budget, [], part);
    const scratch = Buffer.alloc(4096);
    for (const i of [1, 0, 2, 4, 3]) {
      pieces[i]!.copy(scratch);
      await h.written(i, scratch.subarray(0, pieces[i]!.length), true);
      assert.equal(budget.used, 0);
      scratch.fill(0xee); // the caller reuses it
    }
    assert.deepEqual(await h.digest(), { sha256: file.sha256, size: file.size });
  });

  it('chunks present from an earlier stage are read back from the part file', async () => {
    const h = new FileHasher(file, new HoldBudget(1 << 20), [0, 3], part);
    for (const i of [4, 1, 2]) h.written(i, pieces[i]!);
    assert.deepEqual(await h.digest(), { sha256: file.sha256, size: file.size });
  });

  it('a damaged part file gives a different digest; after reset the repaired file hashes right', async () => {
    const bad = Buffer.from(data);
    bad[1500]! ^= 1; // inside chunk 1
    await writeFile(part, bad);
    const h = new FileHasher(file, new HoldBudget(0), [0, 1, 2, 3, 4], part);
    assert.notEqual((await h.digest()).sha256, file.sha256);
    await writeFile(part, data);
    h.reset([0, 2, 3, 4]);
    h.written(1, pieces[1]!);
    assert.equal((await h.digest()).sha256, createHash('sha256').update(data).digest('hex'));
  });
});
