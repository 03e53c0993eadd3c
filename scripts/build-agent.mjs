#!/usr/bin/env node
// Builds the agent as single executables (Node SEA), one per architecture,
// that need no node and no node_modules on the host:
//
//   esbuild (TS/ESM -> one CommonJS file, everything bundled; once)
//   -> node --experimental-sea-config   (preparation blob; with the V8 code
//                                        cache only for this machine's arch)
//   -> the target's node, stripped      (this node, or bin/node of the pinned
//                                        node-linux-<arch> npm package)
//   -> postject NODE_SEA_BLOB            -> chmod 755
//
// Usage: node scripts/build-agent.mjs [--arch LIST] [--entry FILE] [--out FILE]
//            [--out-dir DIR] [--if-stale] [--no-strip] [--no-code-cache]
//            [--agent-version V] [--test-fail-start] [--check]
//   --arch LIST      architectures to build, comma separated (default amd64,arm64)
//   --entry FILE     agent entry point (default agent/src/cli/main.ts)
//   --out-dir DIR    where dist files go (default dist): DIR/ferry-agent-linux-<arch>,
//                    and DIR/ferry-agent, a symlink to this machine's architecture
//   --out FILE       executable to write instead (only with a single --arch)
//   --if-stale       do nothing for a target newer than every bundled input
//   --no-strip       keep symbols in the embedded node (bigger, for debugging)
//   --no-code-cache  do not embed the V8 code cache (slower startup)
//   --agent-version V  the version the agent reports (default: common/src/version.ts);
//                    for release candidates and upgrade tests
//   --test-fail-start  a deliberately broken agent: `run` exits 70 at once (everything
//                    else works), the broken release of the upgrade rollback tests
//   --check          only report whether this node/platform can build a SEA
//                    (exit 0 = yes, exit 2 = no; the reason is printed)
//
// Intermediate files go to dist/.sea/<basename of OUT>/, downloaded runtimes to
// dist/.cache/ (see scripts/sea/runtimes.mjs). The V8 code cache is specific to
// the CPU that made it, so other architectures get a blob without it (a slower
// first start, same behaviour). The bundle is CommonJS
// because that is what Node 20 runs as a SEA main script, so the entry must not
// use top-level await; import.meta.{url,filename,dirname} are defined to point
// at the executable itself. Inside the executable require() only loads node
// built-ins, so the build fails if the bundle still needs any other module.
//
// Only node built-ins, esbuild's JS API, npm (to fetch a runtime) and tar are used here.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { isBuiltin } from 'node:module';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isHostArch, runtimeFor, stripFor, TARGETS } from './sea/runtimes.mjs';

const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = resolve(dirname(SCRIPT), '..');
const rel = (p) => {
  const r = relative(process.cwd(), p);
  return r.startsWith('..') ? p : r || '.';
};

class BuildError extends Error {}
const fail = (msg) => {
  throw new BuildError(msg);
};

// ---------------------------------------------------------------- arguments

const USAGE = 'usage: node scripts/build-agent.mjs [--arch LIST] [--entry FILE] [--out FILE] [--out-dir DIR] [--if-stale] [--no-strip] [--no-code-cache] [--agent-version V] [--test-fail-start] [--check]';

function parseCli() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        arch: { type: 'string', default: 'amd64,arm64' },
        entry: { type: 'string', default: 'agent/src/cli/main.ts' },
        out: { type: 'string' },
        'out-dir': { type: 'string', default: 'dist' },
        'if-stale': { type: 'boolean', default: false },
        'no-strip': { type: 'boolean', default: false },
        'no-code-cache': { type: 'boolean', default: false },
        'agent-version': { type: 'string' },
        'test-fail-start': { type: 'boolean', default: false },
        check: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    fail(`${err.message}\n${USAGE}`);
  }
  const v = parsed.values;
  // Relative paths are relative to the repo root, so `npm run build:agent` and
  // a test running from anywhere agree on where things are.
  const abs = (p) => (isAbsolute(p) ? p : resolve(ROOT, p));
  const arches = [...new Set(v.arch.split(',').map((a) => a.trim()).filter(Boolean))];
  const unknown = arches.filter((a) => !TARGETS[a]);
  if (!arches.length || unknown.length) {
    fail(`--arch ${JSON.stringify(v.arch)}: unknown architecture ${unknown.map((a) => JSON.stringify(a)).join(', ') || '(none given)'}; known: ${Object.keys(TARGETS).join(', ')}\n${USAGE}`);
  }
  if (v.out && arches.length !== 1) fail(`--out names one file, but --arch lists ${arches.length} architectures (${arches.join(', ')}); use --out-dir, or one --arch\n${USAGE}`);
  const outDir = abs(v['out-dir']);
  if (v['agent-version'] !== undefined && !/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(v['agent-version'])) {
    fail(`--agent-version ${JSON.stringify(v['agent-version'])} is not a version (MAJOR.MINOR.PATCH[-pre])\n${USAGE}`);
  }
  return {
    targets: arches.map((arch) => ({ arch, out: v.out ? abs(v.out) : join(outDir, `ferry-agent-linux-${arch}`) })),
    outDir: v.out ? undefined : outDir,
    entry: abs(v.entry),
    ifStale: v['if-stale'],
    strip: !v['no-strip'],
    codeCache: !v['no-code-cache'],
    agentVersion: v['agent-version'] ?? null,
    testFailStart: v['test-fail-start'],
    check: v.check,
    help: v.help,
  };
}

