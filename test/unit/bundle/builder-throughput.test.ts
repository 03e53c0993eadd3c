/**
 * Build throughput on a few hundred MiB, against plain sha256 over the same files (the floor:
 * every byte must be hashed at least once). Skipped unless FERRY_BENCH=1, because it writes
 * ~400 MiB to the temp dir:
 *   FERRY_BENCH=1 node scripts/run-tests.mjs builder-throughput
 * Files are read from the page cache (just written), so this measures CPU, not the disk.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildManifest, walkBundle } from '../../../common/src/bundle/builder.js';
import { makeDockerArchive, makeTar } from './make-image-tar.js';
import { seededBytes } from './prng.js';

const MiB = 1024 * 1024;

async function sha256Files(paths: string[]): Promise<void> {
  for (const p of paths) {
    const h = createHash('sha256');
    for await (const b of createReadStream(p, { highWaterMark: MiB }) as AsyncIterable<Buffer>) h.update(b);
    h.digest();
  }
}

async function best(label: string, mib: number, fn: () => Promise<unknown>): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    runs.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const s = Math.min(...runs);
  console.log(`      ${label.padEnd(44)} ${(mib / s).toFixed(0).padStart(5)} MiB/s  (${mib.toFixed(0)} MiB, best of 3: ${s.toFixed(2)} s)`);
  return mib / s;
}

(process.env.FERRY_BENCH ? describe : describe.skip)('bundle/builder throughput (FERRY_BENCH=1)', function () {
  this.timeout(600_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-bench-'));
    await mkdir(join(dir, 'bin'));
    await mkdir(join(dir, 'images'));
    await writeFile(join(dir, 'bin/k3s'), seededBytes(160 * MiB, 1));
    await writeFile(join(dir, 'bin/keadm'), seededBytes(96 * MiB, 2));
    for (let i = 0; i < 200; i++) await writeFile(join(dir, `bin/small-${i}.yaml`), seededBytes(40_000, 100 + i).toString('base64'));
    for (const [i, ref] of ['docker.io/kubeedge/cloudcore:v1.22.0', 'docker.io/rancher/mirrored-library-traefik:3.5.1'].entries()) {
      const layer = seededBytes(64 * MiB, 10 + i).toString('latin1');
      await writeFile(join(dir, `images/${i}.tar`), makeTar(makeDockerArchive([{ ref, layers: [{ 'blob.bin': layer }] }]).entries));
    }
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('buildManifest vs sha256 over the same bytes', async () => {
    const entries = await walkBundle(dir);
    const total = entries.reduce((n, e) => n + e.size, 0) / MiB;
    const images = entries.filter((e) => e.path.startsWith('images/'));
    const imagesMiB = images.reduce((n, e) => n + e.size, 0) / MiB;
    const plain = entries.filter((e) => !e.path.startsWith('images/'));
    console.log(`      ${entries.length} files, ${total.toFixed(0)} MiB (${imagesMiB.toFixed(0)} MiB in ${images.length} image tars)`);
    const sha = await best('sha256 only, all files', total, () => sha256Files(entries.map((e) => e.absPath)));
    const build = await best('buildManifest (walk + chunk + inspect)', total, () => buildManifest(dir, { name: 'b', version: '1' }));
    const shaPlain = await best('sha256 only, non-image files', total - imagesMiB, () => sha256Files(plain.map((e) => e.absPath)));
    const shaImg = await best('sha256 only, image tars', imagesMiB, () => sha256Files(images.map((e) => e.absPath)));
    console.log(`      => build is ${(sha / build).toFixed(2)}x the time of sha256 (plain ${shaPlain.toFixed(0)}, images ${shaImg.toFixed(0)} MiB/s sha256)`);
    const m = await buildManifest(dir, { name: 'b', version: '1' });
    assert.equal(m.images.length, 2);
  });
});
