/**
 * `ferry bundle lint DIR`: prove a bundle is complete for an offline install before it ships.
 *
 *  (a) every image the bundle's files reference — Kubernetes YAML anywhere, Helm charts,
 *      plans, install scripts, and images implied by tools (`keadm init` ⇒ the 4 KubeEdge
 *      cloud images) — is inside the bundle's image tars, after the rewrite rules;
 *  (b) nothing reaches for the internet: URLs to outside hosts, pulls from outside
 *      registries, curl/wget/helm repo add/pip/apt-get;
 *  (c) no image is `:latest` or untagged.
 *
 * Matching (a): the bundle serves each image under its own refs and, after import into the
 * site registry, under the rewritten refs; a reference is looked up after rewriting. So with
 * `docker.io/sealerio/ → sea.hub:5000/sealerio/`, `sealerio/lvscare:v1` is satisfied by an
 * image tagged either `sealerio/lvscare:v1` or `sea.hub:5000/sealerio/lvscare:v1`, and a host
 * pulling `sea.hub:5000/…` finds it. One finding per missing image, at its first reference,
 * listing the others: the fix is one image tar, not one edit per line.
 */
import { open, readFile } from 'node:fs/promises';
import { type BundleConfig, globToRegExp, loadBundleConfig } from '../bundle-config.js';
import { type BundleEntry, inspectBundleImages, walkBundle } from '../builder.js';
import type { BundleImage, BundleManifest } from '../manifest.js';
import { type ImageUse, LintCollector, SourceText } from './collector.js';
import { type Finding, compareFindings, dedupeFindings } from './findings.js';
import { type TextFile, chartRoots, lintCharts, readChartArchive } from './helm.js';
import { type CompiledRewrite, type ImageRef, canonicalImageRef, compileRewrite, formatImageRef, parseImageRef, rewriteImageRef, rewriteTargetHosts } from './image-ref.js';
import { internalHostMatcher } from './network.js';
import type { PublishedImages } from './published.js';
import type { SelfBundle } from './plan-scan.js';
import { lintShell } from './shell-rules.js';
import { lintYaml } from './yaml-scan.js';

/** Options for {@link lintBundle}. */
export interface LintOptions {
  /** Use these images instead of inspecting the tars again (e.g. a manifest just built). */
  manifest?: Pick<BundleManifest, 'images'>;
  /** Use this config instead of reading DIR/ferry-bundle.yaml. */
  config?: BundleConfig;
  /** More hosts inside the site (added to the config's lint.internalHosts). */
  internalHosts?: string[];
  /** Bundle name (`--name`; default: ferry-bundle.yaml's): plans importing from it are checked against its files. */
  name?: string;
  /**
   * The site registry's published images (the controller passes its registry store): a
   * reference the bundle does not hold is still available when it is published under its
   * rewritten name. Without it, only the bundle's own images count.
   */
  published?: PublishedImages;
}

const MAX_TEXT = 4 * 1024 * 1024;
const TAR = /\.(?:tar|tar\.gz|tgz)$/i;

/** Lint the offline-package directory `dir`; findings sorted by file, line, column. */
export async function lintBundle(dir: string, opts: LintOptions = {}): Promise<Finding[]> {
  const loaded = opts.config ? { config: opts.config, problems: [] } : await loadBundleConfig(dir);
  const config = loaded.config;
  const rules = config.rewrites.map(compileRewrite).filter((r): r is CompiledRewrite => typeof r !== 'string');
  const c = new LintCollector(internalHostMatcher([...config.lint.internalHosts, ...(opts.internalHosts ?? []), ...rewriteTargetHosts(rules)]), rules);
  for (const p of loaded.problems) c.add({ severity: 'error', rule: 'config-invalid', ...p, hint: 'fix ferry-bundle.yaml; `ferry bundle build` refuses a bundle whose config has problems' });

  const entries = await walkBundle(dir);
  const images = opts.manifest?.images ?? (await inspectBundleImages(entries));
  await scanFiles(entries, c, { name: opts.name ?? config.name, files: entries.map((e) => e.path) });

  const published = opts.published ? await publishedRefs(c.images, rules, opts.published) : undefined;
  const findings = [...checkImages(c.images, images, rules, published), ...c.findings];
  const ignores = config.lint.ignore.map((i) => ({ re: globToRegExp(i.path), rules: i.rules }));
  const ignored = (f: Finding) => ignores.some((i) => (i.re.test(f.file) || i.re.test(f.file.split('!/')[0]!)) && (!i.rules || i.rules.includes(f.rule)));
  return dedupeFindings(findings.filter((f) => !ignored(f))).sort(compareFindings);
}

