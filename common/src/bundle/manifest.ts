import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ErrorCode, FerryError } from '../errors.js';

/** One chunk of a file: its sha256 (bare hex) and length. Offsets follow from the order. */
export interface ChunkRef {
  digest: string;
  size: number;
}

/** A file in a bundle, at a relative POSIX path under the bundle root. */
export interface BundleFile {
  path: string;
  /** Permission bits only (e.g. 0o755); no setuid/setgid/sticky. */
  mode: number;
  size: number;
  sha256: string;
  chunks: ChunkRef[];
}

/** A container image found inside one of the bundle's image tars. */
export interface BundleImage {
  /** Path of the tar in the bundle. */
  file: string;
  format: 'oci' | 'docker-archive';
  refs: string[];
  platform: { os: string; architecture: string; variant?: string };
  manifestDigest: string;
  configDigest: string;
  totalSize: number;
}

/** Registry rewrite rule: references starting with `from` are served as `to` + the rest. */
export interface RewriteRule {
  from: string;
  to: string;
}

/** What a bundle is: every file with its chunks, every image, and how image refs are rewritten. */
export interface BundleManifest {
  schema: 'ferry.bundle/v1';
  name: string;
  version: string;
  arch: string[];
  createdAt: string;
  files: BundleFile[];
  images: BundleImage[];
  rewrites: RewriteRule[];
}

/**
 * A manifest as shipped: the exact bytes that were signed, the ed25519
 * signature over them, and which operator key made it. Verifiers check the
 * bytes before parsing them, so nothing is re-serialised between signing and
 * verifying.
 */
export interface SignedManifest {
  manifest: string;
  signature: string;
  keyId: string;
}

/** Every chunk digest of a bundle, each once, in manifest order. */
export function uniqueChunkDigests(m: Pick<BundleManifest, 'files'>): string[] {
  return [...new Set(m.files.flatMap((f) => f.chunks.map((c) => c.digest)))];
}

/** JSON with object keys sorted at every level: the canonical form that is signed. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) => {
    if (val && typeof val === 'object' && !Array.isArray(val)) {
      return Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return val;
  });
}

/**
 * What a bundle holds, for telling a re-push of the same content from a
 * conflicting one: every field of the manifest except `createdAt` (a rebuild
 * stamps a new time on the same files). The signature is outside the manifest,
 * so a bundle rebuilt and re-signed, even by another trusted key, is the same
 * content.
 */
export function contentDigest(m: BundleManifest): string {
  const { createdAt: _ignored, ...content } = m;
  return createHash('sha256').update(canonicalJson(content)).digest('hex');
}

/** Content id of a bundle: sha256 of its signed manifest bytes. */
export function bundleId(signed: SignedManifest): string {
  return createHash('sha256').update(signed.manifest).digest('hex');
}

/** `ed25519:` + first 16 hex of sha256(SPKI DER): short, stable, shown to operators. */
export function keyIdOf(publicKey: KeyObject): string {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return `ed25519:${createHash('sha256').update(spki).digest('hex').slice(0, 16)}`;
}

/** A new operator signing key pair, as PEM (private PKCS#8, public SPKI). */
export function generateSigningKey(): { privatePem: string; publicPem: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

/**
 * Reads an operator key file and checks it is the half that is wanted: the
 * ed25519 private key for signing (`--key`), or the public key for `ferry key
 * add` (a private key must never reach the controller). A missing file, the
 * other half, or anything else is refused with the file's name and what was
 * expected, instead of OpenSSL's decoder error. Returns the PEM text.
 */
function readKeyFile(file: string, want: 'private' | 'public'): string {
  const [role, label, hint] = want === 'private'
    ? ['signing key', 'PRIVATE KEY', 'pass the private key that `ferry key gen` wrote (NAME.key, mode 0600); the .pub file is for `ferry key add`']
    : ['public key', 'PUBLIC KEY', 'pass the .pub file that `ferry key gen` wrote (the .key file stays with the operator)'];
  const bad = (message: string, h = hint) => new FerryError(ErrorCode.InvalidArgument, message, h);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw bad(code === 'ENOENT' ? `${role} file ${file} does not exist` : `cannot read ${role} file ${file} (${code ?? String(err)})`);
  }
  if (want === 'private' && /-----BEGIN PUBLIC KEY-----/.test(text)) {
    throw bad(`${file} is a public key; signing needs the private key (-----BEGIN PRIVATE KEY-----)`);
  }
  if (want === 'public' && /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw bad(`${file} is a private key; the controller must only get the public key (-----BEGIN PUBLIC KEY-----)`);
  }
  let key: KeyObject;
  try {
    key = want === 'private' ? createPrivateKey(text) : createPublicKey(text);
  } catch {
    throw bad(`${file} is not a PEM ${want} key (expected an ed25519 key beginning -----BEGIN ${label}-----)`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw bad(`${file} is a ${key.asymmetricKeyType ?? 'unknown'} key; Ferry signs with ed25519`, 'make one with `ferry key gen`');
  }
  return text;
}

/** The operator's ed25519 private key for signing, as PEM; see readKeyFile. */
export function readSigningKey(file: string): string {
  return readKeyFile(file, 'private');
}

/** The operator's ed25519 public key for `ferry key add`, as PEM; see readKeyFile. */
export function readPublicKey(file: string): string {
  return readKeyFile(file, 'public');
}

/** Signs a manifest with an operator's ed25519 private key (PEM). */
export function signManifest(m: BundleManifest, privatePem: string): SignedManifest {
  const key = createPrivateKey(privatePem);
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new FerryError(ErrorCode.InvalidArgument, `signing key is ${key.asymmetricKeyType}, not ed25519`, 'make one with `ferry key gen`');
  }
  const manifest = canonicalJson(m);
  return { manifest, signature: sign(null, Buffer.from(manifest), key).toString('base64'), keyId: keyIdOf(createPublicKey(key)) };
}

/**
 * Verifies a signed manifest against trusted operator public keys (PEM) and
 * returns the parsed manifest. Refuses unsigned, unknown-key and tampered
 * manifests with distinct messages.
 */
export function verifyManifest(signed: SignedManifest, trustedPems: readonly string[]): BundleManifest {
  if (!signed.signature || !signed.keyId) {
    throw new FerryError(ErrorCode.SignatureInvalid, 'the bundle manifest is not signed', 'sign bundles with `ferry bundle push --key operator.key`');
  }
  const key = trustedPems.map((p) => createPublicKey(p)).find((k) => keyIdOf(k) === signed.keyId);
  if (!key) {
    throw new FerryError(ErrorCode.SignatureInvalid, `the bundle is signed by ${signed.keyId}, which this host does not trust`,
      'sign with an operator key the fleet trusts (`ferry key ls` on the controller); hosts trust the keys they were given at enrollment');
  }
  if (!verify(null, Buffer.from(signed.manifest), key, Buffer.from(signed.signature, 'base64'))) {
    throw new FerryError(ErrorCode.SignatureInvalid, `the bundle manifest signature by ${signed.keyId} does not verify: the manifest was altered`,
      'do not use this bundle; push it again from the original signed build');
  }
  const m = JSON.parse(signed.manifest) as BundleManifest;
  if (m.schema !== 'ferry.bundle/v1') {
    throw new FerryError(ErrorCode.InvalidArgument, `unknown bundle schema ${String(m.schema)}`, 'upgrade Ferry on this side');
  }
  return m;
}
