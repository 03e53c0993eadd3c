/**
 * Typed errors for the bundle library (chunking, chunk store, image-tar inspection).
 * They are FerryErrors with codes from the project-wide set, so they cross the
 * gRPC boundary like any other error; messages may change, codes never do.
 */

import { FerryError, type ErrorCode } from '../errors.js';

/** The codes produced by this library: a subset of Ferry's closed ErrorCode set. */
export type BundleErrorCode = Extract<ErrorCode,
  | 'CHUNKER_INVALID_OPTIONS'
  | 'DIGEST_INVALID'
  | 'CHUNK_DIGEST_MISMATCH'
  | 'CHUNK_NOT_FOUND'
  | 'CHUNK_CORRUPT'
  | 'TAR_TRUNCATED'
  | 'TAR_MALFORMED'
  | 'TAR_PATH_ESCAPE'
  | 'TAR_LINK_ESCAPE'
  | 'IMAGE_FORMAT_UNKNOWN'
  | 'IMAGE_METADATA_INVALID'
  | 'IMAGE_BLOB_DIGEST_MISMATCH'
  | 'IMAGE_BLOB_MISSING'>;

/** Base class: `err instanceof BundleError` catches everything thrown by this library on purpose. */
export class BundleError extends FerryError {
  declare readonly code: BundleErrorCode;
  declare readonly hint: string;

  constructor(code: BundleErrorCode, message: string, hint: string, options?: { cause?: unknown }) {
    super(code, message, hint, options);
  }
}

export class ChunkerOptionsError extends BundleError {
  constructor(message: string) {
    super('CHUNKER_INVALID_OPTIONS', message, 'Use min <= avg <= max, avg a power of two, min >= 64 bytes.');
  }
}

/** A digest string is not 64 lowercase hex characters (possibly a path-traversal attempt). */
export class InvalidDigestError extends BundleError {
  constructor(readonly digest: string) {
    super(
      'DIGEST_INVALID',
      `invalid sha256 digest ${JSON.stringify(digest.length > 80 ? digest.slice(0, 80) + '…' : digest)}`,
      'Digests must be 64 lowercase hex characters (no "sha256:" prefix); check the manifest that supplied it.',
    );
  }
}

/** Bytes offered to the chunk store do not hash to the digest they were offered under. */
export class ChunkDigestMismatchError extends BundleError {
  constructor(readonly expected: string, readonly actual: string) {
    super(
      'CHUNK_DIGEST_MISMATCH',
      `chunk content hashes to ${actual}, expected ${expected}`,
      'The chunk was corrupted in transit or the source is tampered; refetch it, and if it persists rebuild the bundle.',
    );
  }
}

/** The chunk is not in the store. */
export class ChunkNotFoundError extends BundleError {
  constructor(readonly digest: string) {
    super('CHUNK_NOT_FOUND', `chunk ${digest} is not in the store`, 'Fetch the chunk from the controller (or re-upload the bundle).');
  }
}

/** A stored chunk no longer hashes to its name (disk corruption or tampering); it has been removed. */
export class ChunkCorruptError extends BundleError {
  constructor(readonly digest: string, readonly actual: string) {
    super(
      'CHUNK_CORRUPT',
      `stored chunk ${digest} hashes to ${actual}; removed from the store`,
      'The chunk will be refetched on next use; if this repeats, check the disk for errors.',
    );
  }
}

/** The tar stream ended in the middle of a header or entry, or without an end-of-archive marker. */
export class TarTruncatedError extends BundleError {
  constructor(message: string) {
    super('TAR_TRUNCATED', message, 'The file is incomplete; copy or re-export it again and compare its size/sha256 with the source.');
  }
}

/** The tar stream is not a well-formed ustar/pax/GNU archive (bad checksum, bad numeric field, ...). */
export class TarMalformedError extends BundleError {
  constructor(message: string) {
    super('TAR_MALFORMED', message, 'The file is not a valid tar archive; re-export it (e.g. `docker save` / `skopeo copy ... oci-archive:`).');
  }
}

/** An entry name is absolute or contains a `..` component. */
export class TarPathEscapeError extends BundleError {
  constructor(readonly entryName: string) {
    super(
      'TAR_PATH_ESCAPE',
      `tar entry ${JSON.stringify(entryName)} has an absolute path or a ".." component`,
      'Refuse this archive: it may try to write outside its directory. Re-export the image from a trusted source.',
    );
  }
}

/** A symlink or hardlink entry points outside the archive root. */
export class TarLinkEscapeError extends BundleError {
  constructor(readonly entryName: string, readonly target: string) {
    super(
      'TAR_LINK_ESCAPE',
      `tar link ${JSON.stringify(entryName)} -> ${JSON.stringify(target)} points outside the archive`,
      'Refuse this archive: links escaping the archive root are a known attack. Re-export the image from a trusted source.',
    );
  }
}

/** The tar is neither an OCI image layout nor a docker-archive. */
export class ImageFormatError extends BundleError {
  constructor(message: string) {
    super('IMAGE_FORMAT_UNKNOWN', message, 'Export images with `docker save` or `skopeo copy ... oci-archive:` / `docker-archive:`.');
  }
}

/** index.json / manifest.json / a manifest or config blob is not the JSON shape we expect. */
export class ImageMetadataError extends BundleError {
  constructor(message: string) {
    super('IMAGE_METADATA_INVALID', message, 'The image metadata is damaged or from an unsupported tool; re-export the image.');
  }
}

/** An OCI blob's content does not hash to its file name (or its size differs from its descriptor). */
export class ImageBlobDigestMismatchError extends BundleError {
  constructor(readonly blob: string, readonly detail: string) {
    super(
      'IMAGE_BLOB_DIGEST_MISMATCH',
      `image blob ${blob}: ${detail}`,
      'The image tar is corrupted or tampered; re-export it from the source registry or daemon.',
    );
  }
}

/** A manifest, config or layer referenced by the image metadata is not in the tar. */
export class ImageBlobMissingError extends BundleError {
  constructor(readonly blob: string, readonly referencedBy: string) {
    super(
      'IMAGE_BLOB_MISSING',
      `${referencedBy} references ${blob}, which is not in the tar`,
      'The export is incomplete (e.g. a partial multi-platform save); re-export with all platforms or only the one you need.',
    );
  }
}
