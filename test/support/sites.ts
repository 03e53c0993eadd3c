/**
 * Simulated sites: one network namespace per site behind a shaped uplink,
 * reached from the root namespace (where the controller, nginx and the test
 * run) through a "WAN" namespace that routes between them.
 *
 *   root ns  hub 100.A.B.1 ──veth── WAN ns (forwards) ──veth uplink── site ns 100.A.B.(4i+6)
 *                                                  └──veth uplink── site ns …
 *
 * A site's uplink is the veth pair between the WAN namespace and the site:
 * its rate is capped with htb on both ends' egress (down: toward the site;
 * up: from it), loss is an iptables `statistic` drop each way (up: the WAN
 * namespace's FORWARD chain; down: the site's raw PREROUTING, after the
 * packet crossed the uplink), and delay is netem on the same egress when
 * the kernel has netem (half the RTT each way). Both ends of every uplink
 * send one wire-sized packet per buffer (gso_max_segs 1: offload segments
 * are cut at the uplink), so the loss and the counters see packets as a
 * WAN would; the unshaped root–WAN hop keeps 64 KiB segments, which halves
 * the kernel's per-byte work on this shared machine.
 *
 * Bytes over an uplink are the WAN-side veth's interface counters: tx is
 * what went down to the site, rx what came up; both include Ethernet, IP
 * and TCP headers and retransmissions, as a WAN provider would bill them.
 *
 * Hosts of a site are processes started in its namespace (`ip netns exec`).
 * Names carry the creating pid and a random id, and the /24 is picked at
 * random among free ones in 100.64.0.0/10, so parallel runs do not collide.
 * Nothing is added to the root namespace but one veth and one route; every
 * iptables rule lives in a namespace of the run.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { netemAvailable, netnsPids, netnsUnavailable, NETNS_PREFIX, sh, shQuiet, sweepStale } from './netns.js';

/** How a site's uplink is shaped (the same both ways). */
export interface LinkShape {
  /** Rate cap in Mbit/s (htb), each direction. */
  rateMbit: number;
  /** Round-trip time added by the link (netem, half each way); needs netem in the kernel. Default 0. */
  rttMs?: number;
  /** Packet loss in percent, each direction (iptables statistic in the WAN namespace). Default 0. */
  lossPct?: number;
}

export interface SiteSpec {
  name: string;
  link: LinkShape;
}

/** Bytes over a site's uplink so far (interface counters). */
export interface LinkBytes {
  /** Toward the site (WAN side's tx). */
  down: number;
  /** From the site (WAN side's rx). */
  up: number;
  /** Frames toward the site: with `down` gives the frame size (wire-sized, ≤ 1514, unless offload leaked through). */
  downPackets: number;
}

export class Site {
  constructor(
    readonly name: string,
    readonly index: number,
    readonly netns: string,
    /** The site's own address (hosts inside share it: they are processes in one namespace). */
    readonly address: string,
    readonly link: LinkShape,
    private readonly wanNs: string,
    /** The uplink's interface in the WAN namespace. */
    readonly uplink: string,
    /** The uplink's interface in the site's namespace. */
    readonly inside: string,
    private readonly sites: Sites,
  ) {}

  /** `argv` as a command that runs inside this site. */
  argv(argv: string[]): string[] {
    return ['ip', 'netns', 'exec', this.netns, ...argv];
  }

  /** Spawns `argv` inside this site; stopped at teardown if still running. */
  spawn(argv: string[], opts: SpawnOptions = {}): ChildProcess {
    return this.sites.track(spawn('ip', ['netns', 'exec', this.netns, ...argv], opts));
  }

  /** Bytes over the uplink so far. */
  bytes(): LinkBytes {
    const [info] = JSON.parse(sh(['ip', '-n', this.wanNs, '-j', '-s', 'link', 'show', 'dev', this.uplink])) as Array<{ stats64: { rx: { bytes: number }; tx: { bytes: number; packets: number } } }>;
    return { down: info!.stats64.tx.bytes, up: info!.stats64.rx.bytes, downPackets: info!.stats64.tx.packets };
  }

  /** Packets the loss rules dropped so far (down, up): proof the loss is applied. */
  dropped(): { down: number; up: number } {
    // iptables -v -x columns: pkts bytes target prot opt in out source destination
    const count = (ns: string, args: string[], dev: string) => {
      const out = sh(['ip', 'netns', 'exec', ns, 'iptables', '-w', ...args, '-v', '-x', '-n']);
      const line = out.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[2] === 'DROP' && f[5] === dev);
      return line ? Number(line[0]) : 0;
    };
    return { down: count(this.netns, ['-t', 'raw', '-L', 'PREROUTING'], this.inside), up: count(this.wanNs, ['-L', 'FORWARD'], this.uplink) };
  }
}

export class Sites {
  private readonly children = new Set<ChildProcess>();
  private torn = false;
  private readonly onExit = () => this.teardownSync();
  readonly sites: Site[] = [];

