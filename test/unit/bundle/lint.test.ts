import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type Finding, formatFindings, lintBundle, summarizeFindings } from '../../../common/src/bundle/lint/index.js';
import { imageTar, imageTarName } from '../../fixtures/bundles/fixtures.js';
import { makeOciLayout, makeTar } from './make-image-tar.js';

const brief = (fs: Finding[]) => fs.map((f) => `${f.file}:${f.line}:${f.col} ${f.rule}`);

describe('bundle/lint: rules', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  /** A bundle dir with these text files and one image tar per ref. */
  async function lint(files: Record<string, string | Buffer>, images: string[] = [], opts: Parameters<typeof lintBundle>[1] = {}): Promise<Finding[]> {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-lint-'));
    dirs.push(dir);
    for (const [p, text] of Object.entries(files)) {
      await mkdir(join(dir, p, '..'), { recursive: true });
      await writeFile(join(dir, p), text);
    }
    if (images.length) await mkdir(join(dir, 'images'), { recursive: true });
    for (const ref of images) await writeFile(join(dir, 'images', imageTarName(ref)), imageTar(ref));
    return lintBundle(dir, opts);
  }

  describe('(a) images in Kubernetes YAML', () => {
    it('every document, containers, initContainers, ephemeralContainers; comments and schemas do not count', async () => {
      const f = await lint({
        'manifests/app.yaml': `# image: commented/out:1
apiVersion: v1
kind: Pod
spec:
  initContainers:
    - name: init
      image: busybox:1.37     # comment after
  containers:
    - {name: app, image: "registry.site:5000/app:2.0"}
---
apiVersion: v1
kind: Pod
spec:
  ephemeralContainers:
    - name: debug
      image: 'docker.io/library/alpine:3.20'
`,
        'crds/crd.yaml': `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  versions:
    - schema:
        openAPIV3Schema:
          properties:
            image: {type: string, description: "see https://kubernetes.io/docs/concepts/containers/images/"}
`,
      }, ['busybox:1.37', 'registry.site:5000/app:2.0']);
      assert.deepEqual(brief(f), ['manifests/app.yaml:16:14 image-missing']);
      assert.equal(f[0]!.message, 'image docker.io/library/alpine:3.20 is not in the bundle');
    });

    it('matches short names, library/ and docker.io/ spellings; suggests the tag the bundle has', async () => {
      const f = await lint({ 'm.yaml': 'a:\n  image: nginx:1.25\nb:\n  image: docker.io/library/nginx:1.25\nc:\n  image: library/nginx:1.26\n' }, ['docker.io/library/nginx:1.25']);
      assert.deepEqual(brief(f), ['m.yaml:6:10 image-missing']);
      assert.equal(f[0]!.message, 'image library/nginx:1.26 is not in the bundle; the bundle has docker.io/library/nginx with tag 1.25');
    });

    it('digest references match the image\'s manifest digest', async () => {
      const oci = makeOciLayout([{ ref: 'quay.io/coreos/etcd:v3.5.21', layers: [{ a: 'b' }] }]);
      const digest = oci.expected[0]!.manifestDigest!;
      const files = { 'images/etcd.tar': makeTar(oci.entries), 'm.yaml': `image: quay.io/coreos/etcd@${digest}\n---\nimage: quay.io/coreos/etcd:v3.5.21@${digest}\n` };
      assert.deepEqual(await lint(files), []);
      const wrong = `sha256:${'0'.repeat(64)}`;
      assert.deepEqual(brief(await lint({ ...files, 'm.yaml': `image: quay.io/coreos/etcd@${wrong}\n` })), ['m.yaml:1:8 image-missing']);
    });

    it('warns for :latest and untagged, not for digests; flags unparsable and templated refs', async () => {
      const f = await lint({ 'm.yaml': `- image: nginx
- image: nginx:latest
- image: nginx@sha256:${'a'.repeat(64)}
- image: "Not A Ref"
- image: $REGISTRY/app:1
- image: ""
` }, ['nginx:latest']);
      assert.deepEqual(f.map((x) => `${x.line}:${x.col} ${x.severity} ${x.rule}`), [
        '1:10 warning image-tag', '2:10 warning image-tag', '3:10 error image-missing', '4:10 warning image-invalid', '5:10 warning image-unresolved',
      ]);
    });

    it('reports YAML that does not parse, at the error', async () => {
      const f = await lint({ 'manifests/bad.yaml': 'kind: Pod\nspec:\n  containers: [\n' });
      assert.deepEqual(brief(f), ['manifests/bad.yaml:4:1 yaml-invalid']);
    });
  });

  describe('(a) Helm charts', () => {
    const values = `image:
  registry: sea.hub:5000
  repository: web/app
  # no tag: the chart's appVersion
sidecar:
  image: {repository: tools/sidecar, tag: "1.10", digest: ""}
disabled:
  image: {repository: "", tag: x}
`;
    const chart = (name: string) => ({
      [`${name}/Chart.yaml`]: `apiVersion: v2\nname: ${name}\nversion: 0.1.0\nappVersion: "2.3"\nhome: https://example.com/docs\n`,
      [`${name}/values.yaml`]: values,
      [`${name}/templates/deploy.yaml`]: `# image: not/this:1
spec:
  containers:
    - image: "{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
    - image: busybox:1.37
    - image: {{ include "app.image" . }}
    {{- /* image: nor/this:1 */}}
`,
      [`${name}/crds/thing.yaml`]: 'kind: Thing\nspec:\n  image: crd/default:1\n',
    });

    it('directory charts: values blocks (registry, appVersion default), literal and resolvable template images, crds', async () => {
      const f = await lint(Object.fromEntries(Object.entries(chart('app')).map(([k, v]) => [`helm-charts/${k}`, v])), ['sea.hub:5000/web/app:2.3']);
      assert.deepEqual(f.map((x) => `${x.file}:${x.line}:${x.col} ${x.severity} ${x.rule}`), [
        'helm-charts/app/crds/thing.yaml:3:10 error image-missing',
        'helm-charts/app/templates/deploy.yaml:5:14 error image-missing',
        'helm-charts/app/templates/deploy.yaml:6:14 warning image-unresolved',
        'helm-charts/app/values.yaml:6:23 error image-missing',
      ]);
      assert.match(f[3]!.message, /^image tools\/sidecar:1\.10 is not in the bundle/);
    });

    it('packaged .tgz charts, with a nested subchart archive, point into the archive', async () => {
      const sub = gzipSync(makeTar(Object.entries(chart('sub')).map(([name, data]) => ({ name, data }))));
      const outer = { ...chart('app'), 'app/charts/sub-0.1.0.tgz': sub };
      const tgz = gzipSync(makeTar(Object.entries(outer).map(([name, data]) => ({ name, data }))));
      const f = await lint({ 'helm-charts/app-0.1.0.tgz': tgz }, ['sea.hub:5000/web/app:2.3', 'busybox:1.37', 'crd/default:1']);
      assert.deepEqual(brief(f), [
        'helm-charts/app-0.1.0.tgz!/app/charts/sub-0.1.0.tgz!/sub/templates/deploy.yaml:6:14 image-unresolved',
        'helm-charts/app-0.1.0.tgz!/app/charts/sub-0.1.0.tgz!/sub/values.yaml:6:23 image-missing',
        'helm-charts/app-0.1.0.tgz!/app/templates/deploy.yaml:6:14 image-unresolved',
      ]);
      assert.match(f[1]!.message, /also referenced at helm-charts\/app-0\.1\.0\.tgz!\/app\/values\.yaml:6$/);
    });
  });

  describe('(a)+(b) shell scripts', () => {
    it('pulls: images are checked; pulls from outside registries are errors, from inside the site are not', async () => {
      const f = await lint({ 'install.sh': `#!/bin/bash
# docker pull in a comment: nothing
k3s ctr -n k8s.io images pull --platform linux/amd64 sea.hub:5000/app:1
sudo -E crictl pull registry.k8s.io/pause:3.10
echo "docker pull inside a string is not a command"
nerdctl --namespace k8s.io pull "$IMAGE"
kubectl run dbg --image=busybox:1.37 --restart=Never
kubectl set image deployment/web web=sea.hub:5000/web:2
` }, ['sea.hub:5000/app:1', 'registry.k8s.io/pause:3.10', 'busybox:1.37'], { internalHosts: ['sea.hub'] });
      assert.deepEqual(f.map((x) => `${x.line}:${x.col} ${x.severity} ${x.rule}`), [
        '4:9 error network-command',
        '6:33 warning image-unresolved',
        '8:38 error image-missing',
      ]);
      assert.match(f[0]!.message, /^`crictl pull registry\.k8s\.io\/pause:3\.10` pulls from registry\.k8s\.io/);
    });

    it('crictl pulls go through rewrite rules (containerd mirrors); docker pulls do not', async () => {
      const f = await lint({
        'ferry-bundle.yaml': 'rewrites: [{from: docker.io/sealerio/, to: sea.hub:5000/sealerio/}]\n',
        'a.sh': 'crictl pull sealerio/lvscare:v1.1.3-beta.8\ndocker pull sealerio/lvscare:v1.1.3-beta.8\n',
      }, ['sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8']);
      assert.deepEqual(brief(f), ['a.sh:2:1 network-command']);
    });

    it('curl/wget/helm repo add/pip/apt-get/apk reach the internet unless the target is inside the site', async () => {
      const f = await lint({ 'setup.sh': `#!/bin/sh
curl -fsSL http://127.0.0.1:8080/healthz
curl -sfL https://get.k3s.io | sh -
wget -q http://files.site.internal/k3s -O /usr/local/bin/k3s
wget "$MIRROR/k3s"
helm repo add local http://chartmuseum:8080
helm repo add bitnami https://charts.bitnami.com/bitnami
pip3 install --no-index --find-links ./wheels ansible
python3 -m pip install requests
apt-get install -y socat conntrack
apk add --no-network ./pkgs/*.apk
V=$(curl -s https://api.github.com/repos/k3s-io/k3s/releases/latest)
# curl https://commented.example.com
` });
      assert.deepEqual(f.map((x) => `${x.line}:${x.col} ${x.severity} ${x.rule}`), [
        '3:1 error network-command',
        '5:1 warning network-unresolved',
        '7:1 error network-command',
        '9:1 error network-command',
        '10:1 error network-command',
        '12:5 error network-command',
      ]);
      assert.match(f[0]!.message, /^`curl https:\/\/get\.k3s\.io` downloads from get\.k3s\.io: an air-gapped host cannot do this$/);
      assert.match(f[3]!.message, /installs from PyPI/);
    });

    it('URLs outside comments, in assignments and here-documents; image: lines in here-documents', async () => {
      const f = await lint({ 'bin/setup': `#!/usr/bin/env bash
REGISTRY_MIRROR="https://registry-1.docker.io"   # a mirror on the internet
K3S_URL=https://\${MASTER_IP}:6443
LOCAL=http://10.0.0.7:5000 # private address
cat > /etc/app.yaml <<'EOF'
image: web/app:3      # still YAML in here
upstream: https://updates.example.com/feed
# https://in-a-heredoc-comment.example.com
EOF
echo done
` });
      assert.deepEqual(f.map((x) => `${x.line}:${x.col} ${x.rule}`), ['2:18 network-url', '6:8 image-missing', '7:11 network-url']);
    });

    it('keadm: init without --kubeedge-version is an error; a variable version is unresolved', async () => {
      const f = await lint({ 'a.sh': 'keadm init --advertise-address=1.2.3.4\nkeadm join --kubeedge-version="$V" --cloudcore-ipport=1.2.3.4:10000\nkeadm join --kubeedge-version 1.22.0\n' });
      assert.deepEqual(f.map((x) => `${x.line}:${x.col} ${x.severity} ${x.rule}`), ['1:1 error network-command', '2:31 warning image-unresolved', '3:1 error image-missing']);
      assert.match(f[2]!.message, /^image kubeedge\/installation-package:v1\.22\.0 \(deployed by `keadm join --kubeedge-version=1\.22\.0`\)/);
    });

    it('binaries and non-scripts are skipped', async () => {
      const f = await lint({ 'bin/tool': Buffer.concat([Buffer.from('#!/bin/sh\ncurl https://x.example.com\n'), Buffer.alloc(10)]), 'README.md': 'curl https://get.k3s.io | sh' });
      assert.deepEqual(f, []);
    });
  });

  describe('plans and manifests: no step reaches for the internet', () => {
    it('plan image/images fields and shell steps, with positions in the plan file', async () => {
      const f = await lint({ 'plans/install.yaml': `name: p
steps:
  - id: import
    type: image.import
    args:
      images: [sea.hub:5000/a:1, "sea.hub:5000/b:1"]
  - id: run
    type: exec
    args:
      script: |
        set -e
        docker pull quay.io/x/y:1
  - id: one-liner
    type: exec
    args: {run: "pip install flask"}
  - id: watch
    type: wait.for
    args: {url: "http://cloudcore.kubeedge.svc.cluster.local:10002/readyz", image: {repository: sea.hub:5000/c, tag: "2"}}
` }, ['sea.hub:5000/a:1', 'sea.hub:5000/b:1', 'sea.hub:5000/c:2'], { internalHosts: ['sea.hub'] });
      assert.deepEqual(f.map((x) => `${x.line}:${x.col} ${x.rule}`), ['12:9 network-command', '12:21 image-missing', '15:18 network-command']);
    });

    it('plan image.import tar globs must match files of this bundle (seed 000\'s silent empty loop)', async () => {
      const f = await lint({
        'ferry-bundle.yaml': 'name: kubeedge-cloud\n',
        'plans/cloud.yaml': `name: cloud
bundles:
  cloud: kubeedge-cloud:1.22.0
  edge: kubeedge-edge:1.22.0
steps:
  - id: k3s
    type: image.import
    args: {bundle: cloud, images: [images/docker.io-rancher-*.tar], k3s: true}
  - id: kubeedge
    type: image.import
    args:
      bundle: cloud
      images:
        - images/docker.io-kubeedge-*.tar
        - "images/{{ params.extra }}.tar"
  - id: other-bundle
    type: image.import
    args: {bundle: edge, images: [images/docker.io-kubeedge-installation-package-v1.22.0.tar]}
`,
      }, ['docker.io/rancher/mirrored-pause:3.6']);
      assert.deepEqual(f.map((x) => `${x.line}:${x.col} ${x.rule}`), ['14:11 bundle-path-missing']);
      assert.equal(f[0]!.message, 'images/docker.io-kubeedge-*.tar matches no file in this bundle (bundle alias "cloud")');
    });

    it('plan commands: argv lists, sh -c lists and shell-string guards', async () => {
      const f = await lint({ 'plans/p.yaml': `name: p
steps:
  - id: a
    type: exec
    args:
      command: [ctr, -n, k8s.io, images, pull, "docker.io/library/nginx:1.25"]
  - id: b
    type: exec
    args: {command: [sh, -c, "wget -qO- https://get.example.com | sh"]}
    unless: curl -fs https://status.example.com/ok
  - id: c
    type: exec
    args: {argv: ["{{ bundles.edge }}/bin/keadm", join, "--kubeedge-version=v{{ params.v }}"]}
` });
      assert.deepEqual(f.map((x) => `${x.line}:${x.col} ${x.severity} ${x.rule}`), [
        '6:17 error network-command', '6:49 error image-missing', '9:31 error network-command', '10:13 error network-command', '13:77 warning image-unresolved',
      ]);
    });

    it('manifests: URLs in config are errors unless internal; docs, annotations and comments are not', async () => {
      const f = await lint({ 'manifests/cm.yaml': `apiVersion: v1
kind: ConfigMap
metadata:
  annotations:
    docs: https://docs.example.com/x
data:
  # upstream: https://example.com
  upstream: https://feeds.example.com/v1
  local: http://192.168.1.10/repo
  public-ip: http://8.8.8.8/
  svc: http://metrics-server.kube-system.svc:443
  corp: https://artifacts.corp.example/x
  cmd: |
    curl https://inline.example.com/install.sh
` }, [], { config: { rewrites: [], lint: { internalHosts: ['*.corp.example'], ignore: [] } } });
      assert.deepEqual(f.map((x) => `${x.line}:${x.col} ${x.rule}`), ['8:13 network-url', '10:14 network-url', '14:10 network-url']);
    });
  });

  it('config problems are findings; lint.ignore silences by glob and rule', async () => {
    const f = await lint({
      'ferry-bundle.yaml': 'name: x\nlint:\n  ignore:\n    - {path: "legacy/**", rules: [network-command]}\n    - {path: "old.yaml"}\n  internalHost: []\n',
      'legacy/a/get.sh': 'curl https://get.k3s.io | sh\necho https://example.com\n',
      'old.yaml': 'image: nginx\n',
    });
    assert.deepEqual(f.map((x) => `${x.file}:${x.line}:${x.col} ${x.rule}`), ['ferry-bundle.yaml:6:3 config-invalid', 'legacy/a/get.sh:2:6 network-url']);
  });

  it('formatFindings / summarizeFindings', () => {
    const fs: Finding[] = [
      { severity: 'warning', rule: 'image-tag', file: 'b.yaml', line: 2, col: 3, message: 'w' },
      { severity: 'error', rule: 'image-missing', file: 'a.yaml', line: 10, col: 1, message: 'e', hint: 'do x' },
    ];
    assert.equal(formatFindings(fs), 'a.yaml:10:1: error [image-missing] e\n  hint: do x\nb.yaml:2:3: warning [image-tag] w');
    assert.equal(summarizeFindings(fs), '1 error, 1 warning');
    assert.equal(summarizeFindings([]), '0 errors, 0 warnings');
  });

  it('scripts found by shebang keep their mode irrelevant', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-lint-'));
    dirs.push(dir);
    await writeFile(join(dir, 'run'), '#!/bin/dash\napt install -y jq\n');
    await chmod(join(dir, 'run'), 0o600);
    assert.deepEqual(brief(await lintBundle(dir)), ['run:2:1 network-command']);
  });
});
