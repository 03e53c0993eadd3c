/**
 * Phase 4 of the foundation run, for context: plain Node HTTP/2 over mTLS
 * and plain TLS for the idle connections, plain TLS + HTTPS for the
 * enrollment handshakes, plain spawn() for the fan-out's process starts,
 * each set beside Ferry's own figure. The peer server (peer-server.js) is
 * started with the controller's certificate; the simulated fleet is the
 * client. Stops the fleet at the end.
 */
import { closeSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FleetProcs } from './fleet-procs.js';
import { ENROLL_BODY_BYTES, ENROLL_REPLY_BYTES, type FoundationOptions } from './foundation-options.js';
import { progress, type FoundationProcs } from './foundation-procs.js';
import { merge, settledMem, type Concurrent } from './foundation-readings.js';
import { kib, notes, pct, raw, row } from './foundation-report.js';
import { Rpc, sleep, stats, type ProcMem, type Stats } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url)); // build/scripts/bench

/** Ferry's figures the peers are set beside. */
export interface PeersVersus {
  perSessionGc: number;
  enrollWallMs: number;
  keygenWall: number;
  keygen: Concurrent[];
  /** First-line latencies of the admin-API fan-out rounds. */
  fan: Stats;
}

/** Runs phase 4 (see module comment); `ctlPem` is the controller's certificate chain, key and CA. */
export async function peers(o: FoundationOptions, p: FoundationProcs, fleet: FleetProcs, ctlPem: { certChainPem: string; keyPem: string; caPem: string }, ours: PeersVersus): Promise<void> {
  const { agents: N, logs: LOGS } = o;
  const { spawnNode, stopChild } = p;
  const { perSessionGc, enrollWallMs, keygenWall, keygen, fan } = ours;
  progress('peers: plain Node HTTP/2 + HTTPS with the controller\'s certificate');
  const peerLog = openSync(join(LOGS, 'peer.log'), 'w');
  const peerProc = spawnNode(['--expose-gc', join(here, 'peer-server.js')], N * 2 + 512, ['ignore', peerLog, peerLog, 'ipc']);
  closeSync(peerLog);
  const peer = new Rpc(peerProc, 'peer');
  const { httpsPort, h2Port, tlsPort } = await peer.call<{ httpsPort: number; h2Port: number; tlsPort: number }>('start', { ...ctlPem, replyBytes: ENROLL_REPLY_BYTES });
  type PeerMem = { proc: ProcMem; heapUsed: number; external: number; heldStreams: number; heldTls: number };
  const peerMem = (gc: boolean) => peer.call<PeerMem>('mem', { gc });
  const pBase = (await settledMem(peerMem)).gc;
  const holds = await fleet.all<Concurrent>('h2Hold', { address: `127.0.0.1:${h2Port}`, caPem: ctlPem.caPem }, 180_000);
  const pIdle = (await settledMem(peerMem)).gc;
  const held = pIdle.heldStreams;
  const peerPerSession = ((pIdle.proc.vmRssKiB - pBase.proc.vmRssKiB) * 1024) / Math.max(1, held);
  await fleet.all('h2Release', {}, 60_000);
  const ratioMem = perSessionGc / peerPerSession;
  row(`Peer: plain Node HTTP/2 server, ${held} idle mTLS connections with one open stream each`, `${kib(peerPerSession)} RSS per connection → Ferry's ${kib(perSessionGc)} is ${ratioMem.toFixed(1)}×`);
  if (Object.keys(merge(holds).errors).length) notes.push(`peer HTTP/2 errors: ${JSON.stringify(merge(holds).errors)}`);

  const tBase = (await settledMem(peerMem)).gc;
  const tlsHolds = await fleet.all<Concurrent>('tlsHold', { address: `127.0.0.1:${tlsPort}`, caPem: ctlPem.caPem }, 180_000);
  const tIdle = (await settledMem(peerMem)).gc;
  const heldTls = tIdle.heldTls;
  const tlsPerConn = ((tIdle.proc.vmRssKiB - tBase.proc.vmRssKiB) * 1024) / Math.max(1, heldTls);
  await fleet.all('tlsRelease', {}, 60_000);
  row(`Peer: plain Node TLS server, ${heldTls} idle mTLS connections (no HTTP/2; one byte each way, then idle)`, `${kib(tlsPerConn)} RSS per connection`);
  if (Object.keys(merge(tlsHolds).errors).length) notes.push(`peer TLS-hold errors: ${JSON.stringify(merge(tlsHolds).errors)}`);

  await sleep(1_000);
  const tPeer = performance.now();
  const peerTls = await fleet.all<Concurrent>('peerTls', { address: `127.0.0.1:${httpsPort}`, caPem: ctlPem.caPem, bodyBytes: ENROLL_BODY_BYTES }, 300_000);
  const peerTlsWall = performance.now() - tPeer;
  const peerTlsMerged = merge(peerTls);
  const peerTlsOk = peerTlsMerged.latencies.length;
  row(`Peer: ${N} concurrent bare TLS handshakes + HTTPS POSTs (plain Node, same cert, 2 handshakes each like a join)`,
    `${(peerTlsWall / 1000).toFixed(2)} s (${(peerTlsOk / (peerTlsWall / 1000)).toFixed(0)}/s, ${peerTlsOk}/${N} ok) → Ferry's enrollment takes ${(enrollWallMs / peerTlsWall).toFixed(1)}×`);
  row(`Peer: agent-side key generation + CSR for ${N} (no network)`, `${(keygenWall / 1000).toFixed(2)} s (${(keygenWall / enrollWallMs * 100).toFixed(0)}% of the enrollment wall time)`);
  if (Object.keys(peerTlsMerged.errors).length) notes.push(`peer TLS errors: ${JSON.stringify(peerTlsMerged.errors)}`);

  const spawnRes = await fleet.all<Concurrent>('spawnEcho', {}, 120_000);
  const spawnStats = stats(merge(spawnRes).latencies);
  row(`Peer: ${N} concurrent spawn('echo hi') in the agent processes, spawn → first line`, `${pct(spawnStats)} → Ferry's p50 is ${(fan.p50 / spawnStats.p50).toFixed(1)}×`);
  raw['peers'] = { h2: { base: pBase, idle: pIdle, perSessionBytes: peerPerSession, holds }, tlsIdle: { base: tBase, idle: tIdle, perConnBytes: tlsPerConn }, tls: { wallMs: peerTlsWall, ...peerTlsMerged, latency: stats(peerTlsMerged.latencies) }, spawn: spawnStats, keygen };
  await peer.call('exit', {}, 5_000).catch(() => undefined);
  await stopChild(peerProc, 5_000);
  await fleet.stop((c) => stopChild(c, 5_000));
}
