/**
 * What install scripts do that matters offline: which images they pull or name, and which
 * commands reach for the internet. Works on {@link scanShell} output, so comments, quoting and
 * here-documents are already handled.
 */
import type { LintCollector, SourceText } from './collector.js';
import { parseImageRef, rewriteImageRef } from './image-ref.js';
import { findUrls } from './network.js';
import { type ShellCommand, type ShellScan, type ShellWord, scanShell } from './shell-scan.js';

/** Words that open a compound command or prefix a simple one; the command follows them. */
const KEYWORDS = new Set(['if', 'then', 'else', 'elif', 'do', 'while', 'until', '!', '{', '}', 'time', 'exec', 'nohup', 'command', 'builtin', 'eval']);
/** `sudo`/`env`/`timeout`/`xargs` options that take a value. */
const PREFIX_OPTS_WITH_VALUE: Record<string, Set<string>> = {
  sudo: new Set(['-u', '-g', '-h', '-p', '-C', '-D', '-r', '-t', '-U']),
  env: new Set(['-u', '-C', '-S']),
  timeout: new Set(['-s', '-k', '--signal', '--kill-after']),
  xargs: new Set(['-n', '-I', '-P', '-L', '-d', '-a', '-E', '-s']),
};
/** Options (per tool) whose next word is their value, so it is not taken for the image. */
const PULL_OPTS_WITH_VALUE = new Set(['--platform', '-u', '--user', '--hosts-dir', '--snapshotter', '--creds', '--auth', '--username', '-p', '--pod-config', '-r', '--runtime-endpoint', '-i', '--image-endpoint', '--namespace', '-n', '--address', '-a', '--label', '--max-concurrent-downloads']);
const WRAPPERS = new Set(['k3s', 'k0s', 'microk8s', 'rke2']);
/** `keadm init` deploys these images (its embedded cloudcore chart), tagged v<version>. */
const KEADM_CLOUD_IMAGES = ['kubeedge/cloudcore', 'kubeedge/iptables-manager', 'kubeedge/controller-manager', 'kubeedge/admission'];
const KEADM_EDGE_IMAGES = ['kubeedge/installation-package'];

const base = (s: string) => s.slice(s.lastIndexOf('/') + 1);

/** The command's argv after keywords, assignments and wrappers (`sudo -E`, `env X=1`, `k3s ctr`). */
function argvOf(cmd: ShellCommand): ShellWord[] {
  let w = cmd.words;
  for (;;) {
    const head = w[0];
    if (!head) return w;
    const name = base(head.text);
    if (KEYWORDS.has(head.text) || /^[A-Za-z_][A-Za-z0-9_]*=/.test(head.text)) w = w.slice(1);
    else if (PREFIX_OPTS_WITH_VALUE[name]) {
      const withValue = PREFIX_OPTS_WITH_VALUE[name]!;
      let k = 1;
      while (k < w.length && (w[k]!.text.startsWith('-') || (name === 'env' && w[k]!.text.includes('=')) || (name === 'timeout' && /^\d/.test(w[k]!.text)))) {
        k += withValue.has(w[k]!.text) ? 2 : 1;
        if (name === 'timeout' && /^\d/.test(w[k - 1]!.text)) break;
      }
      w = w.slice(k);
    } else if (WRAPPERS.has(name) && ['ctr', 'crictl', 'kubectl'].includes(w[1]?.text ?? '')) w = w.slice(1);
    else return w;
  }
}

/** Positional arguments after `from`, skipping options (and the values of options that take one). */
function positionals(argv: ShellWord[], from: number): ShellWord[] {
  const out: ShellWord[] = [];
  for (let k = from; k < argv.length; k++) {
    const t = argv[k]!.text;
    if (t.startsWith('-')) {
      if (PULL_OPTS_WITH_VALUE.has(t)) k++;
      continue;
    }
    out.push(argv[k]!);
  }
  return out;
}

