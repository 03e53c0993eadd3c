/**
 * The TLS 1.3 cipher order every Ferry server uses.
 *
 * Node's default order is AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM, and a
 * Node server honours its own order, so every client (Go's skopeo and ctr
 * included, which ask for AES-128-GCM first) was given AES-256-GCM: 14 AES
 * rounds per block instead of 10, about 0.07 CPU-s more per GiB served on
 * this class of machine (openssl speed: 3.9 GB/s against 3.0 GB/s). Go's
 * servers (docker-registry) and BoringSSL pick AES-128-GCM for clients that
 * offer it; so does Ferry now. AES-128-GCM is as strong as the P-256 keys and
 * the SHA-256 digests around it, and it is never slower than AES-256-GCM on
 * any hardware, so moving it ahead costs hosts without AES instructions
 * nothing. TLS 1.2 suites keep Node's order.
 */
import tls from 'node:tls';

/** The TLS 1.3 suite Ferry's servers prefer. */
export const PREFERRED_TLS13_SUITE = 'TLS_AES_128_GCM_SHA256';

/** Node's default cipher list with {@link PREFERRED_TLS13_SUITE} moved to the front. */
export function ferryCipherList(defaults: string = tls.DEFAULT_CIPHERS): string {
  const rest = defaults.split(':').filter((c) => c !== PREFERRED_TLS13_SUITE && c !== '');
  return [PREFERRED_TLS13_SUITE, ...rest].join(':');
}

/**
 * Makes Ferry's order the process's default for every TLS context created
 * from now on. grpc-js offers no cipher option of its own (it reads one
 * environment variable when it loads), so the servers' secure contexts take
 * the process default; each server calls this before it binds. Idempotent.
 */
export function preferFerryCiphers(): void {
  const list = ferryCipherList();
  if (tls.DEFAULT_CIPHERS !== list) tls.DEFAULT_CIPHERS = list;
}

/** The TLS 1.3 suites of {@link ferryCipherList}, in order (for OpenSSL's `Ciphersuites`, e.g. a bench peer's nginx). */
export function ferryTls13Suites(): string {
  return ferryCipherList().split(':').filter((c) => c.startsWith('TLS_')).join(':');
}
