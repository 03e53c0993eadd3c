import { NO_METRICS, type RegistryMetrics } from '../metrics/metrics.js';
/**
 * Pulls counted in memory, not logged per request: a fleet pulling an image
 * is thousands of requests. A small read interface, so a metrics exporter
 * can publish these later without knowing the server.
 */

/** Totals and per-repository counts since the controller started. */
export interface PullSnapshot {
  manifests: number;
  blobs: number;
  files: number;
  bytes: number;
  /** Blob and file responses that were one range (206): resumed or split downloads. */
  partial: number;
  /** Refusals and errors by code (UNAUTHORIZED, MANIFEST_UNKNOWN, BLOB_UNAVAILABLE, …). */
  errors: Record<string, number>;
  repositories: Record<string, { manifests: number; blobs: number; bytes: number }>;
}

/** What others read; see {@link PullCounters}. */
export interface PullStats {
  snapshot(): PullSnapshot;
}

/** See module comment. Every count is also handed to the controller's /metrics (`ferry_registry_*`). */
export class PullCounters implements PullStats {
  constructor(private readonly metrics: RegistryMetrics = NO_METRICS) {}

  private manifests = 0;
  private blobs = 0;
  private files = 0;
  private bytes = 0;
  private partial = 0;
  private readonly errors = new Map<string, number>();
  private readonly repos = new Map<string, { manifests: number; blobs: number; bytes: number }>();

  private repo(r: string) {
    let c = this.repos.get(r);
    if (!c) this.repos.set(r, (c = { manifests: 0, blobs: 0, bytes: 0 }));
    return c;
  }

  manifest(repository: string, bytes: number): void {
    this.metrics.registryPull('manifest', 200, bytes);
    this.manifests++;
    this.bytes += bytes;
    const c = this.repo(repository);
    c.manifests++;
    c.bytes += bytes;
  }

  blob(repository: string, bytes: number, partial = false): void {
    this.metrics.registryPull('blob', partial ? 206 : 200, bytes);
    this.blobs++;
    if (partial) this.partial++;
    this.bytes += bytes;
    const c = this.repo(repository);
    c.blobs++;
    c.bytes += bytes;
  }

  file(bytes: number, partial = false): void {
    this.metrics.registryPull('file', partial ? 206 : 200, bytes);
    this.files++;
    if (partial) this.partial++;
    this.bytes += bytes;
  }

  error(code: string): void {
    this.metrics.registryError(code);
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  snapshot(): PullSnapshot {
    return {
      manifests: this.manifests, blobs: this.blobs, files: this.files, bytes: this.bytes, partial: this.partial,
      errors: Object.fromEntries(this.errors),
      repositories: Object.fromEntries([...this.repos].map(([k, v]) => [k, { ...v }])),
    };
  }
}