/** Value of `--flag=v` or `--flag v`. */
function flagValue(argv: ShellWord[], flag: string): ShellWord | undefined {
  for (let k = 0; k < argv.length; k++) {
    const t = argv[k]!.text;
    if (t === flag) return argv[k + 1];
    if (t.startsWith(`${flag}=`)) return { ...argv[k]!, text: t.slice(flag.length + 1), start: argv[k]!.start + flag.length + 1 };
  }
  return undefined;
}

/** Scan a script (or the `[from, to)` part of a file holding one) into `c`. */
export function lintShell(src: SourceText, c: LintCollector, from = 0, to = src.text.length): void {
  lintCommands(src, c, scanShell(src.text, from, to));
}

/**
 * Check commands that are already split into words — from {@link scanShell}, or an argv list
 * written in YAML (`command: [ctr, images, pull, …]`), whose words carry file offsets.
 */
export function lintCommands(src: SourceText, c: LintCollector, scan: ShellScan): void {
  const claimed = new Set<number>(); // URL offsets already reported as part of a command
  const useImage = (w: ShellWord, via?: string) => {
    if (w.expand) c.unresolved(w.text, src.at(w.start), 'it contains a shell variable or substitution');
    else c.image(w.text, src.at(w.start), via);
  };
  const network = (w: ShellWord, what: string, hint: string) =>
    c.add({ severity: 'error', rule: 'network-command', ...src.at(w.start), message: `${what}: an air-gapped host cannot do this`, hint });

  for (const cmd of scan.commands) {
    const argv = argvOf(cmd);
    if (argv.length === 0) continue;
    const name = base(argv[0]!.text);
    const sub = argv.slice(1).filter((w) => !w.text.startsWith('-')).map((w) => w.text);
    const line = argv.map((w) => w.text).join(' ');

    // Images named on the command line, whatever the tool: `kubectl run --image=…`, `keadm … --image …`.
    const img = flagValue(argv, '--image');
    if (img) useImage(img);

    let pullAt = -1;
    if (['docker', 'podman', 'nerdctl'].includes(name)) pullAt = argv.findIndex((w, k) => k > 0 && w.text === 'pull');
    else if (name === 'crictl') pullAt = argv.findIndex((w, k) => k > 0 && w.text === 'pull');
    else if (name === 'ctr') pullAt = argv.findIndex((w, k) => k > 1 && w.text === 'pull' && ['images', 'image', 'i'].includes(argv[k - 1]!.text));
    if (pullAt > 0) {
      const target = positionals(argv, pullAt + 1)[0];
      if (!target) continue;
      useImage(target);
      // crictl pulls through the CRI, so containerd's mirror config — what rewrite rules
      // describe — applies; docker/nerdctl/ctr pull straight from the registry named.
      const parsed = target.expand ? undefined : parseImageRef(target.text);
      const ref = parsed && name === 'crictl' ? rewriteImageRef(parsed, c.rewrites) : parsed;
      if (ref && !c.isInternal(ref.domain)) {
        network(argv[0]!, `\`${argv.slice(0, pullAt).map((w) => w.text).join(' ')} pull ${target.text}\` pulls from ${ref.domain}`,
          `import the image from the bundle instead (plan step image.import, or \`ctr -n k8s.io images import images/….tar\`), or pull from a registry inside the site`);
      }
      continue;
    }
    if (name === 'kubectl' && sub[0] === 'set' && sub[1] === 'image') {
      for (const w of positionals(argv, 1).slice(3)) {
        const eq = w.text.indexOf('=');
        if (eq > 0) useImage({ ...w, text: w.text.slice(eq + 1), start: w.start + eq + 1 });
      }
    }
    if (name === 'curl' || name === 'wget' || (name === 'helm' && sub[0] === 'repo' && sub[1] === 'add')) {
      const urls = argv.slice(1).flatMap((w) => findUrls(src.text.slice(w.start, w.end)).map((h) => ({ ...h, index: h.index + w.start })));
      for (const u of urls) claimed.add(u.index);
      const outside = urls.find((u) => !u.variable && !c.isInternal(u.host));
      if (outside) {
        network(argv[0]!, `\`${name === 'helm' ? 'helm repo add' : name} ${outside.url}\` downloads from ${outside.host}`,
          `put the file (or chart) in the bundle and use it from there, or list ${outside.host} under lint.internalHosts if it is inside the site`);
      } else if (urls.length === 0 || urls.every((u) => u.variable)) {
        c.add({ severity: 'warning', rule: 'network-unresolved', ...src.at(argv[0]!.start), message: `cannot tell where \`${line.slice(0, 80)}\` downloads from`,
          hint: 'make sure the URL is inside the site; write it out literally (or add an ignore rule) to have lint check it' });
      }
      continue;
    }
    if ((name === 'pip' || name === 'pip3' || (/^python[0-9.]*$/.test(name) && argv[1]?.text === '-m' && argv[2]?.text === 'pip')) && sub.includes('install')) {
      if (!argv.some((w) => w.text === '--no-index')) {
        network(argv[0]!, `\`${line.slice(0, 60)}\` installs from PyPI`, 'ship the wheels in the bundle and use `pip install --no-index --find-links ./wheels …`');
      }
      continue;
    }
    const pkgInstall = (['apt-get', 'apt', 'yum', 'dnf', 'zypper'].includes(name) && sub[0] === 'install') || (name === 'apk' && sub[0] === 'add' && !argv.some((w) => w.text === '--no-network'));
    if (pkgInstall) {
      network(argv[0]!, `\`${name} ${sub[0]}\` installs packages from the distribution's online repositories`,
        'ship the packages in the bundle (files.install + `dpkg -i`/`rpm -i`), or, if the host uses a mirror inside the site, add a lint.ignore rule for this file');
      continue;
    }
    if (name === 'keadm' && (sub[0] === 'init' || sub[0] === 'join')) keadm(argv, sub[0], src, c, useImage, network);
  }

  for (const h of scan.heredocs) lintHeredoc(src, c, h.start, h.end);
  // URLs anywhere else outside comments: in assignments, arguments, here-documents.
  for (const cmd of scan.commands) {
    for (const w of cmd.words) c.urls(src, src.text.slice(w.start, w.end), w.start, (hit) => claimed.has(w.start + hit.index));
  }
}

