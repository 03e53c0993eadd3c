/**
 * The controller's two gRPC listeners: the TLS port that agents and remote
 * operators dial, and the admin socket for local operators. Apart from
 * controller.ts, which orders the start and the stop, because how each
 * listener is made (certificates, cipher order, socket permissions, HTTP/2
 * windows) is a concern of its own.
 */
import { Server, ServerCredentials, experimental } from '@grpc/grpc-js';
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import { EnrollmentService } from '../../common/src/gen/ferry/v1/enrollment.js';
import { RolloutsService } from '../../common/src/gen/ferry/v1/rollouts.js';
import { AgentSessionService } from '../../common/src/gen/ferry/v1/session.js';
import { HealthService } from '../../common/src/gen/grpc/health/v1/health.js';
import { FastChunksService, frameChunksInPlace } from '../../common/src/grpc-chunks.js';
import { serverOptions, widenServerWindows } from '../../common/src/grpc-options.js';
import { preferFerryCiphers } from '../../common/src/tls-ciphers.js';
import { adminService } from './services/admin.js';
import { chunksService } from './services/chunks.js';
import type { ControllerContext } from './services/context.js';
import { enrollmentService } from './services/enrollment.js';
import { FastAdminService as AdminService } from './services/fast-admin.js';
import type { HealthState } from './services/health.js';
import { ReauthService } from './services/reauth.js';
import { rolloutsService } from './services/rollouts.js';
import { sessionService } from './services/session.js';
import { ReauthChallenges } from './store/reauth-challenges.js';

/** HTTP/2 receive window of the admin socket's sessions (chunks of `ferry bundle push` arrive on it). */
export const ADMIN_WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * A static certificate provider: the server's chain and the CA that client
 * certificates must chain to. Listeners are called on the next tick because
 * grpc-js registers its watcher only after adding them.
 */
function staticProvider(certChainPem: string, keyPem: string, caPem: string): experimental.CertificateProvider {
  return {
    addCaCertificateListener: (l) => setImmediate(() => l({ caCertificate: Buffer.from(caPem) })),
    removeCaCertificateListener: () => undefined,
    addIdentityCertificateListener: (l) => setImmediate(() => l({ certificate: Buffer.from(certChainPem), privateKey: Buffer.from(keyPem) })),
    removeIdentityCertificateListener: () => undefined,
  };
}

/** This host's IPv4 addresses other than loopback (certificate names and join addresses of a wildcard listen). */
export function localAddresses(): string[] {
  return Object.values(networkInterfaces()).flat().filter((i) => i && !i.internal && i.family === 'IPv4').map((i) => i!.address);
}

function bind(server: Server, addr: string, creds: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(addr, creds, (err, port) => (err ? reject(err) : resolve(port))));
}

/** Refuses to start over a live controller's socket, removes a stale one. */
export async function clearStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const live = await new Promise<boolean>((resolve) => {
    const s = netConnect(path, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  if (live) {
    throw new FerryError(ErrorCode.Config, `another controller is already running on ${path}`, 'stop it first, or give this one another --data directory');
  }
  unlinkSync(path);
}

/**
 * The TLS server for agents and remote operators, bound to --listen.
 * Returns it with its port; pushes its undo onto `opened` (see Controller.start).
 */
export async function serveTls(ctx: ControllerContext, health: HealthState, serverCert: { certChainPem: string; keyPem: string },
  opened: Array<() => unknown>): Promise<{ server: Server; port: number }> {
  const { config, log, ca } = ctx;
  // Chunks.Fetch messages framed in place, without grpc-js's copy per chunk (grpc-chunks.ts).
  if (!frameChunksInPlace()) log.warn('this grpc-js frames messages elsewhere: chunks are served with a copy each (slower, same bytes)');
  const tlsServer = new Server(serverOptions());
  opened.push(() => tlsServer.forceShutdown());
  const reauth = new ReauthService({
    agents: ctx.agents, challenges: new ReauthChallenges(ctx.db), ca, audit: ctx.audit, log: log.child({ part: 'reauth' }),
    agentCertTtlMs: config.agentCertTtlMs, reauthWindowMs: config.agentReauthWindowMs, now: Date.now,
  });
  tlsServer.addService(EnrollmentService, enrollmentService(ctx, reauth));
  tlsServer.addService(AgentSessionService, sessionService(ctx));
  tlsServer.addService(FastChunksService, chunksService(ctx));
  tlsServer.addService(AdminService, adminService(ctx, { requireOperatorCert: true }));
  tlsServer.addService(RolloutsService, rolloutsService(ctx, ctx.rollouts, { requireOperatorCert: true }));
  tlsServer.addService(HealthService, health.service());
  // Client certificates are requested but not required at the TLS layer:
  // enrollment has none yet. Each session and remote admin call checks its own.
  const provider = staticProvider(serverCert.certChainPem, serverCert.keyPem, ca.certPem);
  preferFerryCiphers();
  const creds = experimental.createCertificateProviderServerCredentials(provider, provider, false);
  try {
    return { server: tlsServer, port: await bind(tlsServer, config.listen, creds) };
  } catch (err) {
    throw new FerryError(ErrorCode.Config, `cannot listen on ${config.listen}: ${(err as Error).message}`,
      'pick a free port with --listen, or stop whatever holds this one');
  }
}

/** The admin socket for local operators (no client certificate: the socket is the owner's only). Pushes its undo onto `opened`. */
export async function serveAdminSocket(ctx: ControllerContext, health: HealthState, opened: Array<() => unknown>): Promise<Server> {
  const { config, log } = ctx;
  const adminServer = new Server(serverOptions());
  opened.push(() => adminServer.forceShutdown());
  adminServer.addService(AdminService, adminService(ctx, { requireOperatorCert: false }));
  adminServer.addService(RolloutsService, rolloutsService(ctx, ctx.rollouts, { requireOperatorCert: false }));
  adminServer.addService(HealthService, health.service());
  mkdirSync(join(config.adminSocket, '..'), { recursive: true, mode: 0o700 });
  const oldUmask = process.umask(0o177); // the socket is born 0600: no window where others can connect
  try {
    await bind(adminServer, `unix://${config.adminSocket}`, ServerCredentials.createInsecure());
    // Pushes upload chunks on this socket: an 8 MiB receive window instead of grpc-js's 64 KiB (common/src/grpc-options.ts).
    if (!widenServerWindows(adminServer, ADMIN_WINDOW_BYTES, 1024 * 1024)) log.warn('this grpc-js keeps its HTTP/2 servers elsewhere: pushes use the 64 KiB default window (slower, same bytes)');
  } finally {
    process.umask(oldUmask);
  }
  opened.push(() => unlinkSync(config.adminSocket));
  chmodSync(config.adminSocket, 0o600);
  return adminServer;
}