/** Read what can be text and hand each file to its scanner. */
async function scanFiles(entries: readonly BundleEntry[], c: LintCollector, self: SelfBundle): Promise<void> {
  const roots = new Set(chartRoots(entries.map((e) => e.path)));
  const inChart = (p: string) => [...roots].some((r) => r === '' || p.startsWith(`${r}/`));
  const chartFiles: TextFile[] = [];
  for (const e of entries) {
    if (e.path === 'ferry-bundle.yaml' || e.path.startsWith('images/')) continue;
    if (/\.(?:tgz|tar\.gz)$/i.test(e.path)) {
      chartFiles.push(...(await readChartArchive(e.absPath, e.path).catch(() => [])));
      continue;
    }
    if (TAR.test(e.path) || e.size > MAX_TEXT) continue;
    const isYaml = /\.ya?ml$/i.test(e.path);
    const isShellName = /\.(?:sh|bash)$/i.test(e.path);
    if (!isYaml && !isShellName && !inChart(e.path) && !(await hasShebang(e.absPath))) continue;
    const buf = await readFile(e.absPath);
    if (buf.subarray(0, 8192).includes(0)) continue; // binary
    const text = buf.toString('utf8');
    if (inChart(e.path)) chartFiles.push({ path: e.path, display: e.path, text });
    else if (isYaml) lintYaml(new SourceText(e.path, text), c, e.path.startsWith('plans/') ? 'plan' : 'k8s', { self });
    else lintShell(new SourceText(e.path, text), c);
  }
  lintCharts(chartFiles, c);
}

async function hasShebang(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(64);
    const { bytesRead } = await fh.read(b, 0, 64, 0);
    return /^#!\s*(?:\S*\/)?(?:env\s+(?:-\S+\s+)*)?(?:ba|da|z|k|a)?sh\b/.test(b.toString('latin1', 0, bytesRead));
  } finally {
    await fh.close();
  }
}

const comparePositions = (a: ImageUse, b: ImageUse) =>
  (a.file !== b.file ? Buffer.compare(Buffer.from(a.file), Buffer.from(b.file)) : 0) || a.line - b.line || a.col - b.col;
const dirOf = (path: string) => (path.includes('/') ? `${path.slice(0, path.lastIndexOf('/'))}/` : '');
const key = (r: ImageRef) => formatImageRef({ domain: r.domain, path: r.path, ...(r.tag !== undefined ? { tag: r.tag } : {}) });
const repoOf = (r: ImageRef) => `${r.domain}/${r.path}`;

/**
 * The references (after rewrite rules, as `formatImageRef` keys) the registry serves: a tag
 * that resolves there, or a digest its repository holds. Asked once per distinct reference.
 */
async function publishedRefs(uses: readonly ImageUse[], rules: readonly CompiledRewrite[], registry: PublishedImages): Promise<Set<string>> {
  const out = new Set<string>();
  const asked = new Set<string>();
  for (const u of uses) {
    const p = parseImageRef(u.ref);
    if (!p) continue;
    const target = rewriteImageRef(p, rules);
    const k = formatImageRef(target);
    if (asked.has(k)) continue;
    asked.add(k);
    const ok = target.digest
      ? await registry.hasManifest(repoOf(target), target.digest)
      : (await registry.tagDigest(repoOf(target), target.tag ?? 'latest')) !== undefined;
    if (ok) out.add(k);
  }
  return out;
}

/**
 * Compare references with the bundle's images (and, when given, what the registry publishes):
 * image-missing / -invalid / -tag findings.
 */
