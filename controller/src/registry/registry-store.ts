/**
 * What is published, in the controller's store: one publication per bundle,
 * and under it the repositories, tags, manifests (their exact bytes) and
 * blobs (a byte range of an image tar in the bundle, never a copy). A
 * publication is written and removed in one transaction, so a tag never
 * resolves before everything below it is there (docs/registry.md).
 */
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Db } from '../store/db.js';
import type { RepositoryLookup } from '../../../common/src/registry/names.js';

/** One publication, as `ferry registry ls` shows it. */
export interface Publication {
  bundleId: string;
  bundleName: string;
  bundleVersion: string;
  anonymous: boolean;
  publishedBy: string;
  publishedAt: number;
  tags: Array<{ repository: string; tag: string; digest: string }>;
}

/** Everything a publication adds, computed before the transaction (see publish.ts). */
export interface PublicationPlan {
  bundleId: string;
  bundleName: string;
  bundleVersion: string;
  anonymous: boolean;
  repositories: Map<string, RepositoryContent>;
}

/** One repository's share of a publication. */
export interface RepositoryContent {
  tags: Map<string, string>;
  manifests: Map<string, { mediaType: string; body: Buffer }>;
  blobs: Map<string, { file: string; offset: number; size: number }>;
}

/** A blob's location: the bundle file and the range inside it. */
export interface BlobLocation {
  bundleId: string;
  file: string;
  offset: number;
  size: number;
}

interface PubRow { bundle_id: string; bundle_name: string; bundle_version: string; anonymous: number; published_by: string; published_at: number }

/** See module comment. */
export class RegistryStore implements RepositoryLookup {
  constructor(private readonly db: Db) {}

  /** Replaces the bundle's publication with `plan`, atomically; refuses a tag another bundle publishes with other content. */
  async publish(plan: PublicationPlan, by: string, at: number): Promise<void> {
    await this.db.tx(async (db) => {
      await deleteRows(db, plan.bundleId);
      for (const [repository, c] of plan.repositories) {
        for (const [tag, digest] of c.tags) {
          const other = await db.get<{ digest: string; bundle_id: string }>(
            'SELECT t.digest, t.bundle_id FROM registry_tags t WHERE t.repository = ? AND t.tag = ? AND t.digest <> ?', [repository, tag, digest]);
          if (other) {
            const p = await db.get<PubRow>('SELECT * FROM registry_publications WHERE bundle_id = ?', [other.bundle_id]);
            throw new FerryError(ErrorCode.AlreadyExists, `${repository}:${tag} is already published by ${p ? `${p.bundle_name}:${p.bundle_version}` : other.bundle_id} with other content (${other.digest})`,
              `unpublish that bundle first, or publish this one under another tag with --as`);
          }
          await db.run('INSERT INTO registry_tags (repository, tag, bundle_id, digest) VALUES (?, ?, ?, ?)', [repository, tag, plan.bundleId, digest]);
        }
        const slash = repository.indexOf('/');
        await db.run('INSERT INTO registry_repos (repository, bundle_id, host, path, anonymous) VALUES (?, ?, ?, ?, ?)',
          [repository, plan.bundleId, repository.slice(0, slash), repository.slice(slash + 1), plan.anonymous ? 1 : 0]);
        for (const [digest, m] of c.manifests) {
          await db.run('INSERT INTO registry_manifests (repository, digest, bundle_id, media_type, body_b64) VALUES (?, ?, ?, ?, ?)',
            [repository, digest, plan.bundleId, m.mediaType, m.body.toString('base64')]);
        }
        for (const [digest, b] of c.blobs) {
          await db.run('INSERT INTO registry_blobs (repository, digest, bundle_id, file_path, tar_offset, size) VALUES (?, ?, ?, ?, ?, ?)',
            [repository, digest, plan.bundleId, b.file, b.offset, b.size]);
        }
      }
      await db.run('INSERT INTO registry_publications (bundle_id, bundle_name, bundle_version, anonymous, published_by, published_at) VALUES (?, ?, ?, ?, ?, ?)',
        [plan.bundleId, plan.bundleName, plan.bundleVersion, plan.anonymous ? 1 : 0, by, at]);
    });
  }

  /** Removes a bundle's publication; false when it was not published. */
  async unpublish(bundleId: string): Promise<boolean> {
    return this.db.tx(async (db) => {
      const had = await db.get<PubRow>('SELECT * FROM registry_publications WHERE bundle_id = ?', [bundleId]);
      await deleteRows(db, bundleId);
      return Boolean(had);
    });
  }

  async publication(bundleId: string): Promise<Publication | undefined> {
    return (await this.list()).find((p) => p.bundleId === bundleId);
  }

