#!/usr/bin/env node
// Builds the agent as a single executable (Node SEA) that needs no node and no
// node_modules on the host:
//
//   esbuild (TS/ESM -> one CommonJS file, everything bundled)
//   -> node --experimental-sea-config   (preparation blob, with V8 code cache)
//   -> copy of process.execPath, stripped
//   -> postject NODE_SEA_BLOB            -> chmod 755
//
// Usage: node scripts/build-agent.mjs [--entry FILE] [--out FILE] [--if-stale]
//                                     [--no-strip] [--no-code-cache] [--check]
//   --entry FILE     agent entry point (default agent/src/cli/main.ts)
//   --out FILE       executable to write (default dist/ferry-agent)
//   --if-stale       do nothing when OUT is newer than every bundled input
//   --no-strip       keep symbols in the embedded node (bigger, for debugging)
//   --no-code-cache  do not embed the V8 code cache (slower startup)
//   --check          only report whether this node/platform can build a SEA
//                    (exit 0 = yes, exit 2 = no; the reason is printed)
//
// Intermediate files go to dist/.sea/<basename of OUT>/. The bundle is CommonJS
// because that is what Node 20 runs as a SEA main script, so the entry must not
// use top-level await; import.meta.{url,filename,dirname} are defined to point
// at the executable itself. Inside the executable require() only loads node
// built-ins, so the build fails if the bundle still needs any other module.
//
// Only node built-ins and esbuild's JS API are used here.

import { spawnSync } from 'node:child_process';
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
  writeFileSync,
} from 'node:fs';
import { isBuiltin } from 'node:module';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

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

function parseCli() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        entry: { type: 'string', default: 'agent/src/cli/main.ts' },
        out: { type: 'string', default: 'dist/ferry-agent' },
        'if-stale': { type: 'boolean', default: false },
        'no-strip': { type: 'boolean', default: false },
        'no-code-cache': { type: 'boolean', default: false },
        check: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    fail(`${err.message}\nusage: node scripts/build-agent.mjs [--entry FILE] [--out FILE] [--if-stale] [--no-strip] [--no-code-cache] [--check]`);
  }
  const v = parsed.values;
  // Relative paths are relative to the repo root, so `npm run build:agent` and
  // a test running from anywhere agree on where things are.
  const abs = (p) => (isAbsolute(p) ? p : resolve(ROOT, p));
  return {
    entry: abs(v.entry),
    out: abs(v.out),
    ifStale: v['if-stale'],
    strip: !v['no-strip'],
    codeCache: !v['no-code-cache'],
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

async function bundle(esbuild, entry, outfile, metafile) {
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

function isFresh(opts, manifestPath) {
  if (!existsSync(opts.out) || !existsSync(manifestPath)) return false;
  let m;
  try {
    m = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch {
    return false;
  }
  if (m.entry !== opts.entry || m.out !== opts.out || m.node !== process.version) return false;
  if (m.strip !== opts.strip || m.codeCache !== opts.codeCache) return false;
  const built = statSync(opts.out).mtimeMs;
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

// -------------------------------------------------------------------- main

async function main() {
  const opts = parseCli();
  if (opts.help) {
    console.log(readFileSync(SCRIPT, 'utf8').split('\n').slice(1, 25).join('\n').replace(/^\/\/ ?/gm, ''));
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

  const work = join(ROOT, 'dist', '.sea', basename(opts.out));
  const manifestPath = join(work, 'manifest.json');
  if (opts.ifStale && isFresh(opts, manifestPath)) {
    console.log(`${rel(opts.out)} is up to date (${mb(statSync(opts.out).size)})`);
    return;
  }

  const t0 = performance.now();
  console.log(`building ${rel(opts.out)} from ${rel(opts.entry)} (node ${process.version}, ${process.platform}-${process.arch})`);
  mkdirSync(work, { recursive: true });
  mkdirSync(dirname(opts.out), { recursive: true });
  rmSync(manifestPath, { force: true });

  const files = {
    // Named after the executable: stack traces read "ferry-agent.cjs:LINE".
    bundle: join(work, `${basename(opts.out)}.cjs`),
    meta: join(work, 'metafile.json'),
    seaConfig: join(work, 'sea-config.json'),
    blob: join(work, 'sea-prep.blob'),
    node: join(work, 'node'),
  };

  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch (err) {
    fail(`cannot load esbuild (run npm ci): ${err.message}`);
  }

  let bundled;
  await step('bundle   (esbuild)', async () => {
    bundled = await bundle(esbuild, opts.entry, files.bundle, files.meta);
    return bundled.note;
  });
  for (const d of bundled.dynamic) console.log(`    note: ${d}`);

  await step('blob     (node --experimental-sea-config)', () => {
    rmSync(files.blob, { force: true });
    // Paths relative to `work` (the cwd below): the main path is the script
    // name that shows up in stack traces, so keep build-machine paths out.
    const config = {
      main: basename(files.bundle),
      output: basename(files.blob),
      disableExperimentalSEAWarning: true,
      useSnapshot: false,
      useCodeCache: opts.codeCache,
    };
    writeFileSync(files.seaConfig, `${JSON.stringify(config, null, 2)}\n`);
    // NODE_OPTIONS would apply to the blob generator (and could break it).
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    run('SEA blob generation', process.execPath, ['--experimental-sea-config', files.seaConfig], { cwd: work, env });
    if (!existsSync(files.blob)) fail(`SEA blob generation did not write ${rel(files.blob)}`);
    return `${mb(statSync(files.blob).size)}${opts.codeCache ? ', with code cache' : ''}`;
  });

  await step(`node     (copy${opts.strip ? ' + strip' : ''} ${process.execPath})`, () => {
    rmSync(files.node, { force: true });
    copyFileSync(process.execPath, files.node);
    chmodSync(files.node, 0o755);
    const before = statSync(files.node).size;
    if (opts.strip) run('strip', 'strip', [files.node]);
    return opts.strip ? `${mb(before)} -> ${mb(statSync(files.node).size)}` : mb(before);
  });

  const tmpOut = `${opts.out}.tmp-${process.pid}`;
  await step('inject   (postject)', () => {
    const shim = join(ROOT, 'node_modules', '.bin', 'postject');
    if (!existsSync(shim)) fail(`${rel(shim)} not found (postject is a devDependency: run npm ci)`);
    // Run postject's CLI with this node rather than through the shim's
    // `#!/usr/bin/env node`, so it works without node on PATH.
    const cli = realpathSync(shim);
    copyFileSync(files.node, tmpOut);
    try {
      run('postject', process.execPath, [cli, tmpOut, 'NODE_SEA_BLOB', files.blob, '--sentinel-fuse', SEA_FUSE]);
      if (!readFileSync(tmpOut).includes(`${SEA_FUSE}:1`)) fail('postject did not flip the SEA fuse');
      chmodSync(tmpOut, 0o755);
      renameSync(tmpOut, opts.out);
    } catch (err) {
      rmSync(tmpOut, { force: true });
      throw err;
    }
  });

  writeFileSync(
    manifestPath,
    `${JSON.stringify(
      {
        entry: opts.entry,
        out: opts.out,
        node: process.version,
        strip: opts.strip,
        codeCache: opts.codeCache,
        builtAt: new Date().toISOString(),
        inputs: bundled.inputs,
      },
      null,
      2,
    )}\n`,
  );

  console.log(`built ${rel(opts.out)}: ${mb(statSync(opts.out).size)} in ${secs(performance.now() - t0)}`);
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
