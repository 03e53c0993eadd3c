import assert from 'node:assert/strict';
import { chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseDocument } from 'yaml';
import { formatYamlPath, parseYamlPath, yamlEditSchema, type YamlEditArgs } from '../../../common/src/plan/steps/yaml-edit.js';
import { yamlEditExecutor } from '../../../agent/src/steps/yaml-edit.js';
import { writeBack } from '../../../agent/src/steps/util/yaml-text.js';
import { makeContext, withCtx, type TestContext } from './step-context.js';
import {
  CLOUDCORE_CONFIGMAP, CLOUDCORE_CONFIGMAP_SEED_001, CLOUDCORE_YAML, CLOUDCORE_YAML_SEED_001, EDGECORE_NO_STREAM,
  EDGECORE_YAML, EDGECORE_YAML_SEED_004, EDGESTREAM_BLOCK, SEED_004_EDGESTREAM,
} from './kubeedge-fixtures.js';

const EDGECORE = '/etc/kubeedge/config/edgecore.yaml';
const CLOUDCORE = '/etc/kubeedge/config/cloudcore.yaml';

function args(raw: Record<string, unknown>): YamlEditArgs {
  const r = yamlEditSchema.parse(raw);
  assert.deepEqual(r.problems, []);
  return r.args!;
}

/** Seed 004 as a plan writes it: one `set` per field the seed sets. */
const seed004 = (file = EDGECORE) => args({
  file,
  set: Object.entries(SEED_004_EDGESTREAM).map(([k, value]) => ({ path: `modules.edgeStream.${k}`, value })),
});

const backups = (t: TestContext, hostPath: string) =>
  readdirSync(dirname(t.at(hostPath))).filter((n) => n.includes('.ferry-bak-'));

describe('yaml.edit schema', () => {
  it('parses paths with keys, indexes and quoted keys, and formats them back', () => {
    assert.deepEqual(parseYamlPath('modules.edgeStream.enable'), ['modules', 'edgeStream', 'enable']);
    assert.deepEqual(parseYamlPath('a.b[0].c'), ['a', 'b', 0, 'c']);
    assert.deepEqual(parseYamlPath('data["cloudcore.yaml"]'), ['data', 'cloudcore.yaml']);
    assert.deepEqual(parseYamlPath("x['a.b'][2]"), ['x', 'a.b', 2]);
    assert.deepEqual(parseYamlPath('.'), []);
    assert.equal(formatYamlPath(['data', 'cloudcore.yaml', 0, 'k']), 'data["cloudcore.yaml"][0].k');
    for (const bad of ['', 'a..b', 'a.', '.a', 'a[x]', 'a[0']) assert.throws(() => parseYamlPath(bad), Error, bad);
  });

  it('reports every problem with its arg path', () => {
    const r = yamlEditSchema.parse({
      file: 'etc/edgecore.yaml',
      configMap: { name: 'x' },
      set: [{ path: 'a..b', value: 1 }, { path: 'ok' }],
      merge: [{ path: 'm', value: [1] }],
      delete: [{ path: '.' }],
      bakup: false,
    });
    const paths = r.problems.map((p) => p.path).sort();
    assert.deepEqual(paths, ['bakup', 'configMap', 'delete[0].path', 'file', 'merge[0].value', 'set[0].path', 'set[1].value']);
    assert.match(r.problems.find((p) => p.path === 'file')!.message, /absolute path/);
    assert.match(yamlEditSchema.parse({ file: '/x.yaml' }).problems[0]!.message, /nothing to edit/);
  });
});