  /** The publication of NAME:VERSION without its tags: what each files request needs, in one indexed lookup. */
  async publicationByName(name: string, version: string): Promise<Omit<Publication, 'tags'> | undefined> {
    const p = await this.db.get<PubRow>('SELECT * FROM registry_publications WHERE bundle_name = ? AND bundle_version = ?', [name, version]);
    return p && {
      bundleId: p.bundle_id, bundleName: p.bundle_name, bundleVersion: p.bundle_version, anonymous: Number(p.anonymous) === 1,
      publishedBy: p.published_by, publishedAt: Number(p.published_at),
    };
  }

  /** Every publication with its tags, by bundle name and version. */
  async list(): Promise<Publication[]> {
    const pubs = await this.db.all<PubRow>('SELECT * FROM registry_publications ORDER BY bundle_name, bundle_version');
    const tags = await this.db.all<{ repository: string; tag: string; digest: string; bundle_id: string }>(
      'SELECT repository, tag, digest, bundle_id FROM registry_tags ORDER BY repository, tag');
    return pubs.map((p) => ({
      bundleId: p.bundle_id, bundleName: p.bundle_name, bundleVersion: p.bundle_version, anonymous: Number(p.anonymous) === 1,
      publishedBy: p.published_by, publishedAt: Number(p.published_at),
      tags: tags.filter((t) => t.bundle_id === p.bundle_id).map(({ repository, tag, digest }) => ({ repository, tag, digest })),
    }));
  }

  async hasHost(host: string): Promise<boolean> {
    return Boolean(await this.db.get('SELECT 1 AS x FROM registry_repos WHERE host = ? LIMIT 1', [host]));
  }

  async exists(repository: string): Promise<boolean> {
    return Boolean(await this.db.get('SELECT 1 AS x FROM registry_repos WHERE repository = ? LIMIT 1', [repository]));
  }

  async byPath(path: string): Promise<string[]> {
    return (await this.db.all<{ repository: string }>('SELECT DISTINCT repository FROM registry_repos WHERE path = ? ORDER BY repository', [path])).map((r) => r.repository);
  }

  /** Whether any publication containing `repository` allows anonymous pull. */
  async anonymous(repository: string): Promise<boolean> {
    return Boolean(await this.db.get('SELECT 1 AS x FROM registry_repos WHERE repository = ? AND anonymous = 1 LIMIT 1', [repository]));
  }

  /** Whether anything at all is published for anonymous pull (decides GET /v2/ without a certificate). */
  async anyAnonymous(): Promise<boolean> {
    return Boolean(await this.db.get('SELECT 1 AS x FROM registry_publications WHERE anonymous = 1 LIMIT 1'));
  }

  async tagDigest(repository: string, tag: string): Promise<string | undefined> {
    return (await this.db.get<{ digest: string }>('SELECT digest FROM registry_tags WHERE repository = ? AND tag = ? LIMIT 1', [repository, tag]))?.digest;
  }

  /** Tags of a repository in lexical (byte) order, after `last`, at most `n`. */
  async tags(repository: string, last: string | undefined, n: number): Promise<string[]> {
    const rows = await this.db.all<{ tag: string }>('SELECT DISTINCT tag FROM registry_tags WHERE repository = ?', [repository]);
    return rows.map((r) => r.tag).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).filter((t) => last === undefined || t > last).slice(0, n);
  }

  async manifest(repository: string, digest: string): Promise<{ mediaType: string; body: Buffer } | undefined> {
    const r = await this.db.get<{ media_type: string; body_b64: string }>(
      'SELECT media_type, body_b64 FROM registry_manifests WHERE repository = ? AND digest = ? LIMIT 1', [repository, digest]);
    return r && { mediaType: r.media_type, body: Buffer.from(r.body_b64, 'base64') };
  }

  async blob(repository: string, digest: string): Promise<BlobLocation | undefined> {
    const r = await this.db.get<{ bundle_id: string; file_path: string; tar_offset: number; size: number }>(
      'SELECT bundle_id, file_path, tar_offset, size FROM registry_blobs WHERE repository = ? AND digest = ? LIMIT 1', [repository, digest]);
    return r && { bundleId: r.bundle_id, file: r.file_path, offset: Number(r.tar_offset), size: Number(r.size) };
  }
}

async function deleteRows(db: Db, bundleId: string): Promise<void> {
  for (const t of ['registry_tags', 'registry_repos', 'registry_manifests', 'registry_blobs', 'registry_publications']) {
    await db.run(`DELETE FROM ${t} WHERE bundle_id = ?`, [bundleId]);
  }
}
