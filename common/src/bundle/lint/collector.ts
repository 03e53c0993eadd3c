/**
 * Where the scanners (YAML, Helm, shell) put what they find: image references to check
 * against the bundle later, and findings they can decide on the spot (network access).
 */
import type { Finding, Position } from './findings.js';
import type { CompiledRewrite } from './image-ref.js';
import { LineIndex, type UrlHit, findUrls } from './network.js';

/** An image reference found in the bundle's files. */
export interface ImageUse extends Position {
  /** The reference as written (quotes removed). */
  ref: string;
  /** What implies it when it is not written out, e.g. "`keadm init --kubeedge-version=v1.22.0`". */
  via?: string;
}

/** A text file being scanned, with offset → position mapping. */
export class SourceText {
  private index: LineIndex | undefined;

  constructor(
    /** Display path (bundle-relative; `x.tgz!/chart/values.yaml` inside archives). */
    readonly file: string,
    readonly text: string,
  ) {}

  /** Position of a string offset. */
  at(offset: number): Position {
    this.index ??= new LineIndex(this.text);
    return { file: this.file, ...this.index.pos(offset) };
  }
}

/** Accumulates image uses and findings for one lint run. */
export class LintCollector {
  readonly images: ImageUse[] = [];
  readonly findings: Finding[] = [];

  constructor(
    readonly isInternal: (hostPort: string) => boolean,
    /** The bundle's rewrite rules (CRI pulls go through them; `docker pull` does not). */
    readonly rewrites: readonly CompiledRewrite[] = [],
  ) {}

  /** Record an image reference (checked against the bundle at the end). */
  image(ref: string, pos: Position, via?: string): void {
    this.images.push({ ref, ...pos, ...(via ? { via } : {}) });
  }

  add(f: Finding): void {
    this.findings.push(f);
  }

  /** A reference lint cannot evaluate (variables, template helpers). */
  unresolved(text: string, pos: Position, why: string): void {
    this.add({
      severity: 'warning', rule: 'image-unresolved', ...pos,
      message: `cannot check image reference ${JSON.stringify(text)}: ${why}`,
      hint: 'make sure the image it resolves to is in the bundle; write the reference out literally to have lint check it',
    });
  }

  /** Report every URL to an outside host in `text` (which starts at `offset` of `src`). */
  urls(src: SourceText, text: string, offset: number, skip?: (hit: UrlHit) => boolean): void {
    for (const hit of findUrls(text)) {
      if (hit.variable || this.isInternal(hit.host) || skip?.(hit)) continue;
      this.add({
        severity: 'error', rule: 'network-url', ...src.at(offset + hit.index),
        message: `${hit.url} is on ${hit.host}, outside the site: an air-gapped host cannot reach it`,
        hint: `ship what it points to in the bundle and use a local path, or list ${hit.host} under lint.internalHosts in ferry-bundle.yaml if it is inside the site`,
      });
    }
  }
}