  private constructor(
    readonly id: string,
    /** The root namespace's address every site reaches: servers for the sites listen here. */
    readonly hub: string,
    readonly wanNs: string,
    private readonly rootLink: string,
    private readonly subnet: string,
  ) {}

  /** Why sites cannot be made here, or undefined (root, ip/tc/iptables, namespaces allowed). */
  static unavailable(): string | undefined {
    return netnsUnavailable();
  }

  /** Whether the kernel can add delay (netem). */
  static canDelay(): boolean {
    return netemAvailable();
  }

  /**
   * Creates the WAN namespace and one namespace per site with its shaped
   * uplink. Throws (after removing whatever it made) when anything fails,
   * or when a delay is asked for on a kernel without netem.
   */
  static create(specs: SiteSpec[]): Sites {
    const why = netnsUnavailable();
    if (why) throw new Error(why);
    if (specs.length < 1 || specs.length > 62) throw new Error(`sites: between 1 and 62 sites, not ${specs.length}`);
    if (new Set(specs.map((s) => s.name)).size !== specs.length) throw new Error('sites: site names must be unique');
    for (const s of specs) {
      if (!/^[a-z0-9-]{1,20}$/.test(s.name)) throw new Error(`site name "${s.name}": use 1-20 of a-z, 0-9, -`);
      const l = s.link;
      if (!(l.rateMbit > 0)) throw new Error(`site ${s.name}: rateMbit must be > 0`);
      if ((l.lossPct ?? 0) < 0 || (l.lossPct ?? 0) >= 100) throw new Error(`site ${s.name}: lossPct must be in [0, 100)`);
      if ((l.rttMs ?? 0) > 0 && !netemAvailable()) {
        throw new Error(`site ${s.name}: rttMs ${l.rttMs} needs the netem qdisc, which this kernel lacks (no sch_netem); pass rttMs 0 or run on a kernel with CONFIG_NET_SCH_NETEM`);
      }
    }
    sweepStale();
    const id = randomBytes(4).toString('hex').slice(0, 6).replace(/^\d/, 'x');
    const net = freeSubnet();
    const sites = new Sites(id, `${net}.1`, `${NETNS_PREFIX}${process.pid}-${id}-wan`, `f${id}h`, `${net}.0/24`);
    process.once('exit', sites.onExit);
    try {
      sites.build(specs, net);
    } catch (e) {
      sites.teardownSync();
      throw e;
    }
    return sites;
  }

  site(name: string): Site {
    const s = this.sites.find((x) => x.name === name);
    if (!s) throw new Error(`no site named ${name} (sites: ${this.sites.map((x) => x.name).join(', ')})`);
    return s;
  }

  /** Registers a child to stop at teardown. */
  track(c: ChildProcess): ChildProcess {
    this.children.add(c);
    c.once('exit', () => this.children.delete(c));
    return c;
  }