function checkImages(uses: readonly ImageUse[], images: readonly BundleImage[], rules: readonly CompiledRewrite[], published?: ReadonlySet<string>): Finding[] {
  const served = new Set<string>();
  const digests = new Map<string, Set<string>>(); // repository -> manifest digests
  const tags = new Map<string, Set<string>>(); // repository -> tags (for "did you mean")
  const elsewhere = new Map<string, Set<string>>(); // path:tag -> refs, to suggest a rewrite rule
  for (const img of images) {
    for (const raw of img.refs) {
      const p = parseImageRef(raw);
      if (!p) continue;
      for (const r of [canonicalImageRef(p), rewriteImageRef(p, rules)]) {
        served.add(key(r));
        (digests.get(repoOf(r)) ?? digests.set(repoOf(r), new Set()).get(repoOf(r))!).add(img.manifestDigest);
        if (r.tag) (tags.get(repoOf(r)) ?? tags.set(repoOf(r), new Set()).get(repoOf(r))!).add(r.tag);
        const pt = `${r.path}:${r.tag ?? ''}`;
        (elsewhere.get(pt) ?? elsewhere.set(pt, new Set()).get(pt)!).add(key(r));
      }
    }
  }
  const out: Finding[] = [];
  const missing = new Map<string, { target: ImageRef; canon: ImageRef; uses: ImageUse[] }>();
  for (const u of [...uses].sort(comparePositions)) {
    const p = parseImageRef(u.ref);
    const pos = { file: u.file, line: u.line, col: u.col };
    if (!p) {
      out.push({ severity: 'warning', rule: 'image-invalid', ...pos, message: `${JSON.stringify(u.ref)} is not a valid image reference`,
        hint: 'write it as [registry/]repository[:tag][@sha256:…]; lint cannot check what it cannot parse' });
      continue;
    }
    if (!p.digest && (p.tag === undefined || p.tag === 'latest')) {
      out.push({ severity: 'warning', rule: 'image-tag', ...pos, message: `image ${u.ref} ${p.tag ? 'uses the :latest tag' : 'has no tag (it means :latest)'}`,
        hint: 'pin a version tag or a digest: :latest means whatever the registry had the day the bundle was built, and hosts may disagree' });
    }
    const canon = canonicalImageRef(p);
    const target = rewriteImageRef(p, rules);
    const ok = target.digest ? digests.get(repoOf(target))?.has(target.digest) : served.has(key(target));
    if (ok || published?.has(formatImageRef(target))) continue;
    const k = formatImageRef(target);
    const m = missing.get(k) ?? missing.set(k, { target, canon, uses: [] }).get(k)!;
    if (!m.uses.some((o) => o.file === u.file && o.line === u.line && o.col === u.col)) m.uses.push(u);
  }
  for (const { target, canon, uses: us } of missing.values()) {
    const [first, ...rest] = us;
    const u = first!;
    const rewritten = formatImageRef(target) !== formatImageRef(canon);
    const others = [...(tags.get(repoOf(target)) ?? [])].filter((t) => t !== target.tag).sort();
    const moved = [...(elsewhere.get(`${target.path}:${target.tag ?? ''}`) ?? [])].sort()[0];
    const also = rest.slice(0, 3).map((r) => `${r.file}:${r.line}`).join(', ') + (rest.length > 3 ? `, and ${rest.length - 3} more` : '');
    out.push({
      severity: 'error', rule: 'image-missing', file: u.file, line: u.line, col: u.col,
      message: `image ${u.ref}${u.via ? ` (deployed by \`${u.via}\`)` : ''} is not in the bundle${published ? ' nor published in the site registry' : ''}${rewritten ? ` (looked up as ${formatImageRef(target)} after rewrite rules)` : ''}`
        + (others.length ? `; the bundle has ${repoOf(target)} with tag ${others.join(', ')}` : '')
        + (moved ? `; the bundle has it as ${moved}` : '') + (also ? `; also referenced at ${also}` : ''),
      hint: moved
        ? `add a rewrite rule to ferry-bundle.yaml (rewrites: [{from: ${target.domain}/${dirOf(target.path)}, to: ${moved.slice(0, moved.indexOf('/'))}/${dirOf(target.path)}}]) or reference ${moved}`
        : `add an image tar with ${formatImageRef(canon)} under images/ (on a connected machine: \`docker save ${formatImageRef(canon)} -o images/${formatImageRef(canon).replace(/[/:@]/g, '-')}.tar\`)`
        + (rewritten ? '' : ', or a rewrite rule in ferry-bundle.yaml if the bundle has it under another registry')
        + (published ? `; or publish a bundle that holds it as ${formatImageRef(target)} (ferry registry publish NAME:VERSION)` : ''),
    });
  }
  return out;
}
