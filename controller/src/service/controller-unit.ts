import { MALLOC_ENV } from '../../../common/src/malloc-env.js';
import { dirname } from 'node:path';
import { Exit } from '../../../common/src/exit-codes.js';
import { quoteExecArg, type ServiceProgram } from '../../../common/src/service/systemd-service.js';

/** How `ferry controller install-service` names itself in messages (shared host checks). */
export const CONTROLLER_PROGRAM: ServiceProgram = {
  cli: 'ferry controller',
  withoutSystemd: 'on a host without systemd, run `ferry controller start` under your init system',
};

export interface ControllerUnitOptions {
  /** argv that runs `ferry`: node and bin/ferry.js, or a single binary. */
  command: string[];
  /** `controller start` flags the service is started with (--data first). */
  startArgs: string[];
  dataDir: string;
  adminSocket: string;
  /** The chunk store (`--chunks`); writable to the service when it is outside the data directory. */
  chunkDir?: string;
  /** Files and directories the service only reads (the settings file, the program's tree). */
  readPaths: string[];
  /** The lowest TCP port it listens on (gRPC, operations HTTP): below 1024 it keeps CAP_NET_BIND_SERVICE. */
  lowestPort: number;
}

/** Paths PrivateTmp= replaces with an empty directory. */
const TMP_LIKE = /^\/(tmp|var\/tmp)(\/|$)/;

/** Paths systemd's ProtectHome= hides or makes read-only. */
const HOME_LIKE = /^\/(home|root|run\/user)(\/|$)/;

/**
 * The systemd unit for `ferry controller start`, hardened to what the
 * controller needs and no more:
 * - it writes only its data directory (store, CA and keys, chunks, lock),
 *   its chunk directory when that is elsewhere (shared storage), and
 *   its admin socket's directory: ProtectSystem=strict plus ReadWritePaths;
 * - it runs as root (it owns the root-made data directory, 0700) but with no
 *   capabilities at all (CapabilityBoundingSet empty; CAP_NET_BIND_SERVICE
 *   only when it listens below 1024), NoNewPrivileges, no devices, no
 *   kernel tunables, modules, logs, clock or hostname, no namespaces,
 *   @system-service system calls only;
 * - sockets: IPv4/IPv6 (gRPC, HTTP), Unix (admin socket) and netlink (Node
 *   lists the host's addresses for its certificate with it);
 * - not MemoryDenyWriteExecute: Node's JIT needs writable code pages;
 * - exit code 2 (a configuration error, or another controller holds the
 *   directory) is not restarted: it cannot fix itself.
 */
export function renderControllerUnit(o: ControllerUnitOptions): string {
  const socketDir = o.adminSocket.startsWith(`${o.dataDir}/`) ? undefined : dirname(o.adminSocket);
  // A socket directory under /run is gone after a reboot: systemd makes it (RuntimeDirectory=) at each start.
  const runtime = socketDir?.startsWith('/run/') ? socketDir.slice('/run/'.length) : undefined;
  const chunks = o.chunkDir && !o.chunkDir.startsWith(`${o.dataDir}/`) && o.chunkDir !== o.dataDir ? [o.chunkDir] : [];
  const writable = [o.dataDir, ...chunks, ...(socketDir && !runtime ? [socketDir] : [])];
  const protectHome = writable.some((p) => HOME_LIKE.test(p))
    ? [] // a writable path under /home or /root: ProtectHome would hide it
    : [`ProtectHome=${[...o.readPaths, ...o.command].some((p) => HOME_LIKE.test(p)) ? 'read-only' : 'yes'}`];
  return [
    '[Unit]',
    'Description=Ferry controller (fleet install and upgrade)',
    // No Documentation=man:ferry(1): the man page is not installed with the program, and systemd-analyze verify checks it.
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${[...o.command, 'controller', 'start', ...o.startArgs].map(quoteExecArg).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=5s',
    `RestartPreventExitStatus=${Exit.Usage}`,
    // The controller drains sessions for up to 10 s on SIGTERM.
    'TimeoutStopSec=20s',
    'KillMode=mixed',
    'UnsetEnvironment=NODE_OPTIONS',
    // glibc reads these once at start: chunk-sized buffers reused from the heap instead of mmap + zeroed pages per chunk (common/src/malloc-env.ts).
    ...Object.entries(MALLOC_ENV).map(([k, v]) => `Environment=${k}=${v}`),
    'UMask=0077',
    // One TCP connection per agent session, plus chunk fetches.
    'LimitNOFILE=65536',
    '',
    '# Hardening: see `ferry controller install-service --help`.',
    'ProtectSystem=strict',
    ...writable.map((p) => `ReadWritePaths=${quoteExecArg(p)}`),
    ...(runtime ? [`RuntimeDirectory=${runtime}`, 'RuntimeDirectoryMode=0700'] : []),
    ...protectHome,
    'PrivateTmp=yes',
    // What lives under /tmp (a checkout run from there, a data directory in a test)
    // would vanish behind the private /tmp: bind it back in, read-only where it is only read.
    ...[...o.readPaths, ...o.command].filter((p) => TMP_LIKE.test(p)).map((p) => `BindReadOnlyPaths=${quoteExecArg(p)}`),
    ...writable.filter((p) => TMP_LIKE.test(p)).map((p) => `BindPaths=${quoteExecArg(p)}`),
    'PrivateDevices=yes',
    'NoNewPrivileges=yes',
    `CapabilityBoundingSet=${o.lowestPort > 0 && o.lowestPort < 1024 ? 'CAP_NET_BIND_SERVICE' : ''}`,
    ...(o.lowestPort > 0 && o.lowestPort < 1024 ? ['AmbientCapabilities=CAP_NET_BIND_SERVICE'] : []),
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'ProtectProc=invisible',
    'RestrictNamespaces=yes',
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'RemoveIPC=yes',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK',
    'SystemCallArchitectures=native',
    'SystemCallFilter=@system-service',
    'SystemCallErrorNumber=EPERM',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}
