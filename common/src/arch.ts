/**
 * Architecture names. Ferry names CPU architectures as container image
 * platforms and Go do (GOARCH: `amd64`, `arm64`, `arm/v7`), everywhere: in
 * bundle manifests, in `ferry-bundle.yaml`, and in a host's `facts.arch` and
 * `ferry/arch` label — so a selector or plan condition written with a
 * bundle's architecture matches the hosts that can run it. Node (`x64`,
 * `ia32`) and uname (`x86_64`, `aarch64`) names are translated here, once.
 */

/** GOARCH names, as image platforms use them; `arm/v7` style variants are allowed on top. */
export const ARCHES: ReadonlySet<string> = new Set(['amd64', 'arm64', 'arm', '386', 'ppc64le', 's390x', 'riscv64', 'mips64le', 'loong64']);

/** Other names for the same architectures: Node's `process.arch` and `uname -m`. */
const ALIASES: Readonly<Record<string, string>> = {
  x64: 'amd64', x86_64: 'amd64',
  aarch64: 'arm64',
  ia32: '386', i386: '386', i686: '386',
  armhf: 'arm/v7', armv7l: 'arm/v7',
  // Node reports ppc64 on little-endian POWER, the only Linux one it supports.
  ppc64: 'ppc64le',
  mips64el: 'mips64le',
};

/**
 * The image-platform name of an architecture given in Node's, uname's or
 * Go's terms: `x64` → `amd64`, `aarch64` → `arm64`, `amd64` stays. Unknown
 * names pass through unchanged (a new platform is reported, not hidden).
 */
export function platformArch(name: string = process.arch): string {
  return ALIASES[name] ?? name;
}

/** Why `a` is not an image-platform architecture name, or undefined if it is one. */
export function archProblem(a: string): string | undefined {
  const [base, variant, extra] = a.split('/');
  if (ARCHES.has(base!) && extra === undefined && (variant === undefined || /^v[0-9]+$/.test(variant))) return undefined;
  const alias = ALIASES[a];
  return `unknown architecture ${JSON.stringify(a)}${alias ? ` (did you mean ${alias}?)` : ''}; use image platform names: ${[...ARCHES].join(', ')}`;
}