// ------------------------------------------------------------ SEA support

/** Returns null when this node can produce a SEA on this platform, else why not. */
function seaUnsupportedReason() {
  const [major] = process.versions.node.split('.').map(Number);
  if (major < 20) return `node ${process.versions.node} is too old for SEA (need >= 20)`;
  if (process.platform !== 'linux') {
    return `platform ${process.platform} is not supported by this script (linux only: macOS/Windows need codesign/signtool handling)`;
  }
  let bin;
  try {
    bin = readFileSync(process.execPath);
  } catch (err) {
    return `cannot read ${process.execPath}: ${err.message}`;
  }
  if (bin.includes(`${SEA_FUSE}:1`)) return `${process.execPath} is itself a single executable application`;
  if (!bin.includes(`${SEA_FUSE}:0`)) return `${process.execPath} has no SEA sentinel fuse (node built without SEA support)`;
  return null;
}

// ------------------------------------------------------------------ helpers

function run(label, cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  const shown = [cmd, ...args].map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ');
  if (r.error) {
    const hint = r.error.code === 'ENOENT' ? ` (is '${cmd}' installed and on PATH?)` : '';
    fail(`${label} failed: could not run ${shown}: ${r.error.message}${hint}`);
  }
  if (r.status !== 0) {
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
    fail(
      `${label} failed: ${shown}\n  exited with ${r.status ?? `signal ${r.signal}`}` +
        (output ? `\n${output.replace(/^/gm, '  | ')}` : ''),
    );
  }
  return r;
}

const mb = (n) => `${(n / 1024 / 1024).toFixed(1)} MB`;
const secs = (ms) => `${(ms / 1000).toFixed(1)}s`;

async function step(name, fn) {
  const t0 = performance.now();
  process.stdout.write(`  ${name} ... `);
  try {
    const note = await fn();
    console.log(`${secs(performance.now() - t0)}${note ? `  (${note})` : ''}`);
  } catch (err) {
    console.log('FAILED');
    throw err;
  }
}

// ---------------------------------------------------------------- esbuild

// Modules that must not end up as runtime require()s. Inside a SEA require()
// can only load node built-ins, so anything not bundled would fail anyway;
// these are replaced by small stand-ins instead:
//  - @grpc/proto-loader: grpc-js require()s it lazily only for the channelz and
//    ORCA admin services (and then reads .proto files next to grpc-js on disk).
//    The agent uses ts-proto generated services; stubbing keeps protobufjs
//    (~270 KB) out of the bundle.
//  - osx-/macos-temperature-sensor: optional macOS-only deps of
//    systeminformation, require()d inside try/catch; the stand-in throws like a
//    missing module would.
const STUBS = {
  '@grpc/proto-loader': `
    const fail = () => { throw new Error('@grpc/proto-loader is not bundled into ferry-agent (grpc-js channelz/ORCA admin services are unavailable)'); };
    module.exports = { load: fail, loadSync: fail, fromJSON: fail, loadFileDescriptorSetFromBuffer: fail, loadFileDescriptorSetFromObject: fail };`,
  'osx-temperature-sensor': `throw Object.assign(new Error("Cannot find module 'osx-temperature-sensor'"), { code: 'MODULE_NOT_FOUND' });`,
  'macos-temperature-sensor': `throw Object.assign(new Error("Cannot find module 'macos-temperature-sensor'"), { code: 'MODULE_NOT_FOUND' });`,
};