  private build(specs: SiteSpec[], net: string): void {
    const wan = this.wanNs;
    sh(['ip', 'netns', 'add', wan]);
    sh(['ip', '-n', wan, 'link', 'set', 'lo', 'up']);
    sh(['ip', 'netns', 'exec', wan, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    // root <-> WAN: unshaped; the root end carries the hub address.
    const w = `f${this.id}w`;
    sh(['ip', 'link', 'add', this.rootLink, 'type', 'veth', 'peer', 'name', w]);
    sh(['ip', 'link', 'set', w, 'netns', wan]);
    sh(['ip', 'addr', 'add', `${this.hub}/30`, 'dev', this.rootLink]);
    sh(['ip', 'link', 'set', this.rootLink, 'up']);
    sh(['ip', '-n', wan, 'addr', 'add', `${net}.2/30`, 'dev', w]);
    sh(['ip', '-n', wan, 'link', 'set', w, 'up']);
    sh(['ip', 'route', 'add', this.subnet, 'via', `${net}.2`, 'dev', this.rootLink]);
    specs.forEach((spec, i) => {
      const ns = `${NETNS_PREFIX}${process.pid}-${this.id}-${spec.name}`;
      const up = `f${this.id}u${i}`;
      const inside = `f${this.id}s${i}`;
      const base = 4 * (i + 1);
      sh(['ip', 'netns', 'add', ns]);
      sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      sh(['ip', 'link', 'add', up, 'type', 'veth', 'peer', 'name', inside]);
      sh(['ip', 'link', 'set', up, 'netns', wan]);
      sh(['ip', 'link', 'set', inside, 'netns', ns]);
      sh(['ip', '-n', wan, 'addr', 'add', `${net}.${base + 1}/30`, 'dev', up]);
      sh(['ip', '-n', ns, 'addr', 'add', `${net}.${base + 2}/30`, 'dev', inside]);
      noOffload(wan, up);
      noOffload(ns, inside);
      sh(['ip', '-n', wan, 'link', 'set', up, 'up']);
      sh(['ip', '-n', ns, 'link', 'set', inside, 'up']);
      sh(['ip', '-n', ns, 'route', 'add', 'default', 'via', `${net}.${base + 1}`]);
      shape(wan, up, spec.link);
      shape(ns, inside, spec.link);
      const loss = spec.link.lossPct ?? 0;
      if (loss > 0) {
        const p = (loss / 100).toFixed(6);
        const drop = ['-m', 'statistic', '--mode', 'random', '--probability', p, '-j', 'DROP'];
        // Up: as the site's packets enter the WAN. Down: as they arrive in the site, after the uplink segmented them
        // (one wire packet each; dropping a 64 KiB super-packet would be 44 losses at once).
        sh(['ip', 'netns', 'exec', wan, 'iptables', '-w', '-A', 'FORWARD', '-i', up, ...drop]);
        sh(['ip', 'netns', 'exec', ns, 'iptables', '-w', '-t', 'raw', '-A', 'PREROUTING', '-i', inside, ...drop]);
      }
      this.sites.push(new Site(spec.name, i, ns, `${net}.${base + 2}`, spec.link, wan, up, inside, this));
    });
  }

  /** The namespaces of this run (sites and WAN). */
  namespaces(): string[] {
    return [...this.sites.map((s) => s.netns), this.wanNs];
  }

  /** Stops every process inside the sites (SIGTERM, SIGKILL after `graceMs`); the sites stay. Bounded. */
  async stopProcesses(graceMs = 3_000): Promise<void> {
    if (this.torn) return;
    const pids = () => [...new Set([...this.namespaces().flatMap(netnsPids), ...[...this.children].map((c) => c.pid!).filter(Boolean)])];
    for (const pid of pids()) signal(pid, 'SIGTERM');
    const until = Date.now() + graceMs;
    while (pids().length && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    for (const pid of pids()) signal(pid, 'SIGKILL');
  }

  /** stopProcesses(), then removes the namespaces and the root-side link. Idempotent; bounded. */
  async teardown(graceMs = 3_000): Promise<void> {
    await this.stopProcesses(graceMs);
    this.teardownSync();
  }

  /** SIGKILLs what is left inside and removes everything now (also from process 'exit'). */
  teardownSync(): void {
    if (this.torn) return;
    this.torn = true;
    process.removeListener('exit', this.onExit);
    for (const ns of this.namespaces()) for (const pid of netnsPids(ns)) signal(pid, 'SIGKILL');
    for (const c of this.children) if (c.pid) signal(c.pid, 'SIGKILL');
    shQuiet(['ip', 'route', 'del', this.subnet]);
    shQuiet(['ip', 'link', 'del', this.rootLink]);
    for (const ns of this.namespaces()) shQuiet(['ip', 'netns', 'del', ns]);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** One segment per packet: the shaper, the loss and the counters then see wire-sized packets. */
function noOffload(ns: string | undefined, dev: string): void {
  sh(['ip', ...(ns ? ['-n', ns] : []), 'link', 'set', 'dev', dev, 'gso_max_segs', '1']);
}

/** htb rate cap on `dev`'s egress, with netem delay under it when the link has an RTT. */
function shape(ns: string, dev: string, link: LinkShape): void {
  const tc = (...a: string[]) => sh(['tc', '-n', ns, ...a]);
  const rate = `${link.rateMbit}mbit`;
  // r2q so the class quantum stays within htb's range at high rates.
  tc('qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '10', 'r2q', String(Math.max(10, Math.ceil((link.rateMbit * 125_000) / 60_000))));
  tc('class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:10', 'htb', 'rate', rate, 'ceil', rate);
  const oneWay = (link.rttMs ?? 0) / 2;
  if (oneWay > 0) {
    // The queue must hold a bandwidth-delay product of packets (netem's default limit is 1000).
    const limit = Math.max(1000, Math.ceil(((link.rateMbit * 1e6) / 8) * (oneWay / 1000) / 1500) * 4);
    tc('qdisc', 'add', 'dev', dev, 'parent', '1:10', 'handle', '10:', 'netem', 'delay', `${oneWay}ms`, 'limit', String(limit));
  }
}

/** A random /24 in 100.64.0.0/10 that no route or address of the root namespace overlaps; returns "100.A.B". */
function freeSubnet(): string {
  const used = sh(['ip', '-4', 'route', 'show', 'table', 'all']) + sh(['ip', '-4', 'addr', 'show']);
  for (let tries = 0; tries < 50; tries++) {
    const net = `100.${randomInt(64, 128)}.${randomInt(0, 256)}`;
    if (!used.includes(`${net}.`) && !overlapsWider(used, net)) return net;
  }
  throw new Error('sites: no free /24 in 100.64.0.0/10 found in 50 tries');
}

/** Whether a route wider than /24 (e.g. 100.64.0.0/10) covers `net`. */
function overlapsWider(routes: string, net: string): boolean {
  const ip = (s: string) => s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const me = ip(`${net}.0`);
  for (const m of routes.matchAll(/(\d+\.\d+\.\d+\.\d+)\/(\d+)/g)) {
    const bits = Number(m[2]);
    if (bits >= 24 || bits === 0) continue;
    const size = 2 ** (32 - bits);
    const start = Math.floor(ip(m[1]!) / size) * size;
    if (me >= start && me < start + size) return true;
  }
  return false;
}