describe('yaml.edit on edgecore.yaml (seed 004)', () => {
  let t: TestContext;
  beforeEach(() => { t = makeContext(); });
  afterEach(() => t.cleanup());

  it('enables edgeStream with every seed field, touching only the lines that change', async () => {
    t.put(EDGECORE, EDGECORE_YAML, 0o640);
    chownSync(t.at(EDGECORE), 1234, 2345);
    const out = await yamlEditExecutor.run(seed004(), t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.equal(t.read(EDGECORE), EDGECORE_YAML_SEED_004);
    assert.deepEqual(parseDocument(t.read(EDGECORE)).toJS().modules.edgeStream, SEED_004_EDGESTREAM);
    assert.match(out.message, /set modules\.edgeStream\.enable, set modules\.edgeStream\.server/);
    assert.match(out.diff!, /^-    enable: false          # flipped by the installer$/m);
    assert.match(out.diff!, /^\+    enable: true          # flipped by the installer$/m);
    assert.match(out.diff!, /^\+    server: 127\.0\.0\.1:10004$/m);
    assert.ok(t.lines.some((l) => l.line === '+    server: 127.0.0.1:10004'), 'diff streamed through ctx.output');
    const st = statSync(t.at(EDGECORE));
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o640, 1234, 2345], 'mode and owner kept');
    const bak = backups(t, EDGECORE);
    assert.equal(bak.length, 1);
    assert.match(bak[0]!, /^edgecore\.yaml\.ferry-bak-\d{8}T\d{6}Z$/);
    assert.equal(readFileSync(`${dirname(t.at(EDGECORE))}/${bak[0]}`, 'utf8'), EDGECORE_YAML);
    assert.match(out.message, /backup \/etc\/kubeedge\/config\/edgecore\.yaml\.ferry-bak-/);

    const again = await yamlEditExecutor.run(seed004(), t.ctx);
    assert.equal(again.status, 'unchanged', again.message);
    assert.equal(again.diff, undefined);
    assert.equal(t.read(EDGECORE), EDGECORE_YAML_SEED_004);
    assert.equal(backups(t, EDGECORE).length, 1, 'backup made once');
  });

  it('adds the whole edgeStream block with merge when the file has none', async () => {
    t.put(EDGECORE, EDGECORE_NO_STREAM);
    const a = args({ file: EDGECORE, merge: [{ path: 'modules.edgeStream', value: SEED_004_EDGESTREAM }] });
    const out = await yamlEditExecutor.run(a, t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.equal(t.read(EDGECORE), EDGECORE_NO_STREAM + EDGESTREAM_BLOCK);
    assert.match(out.message, /added modules\.edgeStream\.enable/);
    assert.equal((await yamlEditExecutor.run(a, t.ctx)).status, 'unchanged');
    assert.equal((await yamlEditExecutor.run(seed004(), t.ctx)).status, 'unchanged', 'set and merge agree');
  });

  it('check mode reports the diff and changes nothing', async () => {
    t.put(EDGECORE, EDGECORE_YAML);
    const out = await yamlEditExecutor.run(seed004(), withCtx(t, { check: true }));
    assert.equal(out.status, 'changed');
    assert.match(out.message, /^check mode: would change/);
    assert.match(out.diff!, /^\+    enable: true/m);
    assert.equal(t.read(EDGECORE), EDGECORE_YAML);
    assert.deepEqual(backups(t, EDGECORE), []);
  });

  it('skips the backup when backup: false', async () => {
    t.put(EDGECORE, EDGECORE_YAML);
    const out = await yamlEditExecutor.run({ ...seed004(), backup: false }, t.ctx);
    assert.equal(out.status, 'changed');
    assert.deepEqual(backups(t, EDGECORE), []);
  });

  it('refuses a missing file and does not create it', async () => {
    const out = await yamlEditExecutor.run(seed004(), t.ctx);
    assert.equal(out.status, 'failed');
    assert.equal(out.errorCode, 'NOT_FOUND');
    assert.match(out.message, /\/etc\/kubeedge\/config\/edgecore\.yaml does not exist\. Next: .*never creates/);
    assert.equal(existsSync(t.at(EDGECORE)), false);
  });

  it('refuses a path through a scalar, naming the path and what it found, and leaves the file', async () => {
    t.put(EDGECORE, EDGECORE_YAML);
    const out = await yamlEditExecutor.run(args({ file: EDGECORE, set: [{ path: 'modules.edgeStream.enable.x', value: 1 }] }), t.ctx);
    assert.equal(out.status, 'failed');
    assert.equal(out.errorCode, 'STEP_YAML_PATH');
    assert.match(out.message, /cannot set modules\.edgeStream\.enable\.x: modules\.edgeStream\.enable is a boolean \(false\) at \/etc\/kubeedge\/config\/edgecore\.yaml:41:13, not a mapping/);
    assert.equal(t.read(EDGECORE), EDGECORE_YAML);
    assert.deepEqual(backups(t, EDGECORE), []);
  });

  it('refuses invalid YAML, naming line:col', async () => {
    const broken = EDGECORE_YAML.replace('    heartbeat: 15\n', '    heartbeat: 15\n   messageBurst: [60\n');
    t.put(EDGECORE, broken);
    const out = await yamlEditExecutor.run(seed004(), t.ctx);
    assert.equal(out.status, 'failed');
    assert.equal(out.errorCode, 'STEP_YAML_INVALID');
    assert.match(out.message, /^\/etc\/kubeedge\/config\/edgecore\.yaml:\d+:\d+: \/etc\/kubeedge\/config\/edgecore\.yaml is not valid YAML: /);
    assert.match(out.message, /nothing was changed/);
    assert.equal(t.read(EDGECORE), broken);
  });

  it('edits through a symlink without replacing the link', async () => {
    t.put('/data/kubeedge/edgecore.yaml', EDGECORE_YAML);
    mkdirSync(dirname(t.at(EDGECORE)), { recursive: true });
    symlinkSync(t.at('/data/kubeedge/edgecore.yaml'), t.at(EDGECORE));
    assert.equal((await yamlEditExecutor.run(seed004(), t.ctx)).status, 'changed');
    assert.ok(lstatSync(t.at(EDGECORE)).isSymbolicLink());
    assert.equal(t.read('/data/kubeedge/edgecore.yaml'), EDGECORE_YAML_SEED_004);
  });
});

describe('yaml.edit on cloudcore (seed 001)', () => {
  let t: TestContext;
  beforeEach(() => { t = makeContext(); });
  afterEach(() => t.cleanup());
  const seed001 = { set: [{ path: 'modules.dynamicController.enable', value: true }] };

  it('sets dynamicController.enable in /etc/kubeedge/config/cloudcore.yaml', async () => {
    t.put(CLOUDCORE, CLOUDCORE_YAML, 0o600);
    const out = await yamlEditExecutor.run(args({ file: CLOUDCORE, ...seed001 }), t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.equal(t.read(CLOUDCORE), CLOUDCORE_YAML_SEED_001);
    assert.equal(statSync(t.at(CLOUDCORE)).mode & 0o7777, 0o600);
    assert.equal((await yamlEditExecutor.run(args({ file: CLOUDCORE, ...seed001 }), t.ctx)).status, 'unchanged');
    assert.equal(backups(t, CLOUDCORE).length, 1);
  });

  it('sets it inside the ConfigMap data key, leaving the rest of the manifest as it was', async () => {
    const cm = '/opt/kubeedge/manifests/cloudcore-configmap.yaml';
    t.put(cm, CLOUDCORE_CONFIGMAP);
    const a = args({ file: cm, configMap: { key: 'cloudcore.yaml' }, ...seed001 });
    const out = await yamlEditExecutor.run(a, t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.equal(t.read(cm), CLOUDCORE_CONFIGMAP_SEED_001);
    assert.match(out.message, /data\["cloudcore\.yaml"\] in \/opt\/kubeedge\/manifests\/cloudcore-configmap\.yaml/);
    assert.match(out.diff!, /^-        enable: false$/m);
    const again = await yamlEditExecutor.run(a, t.ctx);
    assert.equal(again.status, 'unchanged');
    assert.equal(backups(t, cm).length, 1);
  });

  it('points into the manifest when the embedded YAML is invalid, and names a missing data key', async () => {
    const cm = '/opt/cm.yaml';
    t.put(cm, CLOUDCORE_CONFIGMAP.replace('    kind: CloudCore\n', '    kind: CloudCore\n    kind: Again\n'));
    const bad = await yamlEditExecutor.run(args({ file: cm, configMap: { key: 'cloudcore.yaml' }, ...seed001 }), t.ctx);
    assert.equal(bad.errorCode, 'STEP_YAML_INVALID');
    assert.match(bad.message, /^\/opt\/cm\.yaml:14:5 \(data\["cloudcore\.yaml"\] line 3:1\): data\["cloudcore\.yaml"\] in \/opt\/cm\.yaml is not valid YAML: Map keys must be unique/);

    t.put(cm, CLOUDCORE_CONFIGMAP);
    const missing = await yamlEditExecutor.run(args({ file: cm, configMap: { key: 'edgecore.yaml' }, ...seed001 }), t.ctx);
    assert.equal(missing.errorCode, 'NOT_FOUND');
    assert.match(missing.message, /no ConfigMap with data key "edgecore\.yaml" \(data keys found: cloudcore\.yaml\)/);
    assert.equal(t.read(cm), CLOUDCORE_CONFIGMAP);
  });
});

describe('yaml.edit paths, lists and deletes', () => {
  let t: TestContext;
  beforeEach(() => { t = makeContext(); });
  afterEach(() => t.cleanup());

  it('sets inside list items, deletes keys, and treats an absent delete as done', async () => {
    t.put('/c.yaml', 'a:\n  b:\n    - c: 1   # first\n      d: x\n    - c: 2\nkeep: me\n');
    const a = args({ file: '/c.yaml', set: [{ path: 'a.b[0].c', value: 5 }], delete: [{ path: 'a.b[1]' }, { path: 'gone.already' }] });
    const out = await yamlEditExecutor.run(a, t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.equal(t.read('/c.yaml'), 'a:\n  b:\n    - c: 5   # first\n      d: x\nkeep: me\n');
    assert.equal((await yamlEditExecutor.run(a, t.ctx)).status, 'unchanged');
    const past = await yamlEditExecutor.run(args({ file: '/c.yaml', set: [{ path: 'a.b[3]', value: 1 }] }), t.ctx);
    assert.match(past.message, /a\.b has 1 items/);
  });

  it('refuses files with several documents unless configMap picks one', async () => {
    t.put('/m.yaml', 'a: 1\n---\nb: 2\n');
    const out = await yamlEditExecutor.run(args({ file: '/m.yaml', set: [{ path: 'a', value: 2 }] }), t.ctx);
    assert.equal(out.status, 'failed');
    assert.match(out.message, /holds 2 YAML documents/);
  });

  it('never writes a result that does not read back as intended', () => {
    const doc = parseDocument('a: 1\n');
    doc.set('a', 2);
    doc.toString = () => 'a: [\n';
    assert.throws(() => writeBack('a: 1\n', 'a: 1\n', [doc], {}, '/x.yaml'), /refusing to write \/x\.yaml/);
  });
});