const stubPlugin = {
  name: 'ferry-sea-stubs',
  setup(b) {
    const filter = new RegExp(`^(${Object.keys(STUBS).map((s) => s.replace(/[/.-]/g, '\\$&')).join('|')})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'ferry-sea-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'ferry-sea-stub' }, (args) => ({ contents: STUBS[args.path], loader: 'js' }));
  },
};

// import.meta is empty in CJS output; these point at the executable, which is
// the only file a SEA really has. (In a SEA __filename is process.execPath.)
// (No "use strict" here: it would apply to every bundled CommonJS module.)
const BANNER = [
  'var __ferry_filename = typeof __filename === "string" ? __filename : process.execPath;',
  'var __ferry_dirname = require("node:path").dirname(__ferry_filename);',
  'var __ferry_import_meta_url = require("node:url").pathToFileURL(__ferry_filename).href;',
].join('\n');

async function bundle(esbuild, entry, outfile, metafile, agentVersion, testFailStart = false) {
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [entry],
      absWorkingDir: ROOT,
      outfile,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: `node${process.versions.node}`,
      // A SEA main script has no dynamic import() (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING),
      // so turn every import() into a require() of the bundled module or builtin.
      supported: { 'dynamic-import': false },
      packages: 'bundle',
      external: [],
      sourcemap: 'external', // next to the bundle, for reading stack traces
      legalComments: 'none',
      metafile: true,
      logLevel: 'silent',
      banner: { js: BANNER },
      define: {
        'import.meta.url': '__ferry_import_meta_url',
        'import.meta.filename': '__ferry_filename',
        'import.meta.dirname': '__ferry_dirname',
        // common/src/version.ts reports this instead of its constant when set.
        __FERRY_BUILD_VERSION__: agentVersion ? JSON.stringify(agentVersion) : 'undefined',
        // --test-fail-start: a deliberately broken release for upgrade tests (agent/src/cli/commands.ts).
        __FERRY_TEST_FAIL_START__: testFailStart ? 'true' : 'undefined',
      },
      plugins: [stubPlugin],
    });
  } catch (err) {
    const errors = err.errors ?? [];
    const text = errors.length
      ? (await esbuild.formatMessages(errors, { kind: 'error', color: false })).join('')
      : String(err.stack ?? err);
    const tla = errors.some((e) => /top-level await/i.test(e.text));
    fail(
      `esbuild failed to bundle ${rel(entry)}:\n${text.trimEnd()}` +
        (tla ? '\n  hint: Node 20 SEAs run CommonJS, which has no top-level await; wrap the entry in an async main().' : ''),
    );
  }
  writeFileSync(metafile, JSON.stringify(result.metafile));

  const warnings = result.warnings;
  if (warnings.length) {
    const text = await esbuild.formatMessages(warnings, { kind: 'warning', color: false });
    console.log(`\n${text.join('').trimEnd().replace(/^/gm, '    ')}`);
  }

  // Everything left external becomes a runtime require(); a SEA can only
  // satisfy those for node built-ins.
  const outMeta = Object.values(result.metafile.outputs).find((o) => o.entryPoint);
  const external = [...new Set((outMeta?.imports ?? []).filter((i) => i.external).map((i) => i.path))];
  const notBuiltin = external.filter((p) => !isBuiltin(p));
  if (notBuiltin.length) {
    fail(
      `the bundle still require()s non-builtin modules at runtime, which a SEA cannot load:\n` +
        notBuiltin.map((p) => `    ${p}`).join('\n') +
        `\n  bundle them, or add a stand-in to STUBS in scripts/build-agent.mjs`,
    );
  }

  // require() calls whose argument is not a string literal (esbuild only
  // reports these at debug level inside node_modules): list them so a new one
  // does not go unnoticed. They are harmless when guarded or unreachable.
  const code = readFileSync(outfile, 'utf8');
  const dynamic = [];
  const where = (i) => `${basename(outfile)}:${code.slice(0, i).split('\n').length}: ${code.slice(i, i + 60).split('\n')[0]}`;
  const re = /(?<![\w$.])require\s*\(\s*(?:\/\*[\s\S]*?\*\/\s*)*(?!["'`])/g;
  for (let m; (m = re.exec(code)); ) dynamic.push(where(m.index));
  // import() left behind (e.g. hidden in new Function()) fails in a SEA.
  for (let m, ri = /(?<![\w$.])import\s*\(/g; (m = ri.exec(code)); ) {
    const line = code.slice(code.lastIndexOf('\n', m.index) + 1, code.indexOf('\n', m.index));
    if (!/^\s*(?:async\s+)?import\s*\([^)]*\)\s*\{/.test(line)) dynamic.push(where(m.index)); // skip methods named import
  }
  const inputs = Object.keys(result.metafile.inputs).filter((p) => !p.startsWith('ferry-sea-stub:'));
  return {
    inputs: inputs.map((p) => resolve(ROOT, p)),
    note: `${inputs.length} inputs, ${mb(statSync(outfile).size)}, ${warnings.length} warnings` +
      (dynamic.length ? `, ${dynamic.length} non-literal require()/import()` : ''),
    dynamic,
  };
}

// ---------------------------------------------------------------- freshness

/** Intermediate files of one output (named and hashed by its path, so builds into other directories do not share them). */
function workDir(out) {
  return join(ROOT, 'dist', '.sea', `${basename(out)}-${createHash('sha256').update(out).digest('hex').slice(0, 8)}`);
}

/** What a target's manifest records; a change in any of these means a rebuild. */
function settingsOf(opts, t) {
  return { entry: opts.entry, out: t.out, arch: t.arch, node: process.version, strip: opts.strip, codeCache: t.codeCache, agentVersion: opts.agentVersion, testFailStart: opts.testFailStart };
}

function isFresh(opts, t, manifestPath) {
  if (!existsSync(t.out) || !existsSync(manifestPath)) return false;
  let m;
  try {
    m = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch {
    return false;
  }
  for (const [k, v] of Object.entries(settingsOf(opts, t))) if (m[k] !== v) return false;
  const built = statSync(t.out).mtimeMs;
  const seaDir = join(ROOT, 'scripts', 'sea');
  const deps = [
    ...m.inputs,
    SCRIPT,
    join(ROOT, 'package-lock.json'),
    ...(existsSync(seaDir) ? readdirSync(seaDir).filter((f) => f.endsWith('.mjs')).map((f) => join(seaDir, f)) : []),
  ];
  for (const f of deps) {
    if (!existsSync(f) || statSync(f).mtimeMs > built) return false;
  }
  return true;
}

// -------------------------------------------------------------------- build

/** Makes the preparation blob for `bundleFile` in `work` (with or without the code cache). */
function makeBlob(work, bundleFile, codeCache) {
  const seaConfig = join(work, 'sea-config.json');
  const blob = join(work, 'sea-prep.blob');
  rmSync(blob, { force: true });
  // Paths relative to `work` (the cwd below): the main path is the script
  // name that shows up in stack traces, so keep build-machine paths out.
  const config = {
    main: basename(bundleFile),
    output: basename(blob),
    disableExperimentalSEAWarning: true,
    useSnapshot: false,
    useCodeCache: codeCache,
  };
  writeFileSync(seaConfig, `${JSON.stringify(config, null, 2)}\n`);
  // NODE_OPTIONS would apply to the blob generator (and could break it).
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  run('SEA blob generation', process.execPath, ['--experimental-sea-config', seaConfig], { cwd: work, env });
  if (!existsSync(blob)) fail(`SEA blob generation did not write ${rel(blob)}`);
  return blob;
}

/** Builds one target from the shared esbuild bundle. */
async function buildTarget(opts, t, bundled) {
  const work = workDir(t.out);
  const manifestPath = join(work, 'manifest.json');
  const t0 = performance.now();
  console.log(`${rel(t.out)} (linux-${t.arch}${t.codeCache ? '' : ', no code cache'})`);
  mkdirSync(work, { recursive: true });
  mkdirSync(dirname(t.out), { recursive: true });
  rmSync(manifestPath, { force: true });
  const bundleFile = join(work, basename(bundled.file));
  copyFileSync(bundled.file, bundleFile);

  let blob;
  await step('blob     (node --experimental-sea-config)', () => {
    blob = makeBlob(work, bundleFile, t.codeCache);
    return `${mb(statSync(blob).size)}${t.codeCache ? ', with code cache' : ''}`;
  });

  let runtime;
  await step('runtime', () => {
    runtime = runtimeFor(t.arch, join(ROOT, 'dist', '.cache'), run, fail);
    return runtime.note;
  });

  const node = join(work, 'node');
  const strip = stripFor(t.arch);
  await step(`node     (copy${opts.strip ? ` + ${strip}` : ''})`, () => {
    rmSync(node, { force: true });
    copyFileSync(runtime.node, node);
    chmodSync(node, 0o755);
    const before = statSync(node).size;
    if (opts.strip) {
      const r = spawnSync(strip, ['--version'], { encoding: 'utf8' });
      if (r.error?.code === 'ENOENT') {
        fail(`${strip} is not installed: it strips the ${t.arch} node (apt-get install ${TARGETS[t.arch].apt}), or build with --no-strip`);
      }
      run('strip', strip, [node]);
    }
    return opts.strip ? `${mb(before)} -> ${mb(statSync(node).size)}` : mb(before);
  });

  const tmpOut = `${t.out}.tmp-${process.pid}`;
  await step('inject   (postject)', () => {
    const shim = join(ROOT, 'node_modules', '.bin', 'postject');
    if (!existsSync(shim)) fail(`${rel(shim)} not found (postject is a devDependency: run npm ci)`);
    // Run postject's CLI with this node rather than through the shim's
    // `#!/usr/bin/env node`, so it works without node on PATH.
    const cli = realpathSync(shim);
    copyFileSync(node, tmpOut);
    try {
      if (!readFileSync(tmpOut).includes(`${SEA_FUSE}:0`)) fail(`the ${t.arch} node has no SEA sentinel fuse (node built without SEA support)`);
      run('postject', process.execPath, [cli, tmpOut, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
      if (!readFileSync(tmpOut).includes(`${SEA_FUSE}:1`)) fail('postject did not flip the SEA fuse');
      chmodSync(tmpOut, 0o755);
      renameSync(tmpOut, t.out);
    } catch (err) {
      rmSync(tmpOut, { force: true });
      throw err;
    }
  });

  writeFileSync(manifestPath, `${JSON.stringify({ ...settingsOf(opts, t), builtAt: new Date().toISOString(), inputs: bundled.inputs }, null, 2)}\n`);
  console.log(`built ${rel(t.out)}: ${mb(statSync(t.out).size)} in ${secs(performance.now() - t0)}`);
}

/** dist/ferry-agent points at this machine's architecture, for tests and local use. */
function linkHostBinary(opts) {
  const host = opts.targets.find((t) => isHostArch(t.arch));
  if (!opts.outDir || !host) return;
  const link = join(opts.outDir, 'ferry-agent');
  rmSync(link, { force: true });
  symlinkSync(basename(host.out), link);
}

// -------------------------------------------------------------------- main

async function main() {
  const opts = parseCli();
  if (opts.help) {
    console.log(readFileSync(SCRIPT, 'utf8').split('\n').slice(1, 37).join('\n').replace(/^\/\/ ?/gm, ''));
    return;
  }
  const unsupported = seaUnsupportedReason();
  if (opts.check) {
    console.log(unsupported ? `SEA unsupported: ${unsupported}` : `SEA supported (node ${process.version}, ${process.platform}-${process.arch})`);
    process.exitCode = unsupported ? 2 : 0;
    return;
  }
  if (unsupported) fail(`cannot build a single executable: ${unsupported}`);
  if (!existsSync(opts.entry)) fail(`entry point ${rel(opts.entry)} does not exist (pass --entry FILE)`);

  const targets = opts.targets.map((t) => ({ ...t, codeCache: opts.codeCache && isHostArch(t.arch) }));
  const stale = targets.filter((t) => !(opts.ifStale && isFresh(opts, t, join(workDir(t.out), 'manifest.json'))));
  for (const t of targets.filter((x) => !stale.includes(x))) console.log(`${rel(t.out)} is up to date (${mb(statSync(t.out).size)})`);
  if (!stale.length) {
    linkHostBinary(opts);
    return;
  }

  const t0 = performance.now();
  console.log(`building ${stale.map((t) => rel(t.out)).join(', ')} from ${rel(opts.entry)} (node ${process.version}, on ${process.platform}-${process.arch})`);
  // Per output directory: builds into other directories (another --agent-version) must not share a bundle.
  const work = workDir(`${opts.outDir ?? opts.targets[0].out}/bundle`);
  mkdirSync(work, { recursive: true });

  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch (err) {
    fail(`cannot load esbuild (run npm ci): ${err.message}`);
  }

  // Named after the executable: stack traces read "ferry-agent.cjs:LINE".
  const file = join(work, 'ferry-agent.cjs');
  let bundled;
  await step('bundle   (esbuild)', async () => {
    bundled = await bundle(esbuild, opts.entry, file, join(work, 'metafile.json'), opts.agentVersion, opts.testFailStart);
    return bundled.note;
  });
  for (const d of bundled.dynamic) console.log(`    note: ${d}`);
  for (const t of stale) await buildTarget(opts, t, { ...bundled, file });
  linkHostBinary(opts);
  console.log(`done in ${secs(performance.now() - t0)}`);
}

main().catch((err) => {
  if (err instanceof BuildError) {
    console.error(`\nbuild-agent: ERROR: ${err.message}`);
  } else {
    console.error('\nbuild-agent: unexpected error');
    console.error(err);
  }
  process.exitCode = 1;
});
