/**
 * What the site registry already serves, as bundle lint sees it (issue 11 item 6): an image a
 * bundle's files reference counts as available when it is in the bundle's own tars OR
 * published in the controller's registry under the name the reference has after the bundle's
 * rewrite rules. The controller's registry store answers these two questions; lint never
 * imports it (common does not depend on the controller), it only receives this interface.
 *
 * Repository names are full and normalised, as image-ref.ts makes them: registry host plus
 * path (`docker.io/library/nginx`, `sea.hub:5000/sealerio/lvscare`, `registry.k8s.io/pause`).
 */

/** A read-only view of the registry's published tags and manifests. */
export interface PublishedImages {
  /** The manifest digest `repository:tag` resolves to, or undefined when it is not published. */
  tagDigest(repository: string, tag: string): Promise<string | undefined>;
  /** True when `repository` serves the manifest (or index) with this digest. */
  hasManifest(repository: string, digest: string): Promise<boolean>;
}

/** One published tag, for {@link publishedImagesFrom}. */
export interface PublishedTag {
  repository: string;
  tag: string;
  /** Manifest digest the tag resolves to. */
  digest: string;
  /** Other manifests served in the repository (the platforms below an index). */
  alsoDigests?: string[];
}

/** A PublishedImages over a fixed list: for tests, and for a snapshot taken once per lint. */
export function publishedImagesFrom(tags: readonly PublishedTag[]): PublishedImages {
  const byTag = new Map(tags.map((t) => [`${t.repository}:${t.tag}`, t.digest]));
  const digests = new Set(tags.flatMap((t) => [t.digest, ...(t.alsoDigests ?? [])].map((d) => `${t.repository}@${d}`)));
  return {
    tagDigest: async (repository, tag) => byTag.get(`${repository}:${tag}`),
    hasManifest: async (repository, digest) => digests.has(`${repository}@${digest}`),
  };
}
