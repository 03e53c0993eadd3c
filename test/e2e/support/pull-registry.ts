/**
 * A TLS registry with client-certificate auth in the fabric namespace, for e2e tests of what
 * hosts pull through containerd's hosts.toml. Certificates come from Ferry's own CA code
 * (controller/src/pki/ca.ts): the server certificate is the kind the controller's registry
 * listener uses, the client certificate is an agent's — so the test is the same when the
 * server is swapped.
 *
 * The server behind {@link PullRegistry} is Debian's `docker-registry` (distribution 2.8),
 * with `http.tls.clientcas` so a client without a fleet certificate fails the handshake, and
 * images pushed by skopeo. To run the same tests against Ferry's registry endpoint, implement
 * {@link PullRegistry} with a controller started with `--registry-addr` in the fabric and
 * `ferry registry publish` of a bundle holding the same images (see
 * examples/README.md): the tests only use `url`, the fleet files and `images`.
 */
import 'reflect-metadata';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { CertificateAuthority } from '../../../controller/src/pki/ca.js';
import { exportPrivateKeyPem, generateKeyPair } from '../../../common/src/pki.js';
import { FABRIC_IP, type Cluster, type FabricProcess } from '../harness/index.js';

/** Fleet TLS files on this machine, named as an agent's state directory names them. */
export interface FleetFiles {
  dir: string;
  ca: string;
  cert: string;
  key: string;
}

/** One image the registry serves: the name clients use and its manifest digest. */
export interface ServedImage {
  /** As a host names it, e.g. sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8. */
  ref: string;
  manifestDigest: string;
}

/** What a pull test needs from a registry, whichever program serves it. */
export interface PullRegistry {
  /** Base URL hosts dial (`https://10.77.0.1:5443`). */
  url: string;
  /** Names in the server certificate besides the address. */
  names: string[];
  images: ServedImage[];
  stop(): Promise<void>;
}

const DAY = 86_400_000;

/** A fleet CA, a server certificate for `names`, and one agent certificate, under `dir`. */
export async function makeFleetPki(dir: string, names: string[]): Promise<{ fleet: FleetFiles; serverCert: string; serverKey: string; ca: CertificateAuthority }> {
  const { ca } = await CertificateAuthority.loadOrCreate(join(dir, 'pki'));
  const server = await ca.ensureServerCert(join(dir, 'pki'), names);
  const fleetDir = join(dir, 'fleet');
  mkdirSync(fleetDir, { recursive: true });
  const keys = await generateKeyPair();
  const agent = await ca.issue({ publicKey: keys.publicKey, commonName: 'h1', role: 'agent', ttlMs: DAY });
  const fleet: FleetFiles = { dir: fleetDir, ca: join(fleetDir, 'ca.crt'), cert: join(fleetDir, 'agent.crt'), key: join(fleetDir, 'agent.key') };
  writeFileSync(fleet.ca, ca.certPem);
  writeFileSync(fleet.cert, agent.certPem);
  writeFileSync(fleet.key, await exportPrivateKeyPem(keys.privateKey), { mode: 0o600 });
  const serverCert = join(dir, 'server.crt');
  const serverKey = join(dir, 'server.key');
  writeFileSync(serverCert, server.certChainPem);
  writeFileSync(serverKey, server.keyPem, { mode: 0o600 });
  return { fleet, serverCert, serverKey, ca };
}

/** skopeo's --cert-dir layout: ca.crt, client.cert, client.key. */
function skopeoCertDir(dir: string, fleet: FleetFiles): string {
  const d = join(dir, 'skopeo-certs');
  mkdirSync(d, { recursive: true });
  copyFileSync(fleet.ca, join(d, 'ca.crt'));
  copyFileSync(fleet.cert, join(d, 'client.cert'));
  copyFileSync(fleet.key, join(d, 'client.key'));
  return d;
}

/**
 * Starts distribution 2.8 on FABRIC_IP:port with TLS and required client certificates, and
 * pushes each OCI archive to `path:tag` (as `docker://ADDR/path:tag`) with skopeo. `images`
 * maps each archive to the refs hosts will use: repository path and tag must match the push.
 */
export async function startDistributionRegistry(cluster: Cluster, dir: string, opts: {
  port: number; names: string[]; pushes: Array<{ archive: string; path: string; tag: string; hostRef: string }>;
}): Promise<PullRegistry & { fleet: FleetFiles; process: FabricProcess }> {
  for (const bin of ['/usr/bin/docker-registry', '/usr/bin/skopeo']) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: apt-get install docker-registry skopeo (listed in .ci/run)`);
  }
  const pki = await makeFleetPki(dir, [FABRIC_IP, ...opts.names]);
  const addr = `${FABRIC_IP}:${opts.port}`;
  const config = join(dir, 'registry.yml');
  writeFileSync(config, [
    'version: 0.1',
    'log: {level: info, accesslog: {disabled: true}}',
    `storage: {filesystem: {rootdirectory: ${join(dir, 'storage')}}}`,
    'http:',
    `  addr: ${addr}`,
    '  tls:',
    `    certificate: ${pki.serverCert}`,
    `    key: ${pki.serverKey}`,
    `    clientcas: [${pki.fleet.ca}]`,
    '',
  ].join('\n'));
  const proc = cluster.runInFabric(['/usr/bin/docker-registry', 'serve', config]);
  await proc.waitForOutput(/listening on/, 15_000);
  const certDir = skopeoCertDir(dir, pki.fleet);
  const images: ServedImage[] = [];
  for (const p of opts.pushes) {
    const dest = `docker://${addr}/${p.path}:${p.tag}`;
    const push = await cluster.fabricExec(['skopeo', 'copy', '--quiet', '--dest-cert-dir', certDir, `oci-archive:${p.archive}`, dest], { timeoutMs: 60_000 });
    if (push.exitCode !== 0) throw new Error(`skopeo copy to ${dest} failed: ${push.stderr}`);
    const raw = await cluster.fabricExec(['skopeo', 'inspect', '--raw', '--cert-dir', certDir, dest], { timeoutMs: 30_000 });
    if (raw.exitCode !== 0) throw new Error(`skopeo inspect ${dest} failed: ${raw.stderr}`);
    images.push({ ref: p.hostRef, manifestDigest: `sha256:${createHash('sha256').update(raw.stdout).digest('hex')}` });
  }
  return { url: `https://${addr}`, names: opts.names, images, fleet: pki.fleet, process: proc, stop: () => proc.stop() };
}
