/**
 * The distribution peer: nginx (the Debian package) serving a directory
 * over HTTPS on 127.0.0.1 with a self-signed certificate, run in the
 * foreground with a private config and prefix (nothing system-wide is read
 * or written but the binary), and N concurrent `curl` clients each fetching
 * every file once over one kept-alive connection.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { childPids, cpuMsOf, freePort, runBounded, type Janitor } from './kit.js';
import { sleep } from './lib.js';
import { ferryTls13Suites } from '../../common/src/tls-ciphers.js';
import type { ChildProcess } from 'node:child_process';

export const NGINX = '/usr/sbin/nginx';

export function nginxInstalled(): boolean {
  return existsSync(NGINX);
}

export class Nginx {
  private constructor(private readonly j: Janitor, readonly proc: ChildProcess, readonly port: number, readonly prefix: string, readonly host: string) {}

  get pid(): number {
    return this.proc.pid!;
  }

  /** Master + workers CPU ms so far. */
  cpuMs(): number {
    return cpuMsOf(this.pid) + childPids(this.pid).reduce((s, p) => s + cpuMsOf(p), 0);
  }

  /** `host`: the address to listen on (127.0.0.1, or a simulated sites' hub address). */
  static async start(j: Janitor, prefix: string, root: string, workers: number, host = '127.0.0.1'): Promise<Nginx> {
    mkdirSync(join(prefix, 'tmp'), { recursive: true });
    const key = join(prefix, 'key.pem');
    const cert = join(prefix, 'cert.pem');
    // P-256, like the controller's server certificate.
    const ssl = await runBounded(j, 'openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${host}`, '-addext', `subjectAltName=IP:${host}`], 30_000);
    if (ssl.code !== 0) throw new Error(`openssl req failed: ${ssl.stderr}`);
    const port = await freePort();
    const t = (n: string) => join(prefix, 'tmp', n);
    writeFileSync(join(prefix, 'nginx.conf'), `# ferry bench: private, foreground, 127.0.0.1 only
daemon off;
master_process on;
${process.getuid?.() === 0 ? '# as root, workers would run as nobody and could not read the private temp dir\nuser root;\n' : ''}
worker_processes ${workers};
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  keepalive_timeout 120s;
  client_body_temp_path ${t('body')};
  proxy_temp_path ${t('proxy')};
  fastcgi_temp_path ${t('fastcgi')};
  uwsgi_temp_path ${t('uwsgi')};
  scgi_temp_path ${t('scgi')};
  server {
    listen ${host}:${port} ssl;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    # TLS 1.3 as Ferry's servers speak it (nginx 1.22 offers only up to 1.2 unless told), in
    # Ferry's servers' suite order (common/src/tls-ciphers.ts): both sides do the same AES work.
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites ${ferryTls13Suites()};
    root ${root};
  }
}
`);
    const proc = j.spawn(NGINX, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-4000); });
    const until = Date.now() + 15_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`nginx exited with ${proc.exitCode}: ${stderr}`);
      if (await canConnect(host, port)) break;
      if (Date.now() > until) throw new Error(`nginx did not listen on ${host}:${port} within 15 s: ${stderr}`);
      await sleep(100);
    }
    const n = new Nginx(j, proc, port, prefix, host);
    // Workers are nginx's children: stop them by pid too if the master does not.
    j.onCleanup(() => n.stop());
    return n;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const workers = childPids(this.pid);
    await this.j.stop(this.proc, 10_000); // SIGTERM: nginx's fast shutdown stops the workers
    for (const w of workers) {
      try {
        process.kill(w, 0);
        process.kill(w, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
  }
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host, port }, () => { s.destroy(); res(true); });
    s.on('error', () => res(false));
  });
}

export interface CurlRound {
  wallMs: number;
  clients: number;
  ok: number;
  bytes: number;
  /** user+sys of all client processes (curl; with sameWork also tee, openssl, sync), from the shell's `times`. */
  curlCpuMs: number;
  nginxCpuMs: number;
  errors: string[];
}

/**
 * `clients` concurrent `curl -sk` processes, each fetching every file of
 * `files` (paths relative to the served root) once over one connection,
 * to /dev/null: moves the bytes, checks nothing, writes nothing.
 *
 * With `sameWork` (a directory, and each file's sha256), every client
 * instead does what a Ferry agent does, with C tools: per file
 * `curl URL | tee FILE | openssl dgst -sha256`, the digest compared with
 * the expected one, then `sync FILE` (fsync); a mismatch fails the client.
 * One TLS connection per file (10 files per GiB here), files under a
 * directory of the client's own, deleted by the caller.
 */
export async function curlRound(j: Janitor, ngx: Nginx, files: string[], clients: number, timeoutMs: number,
  sameWork?: { dir: string; sha256: Map<string, string> }): Promise<CurlRound> {
  const urls = files.map((f) => `https://${ngx.host}:${ngx.port}/${f.split('/').map(encodeURIComponent).join('/')}`);
  const q = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
  const cpu0 = ngx.cpuMs();
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: clients }, async (_, k) => {
    let script: string;
    if (sameWork) {
      const outDir = join(sameWork.dir, `client-${k}`);
      mkdirSync(outDir, { recursive: true });
      const steps = files.map((f, i) => {
        const out = q(join(outDir, `f${i}`));
        return `h=$(curl -sk --fail ${q(urls[i]!)} | tee ${out} | openssl dgst -sha256 -r) && [ "\${h%% *}" = ${q(sameWork.sha256.get(f) ?? 'unknown')} ] && sync ${out} && stat -c %s ${out} || { echo "bad: ${f.replace(/[^A-Za-z0-9._/-]/g, '')}" >&2; rc=1; }`;
      });
      script = `set -o pipefail; rc=0\n${steps.join('\n')}\ntimes; exit $rc`;
    } else {
      // `times` prints the shell's and then its children's user/sys time.
      const args = urls.flatMap((u) => ['-o', '/dev/null', u]).map(q).join(' ');
      script = `curl -sk --fail -w '%{size_download}\\n' ${args}; rc=$?; times; exit $rc`;
    }
    const r = await runBounded(j, 'bash', ['-c', script], timeoutMs);
    const lines = r.stdout.trim().split('\n');
    const times = lines.slice(-2)[1] ?? '';
    const secs = [...times.matchAll(/(\d+)m([\d.]+)s/g)].reduce((s, m) => s + Number(m[1]) * 60 + Number(m[2]), 0);
    const bytes = lines.slice(0, -2).reduce((s, l) => s + (Number(l) || 0), 0);
    return { ok: r.code === 0, bytes, cpuMs: secs * 1000, err: r.code === 0 ? '' : `exit ${r.code}: ${r.stderr.slice(-200)}` };
  }));
  const wallMs = performance.now() - t0;
  const nginxCpuMs = ngx.cpuMs() - cpu0;
  return {
    wallMs, clients, ok: results.filter((r) => r.ok).length, bytes: results.reduce((s, r) => s + r.bytes, 0),
    curlCpuMs: results.reduce((s, r) => s + r.cpuMs, 0), nginxCpuMs, errors: results.filter((r) => !r.ok).map((r) => r.err),
  };
}
