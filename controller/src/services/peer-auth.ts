import { X509Certificate } from 'node:crypto';
import type { ServerUnaryCall } from '@grpc/grpc-js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { certIdentity, type CertRole } from '../../../common/src/pki.js';
import type { CertificateAuthority } from '../pki/ca.js';

/** Who is on the other end of a call, as proven by its client certificate. */
/** The part of any server call that carries transport identity. */
export type CallWithAuth = Pick<ServerUnaryCall<unknown, unknown>, 'getAuthContext' | 'getPeer'>;

export interface Peer {
  id: string;
  role: CertRole;
  serial: string;
  notAfter: number;
  address: string;
  /** Operator certificates: the role named in the certificate's ferry URN ('' when it names none, as before roles existed). */
  operatorRole: string;
}

/**
 * The role an operator certificate names in its SAN URI
 * `urn:ferry:operator:NAME:ROLE`; '' for certificates issued before roles
 * (`urn:ferry:operator:NAME`). The store's record decides; this must agree.
 */
export function operatorRoleOf(cert: X509Certificate): string {
  for (const part of (cert.subjectAltName ?? '').split(', ')) {
    const m = /^URI:urn:ferry:operator:[^:]+:([a-z]+)$/.exec(part);
    if (m) return m[1]!;
  }
  return '';
}

/** A verified certificate's holder; `role` as the certificate names it (possibly one no call accepts). */
export type CertHolder = Omit<Peer, 'role'> & { role: string };

/**
 * Who holds a client certificate that TLS presented (DER): the one place
 * the controller turns a certificate into an identity, for gRPC calls
 * (authenticatePeer), the registry listener and the console. The fleet CA
 * must verify it now (re-checked here whatever the transport settings);
 * which roles may do what is the caller's business.
 */
export function identifyCertificate(raw: Buffer, ca: CertificateAuthority, address: string): CertHolder {
  const cert = new X509Certificate(raw);
  if (!ca.verifies(cert)) {
    throw new FerryError(ErrorCode.Unauthenticated, `client certificate of ${certIdentity(cert).cn || '(no name)'} is not valid for this controller's CA now`,
      'enroll again against this controller, or use an operator certificate from `ferry operator cert`');
  }
  const { cn, role } = certIdentity(cert);
  return {
    id: cn, role, serial: cert.serialNumber.toLowerCase(), notAfter: Date.parse(cert.validTo), address,
    operatorRole: role === 'operator' ? operatorRoleOf(cert) : '',
  };
}

/** {@link identifyCertificate}, and the certificate must be of `role`. */
export function authenticateCertificate(raw: Buffer, ca: CertificateAuthority, role: CertRole, address: string): Peer {
  const holder = identifyCertificate(raw, ca, address);
  if (holder.role !== role) {
    throw new FerryError(ErrorCode.PermissionDenied, `a ${holder.role || 'unknown'} certificate cannot be used for ${role} calls`);
  }
  return { ...holder, role };
}

/**
 * Authenticates a call by its TLS client certificate. grpc-js reports a peer
 * certificate only when the TLS layer verified it against the CA, so "none"
 * covers a missing certificate, one from another CA, and an expired one.
 */
export function authenticatePeer(call: CallWithAuth, ca: CertificateAuthority, role: CertRole): Peer {
  const raw = call.getAuthContext().sslPeerCertificate?.raw;
  if (!raw) {
    throw new FerryError(ErrorCode.Unauthenticated, 'no valid client certificate: it is missing, issued by another CA, or expired',
      role === 'agent' ? 'enroll this host again with `ferry-agent join <join-string>`' : 'use an operator certificate from `ferry operator cert`');
  }
  return authenticateCertificate(raw, ca, role, call.getPeer());
}

/** What the certificate on a refused connection claims, unverified: for the log only, never for access. */
export interface ClaimedPeer {
  /** The CN the certificate names (an agent id for agent certificates), if a certificate was sent. */
  claimedId?: string;
  notAfter?: string;
  /** Why TLS did not accept it, e.g. CERT_HAS_EXPIRED. */
  tlsError?: string;
}

/**
 * grpc-js hides the client certificate when TLS did not verify it, which is
 * exactly when the log needs to say whose it was. The TLS socket is reached
 * through grpc-js internals (pinned 1.14; the session test fails if they
 * move), and nothing read here grants anything.
 */
export function claimedPeer(call: unknown): ClaimedPeer {
  let node = call as Record<string, unknown> | undefined;
  for (let i = 0; i < 8 && node; i++) {
    const socket = (node['stream'] as { session?: { socket?: unknown } } | undefined)?.session?.socket;
    if (socket && typeof (socket as { getPeerCertificate?: unknown }).getPeerCertificate === 'function') {
      const s = socket as { getPeerCertificate(): { raw?: Buffer }; authorizationError?: Error | string | null };
      const raw = s.getPeerCertificate()?.raw;
      const out: ClaimedPeer = {};
      if (s.authorizationError) out.tlsError = String((s.authorizationError as { code?: string }).code ?? s.authorizationError);
      if (raw) {
        try {
          const cert = new X509Certificate(raw);
          out.claimedId = certIdentity(cert).cn;
          out.notAfter = new Date(cert.validTo).toISOString();
        } catch {
          // unparseable: nothing to name
        }
      }
      return out;
    }
    node = (node['call'] ?? node['nextCall']) as Record<string, unknown> | undefined;
  }
  return {};
}
