/**
 * Simulated-hosts harness for Ferry's end-to-end tests: a fabric network namespace with a
 * bridge at 10.77.0.1, and hosts with their own address, overlay root and systemd as PID 1,
 * on which the agent drives real systemd, containerd/ctr and iptables. See
 * /work/shared/HOSTS.md for the measurements behind the design.
 *
 * Typical use:
 *   const pre = await ensurePrereqs(); if (!pre.ok) this.skip();
 *   const cluster = await Cluster.create({ hosts: 3 });
 *   try { await cluster.host('h1').exec(['systemctl', 'is-system-running']); }
 *   finally { await cluster.destroy(); }
 */
export { Cluster, type ClusterOptions, type FabricProcess } from './cluster.js';
export { Host, NSPAWN_REBOOT_EXIT, type BootState, type HostExecOptions, type HostSpec } from './host.js';
export { Fabric, FABRIC_IP, FABRIC_MAC, FABRIC_PREFIX, hostIp, hostMac } from './fabric.js';
export { ensurePrereqs, REQUIRED_PACKAGES, type PrereqResult } from './prereqs.js';
export { DEFAULT_BASE_DIR, reapStale, readState, type ClusterState } from './cleanup.js';
export { type ExecResult } from './proc.js';
export {
  buildImage, dockerArchive, dockerRepoTag, normalizeRef, ociArchive, ociArch, sha256, writeDockerArchive, writeOciArchive,
  type BuiltImage, type ImageSpec,
} from './oci-image.js';
export { buildTar, type TarEntry } from './tar.js';