function keadm(argv: ShellWord[], sub: 'init' | 'join', src: SourceText, c: LintCollector, useImage: (w: ShellWord, via?: string) => void,
  network: (w: ShellWord, what: string, hint: string) => void): void {
  const v = flagValue(argv, '--kubeedge-version');
  if (!v) {
    network(argv[0]!, `\`keadm ${sub}\` without --kubeedge-version looks up the latest release at https://kubeedge.io/latestversion`,
      'pass --kubeedge-version=<the version whose images are in the bundle>');
    return;
  }
  if (v.expand) {
    c.unresolved(`keadm ${sub} --kubeedge-version=${v.text}`, src.at(v.start), 'the version is a shell variable, so lint cannot tell which KubeEdge images it needs');
    return;
  }
  const tag = v.text.startsWith('v') ? v.text : `v${v.text}`;
  for (const repo of sub === 'init' ? KEADM_CLOUD_IMAGES : KEADM_EDGE_IMAGES) {
    useImage({ ...argv[0]!, text: `${repo}:${tag}` }, `keadm ${sub} --kubeedge-version=${v.text}`);
  }
}

/** Here-documents are data (often YAML written to a file): check `image:` lines and URLs. */
function lintHeredoc(src: SourceText, c: LintCollector, start: number, end: number): void {
  const body = src.text.slice(start, end);
  for (const m of body.matchAll(/^([ \t]*(?:-[ \t]+)?image:[ \t]*)(["']?)([^\s"'#]+)\2/gm)) {
    const at = start + m.index + m[1]!.length + m[2]!.length;
    if (m[3]!.includes('$')) c.unresolved(m[3]!, src.at(at), 'it contains a shell variable');
    else c.image(m[3]!, src.at(at));
  }
  const noComments = body.replace(/(^|\s)#.*$/gm, (s, pre: string) => pre + ' '.repeat(s.length - pre.length));
  c.urls(src, noComments, start);
}
