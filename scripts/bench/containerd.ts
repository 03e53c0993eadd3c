/**
 * A private containerd for benchmarks: its own root, state and socket under
 * one directory (on tmpfs when the caller gives one), no CRI plugin, so
 * `ctr content fetch` can pull from a registry without touching the host's
 * containerd. Started fresh per round so that every round fetches every byte
 * (a content store that already holds a blob skips it).
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { type Janitor, progress } from './kit.js';
import { sleep } from './lib.js';

/** Whether containerd and ctr are installed. */
export function containerdInstalled(): boolean {
  return existsSync('/usr/bin/containerd') && existsSync('/usr/bin/ctr');
}

/** See module comment. */
export class PrivateContainerd {
  private constructor(private readonly j: Janitor, readonly dir: string, private readonly proc: ChildProcess) {}

  get socket(): string {
    return join(this.dir, 'containerd.sock');
  }

  /** Starts containerd with everything under `dir` (created; removed again by stop()). */
  static async start(j: Janitor, dir: string): Promise<PrivateContainerd> {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.toml'), [
      'version = 2',
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]', `  address = "${join(dir, 'containerd.sock')}"`,
      '[ttrpc]', `  address = "${join(dir, 'containerd.sock.ttrpc')}"`,
      '[debug]', '  address = ""',
      '',
    ].join('\n'));
    let err = '';
    const proc = j.spawn('/usr/bin/containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-4000); });
    const c = new PrivateContainerd(j, dir, proc);
    for (let i = 0; !existsSync(c.socket); i++) {
      if (i > 200 || proc.exitCode !== null) {
        await c.stop();
        throw new Error(`containerd did not come up in 20 s: ${err.slice(-1000)}`);
      }
      await sleep(100);
    }
    return c;
  }

  /** `ctr` arguments against this daemon. */
  ctr(namespace: string, ...args: string[]): [string, string[]] {
    return ['/usr/bin/ctr', ['--address', this.socket, '--namespace', namespace, ...args]];
  }

  /** Stops the daemon and removes its directory. */
  async stop(): Promise<void> {
    await this.j.stop(this.proc, 10_000);
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch (e) {
      progress(this.j.suite, `could not remove ${this.dir}: ${(e as Error).message}`);
    }
  }
}

/**
 * A hosts directory for `ctr --hosts-dir`: the registry at `hostPort` over
 * HTTPS with the fleet CA and a client certificate (files in `certs`:
 * ca.crt, client.cert, client.key), as the registry.mirror step writes it.
 */
export function hostsDir(dir: string, hostPort: string, certs: string): string {
  mkdirSync(join(dir, hostPort), { recursive: true });
  writeFileSync(join(dir, hostPort, 'hosts.toml'), [
    `[host."https://${hostPort}"]`,
    '  capabilities = ["pull", "resolve"]',
    `  ca = "${join(certs, 'ca.crt')}"`,
    `  client = [["${join(certs, 'client.cert')}", "${join(certs, 'client.key')}"]]`,
    '',
  ].join('\n'));
  return dir;
}
