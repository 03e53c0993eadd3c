import * as x509 from '@peculiar/x509';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import {
  EC_ALG, exportPrivateKeyPem, generateKeyPair, importPrivateKeyPem, randomSerial, spkiPin,
  type CertRole, type CryptoKey,
} from '../../../common/src/pki.js';
import { ensurePrivateDir, writeFileAtomic } from '../../../common/src/secure-fs.js';

const DAY = 86_400_000;
/** Issued certificates start this far in the past, so a host whose clock is a little behind still accepts them. */
const BACKDATE_MS = 5 * 60_000;

/** What a certificate request to the CA asks for; the CA decides names and usages. */
export interface IssueRequest {
  publicKey: x509.PublicKey | CryptoKey;
  commonName: string;
  role: CertRole;
  ttlMs: number;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Operator certificates: the role, written into the SAN URI as urn:ferry:operator:NAME:ROLE. */
  operatorRole?: string;
}

export interface Issued {
  certPem: string;
  serial: string;
  notAfter: Date;
}

/**
 * The controller's certificate authority: an ECDSA P-256 key and self-signed
 * certificate created on first start in DATA/pki, key mode 0600.
 */
export class CertificateAuthority {
  private constructor(
    readonly certPem: string,
    readonly cert: X509Certificate,
    private readonly key: CryptoKey,
    private readonly peculiarCert: x509.X509Certificate,
  ) {}

  /** sha256 pin of the CA's SubjectPublicKeyInfo, as printed for operators. */
  get pin(): string {
    return spkiPin(this.certPem);
  }

  /** Loads the CA from `dir`, creating it first if there is none. */
  static async loadOrCreate(dir: string): Promise<{ ca: CertificateAuthority; created: boolean }> {
    ensurePrivateDir(dir);
    const certPath = join(dir, 'ca.crt');
    const keyPath = join(dir, 'ca.key');
    let created = false;
    if (!existsSync(certPath) || !existsSync(keyPath)) {
      if (existsSync(certPath) !== existsSync(keyPath)) {
        throw new FerryError(ErrorCode.Config, `${dir} holds only one of ca.crt and ca.key`,
          'restore the missing file from backup; a new CA would orphan every enrolled agent');
      }
      const keys = await generateKeyPair();
      const now = Date.now();
      const cert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: randomSerial(),
        name: 'CN=Ferry CA, O=Ferry',
        notBefore: new Date(now - BACKDATE_MS),
        notAfter: new Date(now + 3650 * DAY),
        signingAlgorithm: EC_ALG,
        keys,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        ],
      });
      writeFileAtomic(keyPath, await exportPrivateKeyPem(keys.privateKey), 0o600);
      writeFileAtomic(certPath, cert.toString('pem'), 0o644);
      created = true;
    }
    const certPem = withNewline(readFileSync(certPath, 'utf8'));
    const key = await importPrivateKeyPem(readFileSync(keyPath, 'utf8'));
    const ca = new CertificateAuthority(certPem, new X509Certificate(certPem), key, new x509.X509Certificate(certPem));
    return { ca, created };
  }

  /** Signs a leaf certificate. Leaf certificates can never sign others (CA:false). */
  async issue(req: IssueRequest): Promise<Issued> {
    const now = Date.now();
    const serial = randomSerial();
    const notAfter = new Date(now + req.ttlMs);
    const usage =
      req.role === 'controller' || req.role === 'relay' ? [x509.ExtendedKeyUsage.serverAuth] : [x509.ExtendedKeyUsage.clientAuth];
    const altNames: x509.JsonGeneralName[] = [
      ...(req.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(req.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    if (req.role !== 'controller') {
      const suffix = req.role === 'operator' && req.operatorRole ? `:${req.operatorRole}` : '';
      altNames.push({ type: 'url', value: `urn:ferry:${req.role}:${req.commonName}${suffix}` });
    }
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: `CN=${req.commonName}, OU=${req.role}, O=Ferry`,
      issuer: this.peculiarCert.subject,
      // Short-lived certificates get a proportionally short backdate, so that
      // "a third of the lifetime left" still means what it says.
      notBefore: new Date(now - Math.min(BACKDATE_MS, req.ttlMs / 4)),
      notAfter,
      signingAlgorithm: EC_ALG,
      publicKey: req.publicKey,
      signingKey: this.key,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(usage),
        new x509.SubjectAlternativeNameExtension(altNames),
        await x509.AuthorityKeyIdentifierExtension.create(this.peculiarCert),
      ],
    });
    const certPem = withNewline(cert.toString('pem'));
    // Record the serial as TLS reports it (node drops leading zero bytes), so lookups match.
    return { certPem, serial: new X509Certificate(certPem).serialNumber.toLowerCase(), notAfter };
  }

  /** True when `cert` was signed by this CA and is valid at `now`. */
  verifies(cert: X509Certificate, now = Date.now()): boolean {
    if (!cert.checkIssued(this.cert)) return false;
    if (!cert.verify(this.cert.publicKey)) return false;
    return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
  }

  /**
   * The controller's TLS server certificate in DATA/pki/server.{crt,key},
   * reissued when the requested names are not all in it or it nears expiry.
   */
  async ensureServerCert(dir: string, names: string[]): Promise<{ certChainPem: string; keyPem: string }> {
    const certPath = join(dir, 'server.crt');
    const keyPath = join(dir, 'server.key');
    if (existsSync(certPath) && existsSync(keyPath)) {
      const pem = readFileSync(certPath, 'utf8');
      const cert = new X509Certificate(pem);
      const alt = cert.subjectAltName ?? '';
      const hasAll = names.every((n) => alt.includes(isIP(n) ? `IP Address:${n}` : `DNS:${n}`));
      const fresh = Date.parse(cert.validTo) - Date.now() > 30 * DAY;
      if (hasAll && fresh && this.verifies(cert)) {
        return { certChainPem: pemJoin(pem, this.certPem), keyPem: readFileSync(keyPath, 'utf8') };
      }
    }
    const keys = await generateKeyPair();
    const issued = await this.issue({
      publicKey: keys.publicKey,
      commonName: names[0] ?? 'ferry-controller',
      role: 'controller',
      ttlMs: 365 * DAY,
      dnsNames: names.filter((n) => !isIP(n)),
      ipAddresses: names.filter((n) => isIP(n)),
    });
    const keyPem = await exportPrivateKeyPem(keys.privateKey);
    writeFileAtomic(keyPath, keyPem, 0o600);
    writeFileAtomic(certPath, issued.certPem, 0o644);
    return { certChainPem: pemJoin(issued.certPem, this.certPem), keyPem };
  }
}

function withNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

/** Concatenates PEM blocks so each starts on its own line (OpenSSL rejects "-----END...-----BEGIN"). */
function pemJoin(...pems: string[]): string {
  return pems.map(withNewline).join('');
}
