import 'reflect-metadata';
import { createHash, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { ErrorCode, FerryError } from './errors.js';

let x509Lib: Promise<typeof import('@peculiar/x509')> | undefined;

/**
 * @peculiar/x509 (~10 MiB of RSS) is needed here only to write a CSR, at
 * enrollment and at certificate renewal: loaded then, so an idle or staging
 * agent does not carry it. It must use node's webcrypto; set once.
 */
function x509(): Promise<typeof import('@peculiar/x509')> {
  return x509Lib ??= import('@peculiar/x509').then((lib) => {
    lib.cryptoProvider.set(webcrypto as never);
    return lib;
  });
}

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type { CryptoKey, CryptoKeyPair };

/** ECDSA P-256 with SHA-256: the only algorithm Ferry issues or accepts. */
export const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/**
 * Role carried in a certificate's OU: what the holder may do on the
 * controller. `relay`: the TLS server certificate of an agent serving chunks
 * to its site (docs/relays.md); CN is that agent's id.
 */
export type CertRole = 'agent' | 'operator' | 'controller' | 'relay';

/** Generates a new P-256 key pair; extractable so it can be written to disk. */
export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** PKCS#8 PEM of a private key (what grpc-js and node's tls accept). */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return toPem(der, 'PRIVATE KEY');
}

/** Imports a PKCS#8 PEM P-256 private key for signing. */
export async function importPrivateKeyPem(pem: string): Promise<CryptoKey> {
  const der = fromPem(pem);
  return (await webcrypto.subtle.importKey('pkcs8', der, EC_ALG, false, ['sign'])) as CryptoKey;
}

/** A PKCS#10 request for the given key pair, with no identity claims. */
export async function createCsr(keys: CryptoKeyPair, commonName = 'ferry-agent'): Promise<string> {
  const csr = await (await x509()).Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: EC_ALG,
  });
  return csr.toString('pem');
}

/**
 * The CA pin: `sha256:` + hex of the SHA-256 of the certificate's
 * SubjectPublicKeyInfo (the same construction as kubeadm's CA cert hash).
 */
export function spkiPin(certPem: string | Buffer): string {
  const cert = new X509Certificate(certPem);
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** Validates the text form of a CA pin; returns it normalised to lowercase. */
export function parsePin(pin: string): string {
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(pin.trim());
  if (!m) {
    throw new FerryError(
      ErrorCode.InvalidArgument,
      `CA pin "${pin}" is not of the form sha256:<64 hex digits>`,
      'copy the pin exactly as `ferry controller start` or `ferry token create` printed it',
    );
  }
  return `sha256:${m[1]!.toLowerCase()}`;
}

/** Random positive serial number, 16 bytes of hex. */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

/** PEM armour for DER bytes. */
export function toPem(der: Buffer, label: string): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** DER bytes of the first PEM block in `pem`. */
export function fromPem(pem: string): Buffer {
  const m = /-----BEGIN [^-]+-----([\s\S]*?)-----END [^-]+-----/.exec(pem);
  if (!m) throw new FerryError(ErrorCode.InvalidArgument, 'not a PEM document');
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

/** Splits a PEM bundle into its certificates. */
export function splitPemCerts(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
}

/** Reads the role (OU) and identity (CN) of a certificate. */
export function certIdentity(cert: X509Certificate): { cn: string; role: string } {
  const fields = Object.fromEntries(
    cert.subject.split('\n').map((l) => {
      const i = l.indexOf('=');
      return [l.slice(0, i), l.slice(i + 1)];
    }),
  );
  return { cn: fields['CN'] ?? '', role: fields['OU'] ?? '' };
}

/** Rebuilds a key pair from a stored PKCS#8 private key (to sign a renewal CSR with the same key). */
export async function keyPairFromPem(pem: string): Promise<CryptoKeyPair> {
  const privateKey = await webcrypto.subtle.importKey('pkcs8', fromPem(pem), EC_ALG, true, ['sign']);
  const jwk = await webcrypto.subtle.exportKey('jwk', privateKey);
  delete jwk.d;
  jwk.key_ops = ['verify'];
  const publicKey = await webcrypto.subtle.importKey('jwk', jwk, EC_ALG, true, ['verify']);
  return { privateKey, publicKey };
}
