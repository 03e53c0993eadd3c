/**
 * `wait.for`: wait until a port accepts connections, a local HTTP endpoint
 * answers, a command succeeds or a file appears. Plans run offline, so HTTP
 * targets must be loopback, private or link-local addresses (checked here for
 * literal IPs, and again by the agent after name resolution).
 */
import { isIP } from 'node:net';
import { schema, type ArgReader } from '../step-schema.js';
import { readAbsPath } from './file-install.js';
import { readCommand, readDuration, type Command } from './exec.js';

/** The one thing a `wait.for` step waits for. */
export type WaitCondition =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'http'; url: string; /** Accepted statuses; undefined means any 2xx. */ status?: number[]; /** Skip TLS verification (self-signed health endpoints). */ insecure: boolean }
  | { kind: 'command'; command: Command }
  | { kind: 'file'; path: string };

/** Parsed args of `wait.for`. */
export interface WaitForArgs {
  condition: WaitCondition;
  /** Give up (failed) after this long; default 60s. */
  timeoutMs: number;
  /** Pause between probes; default 1s. */
  intervalMs: number;
}

/** Splits `host:port` or `[v6]:port`; undefined when malformed. */
export function splitHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:[\]]+):(\d+)$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { host: m[1]!, port } : undefined;
}

/**
 * True for addresses that stay on the host or the site network: loopback,
 * RFC 1918, carrier-grade NAT (used by some cluster networks), link-local,
 * IPv6 ULA and link-local. Anything else would mean reaching the internet.
 */
export function isInternalAddress(ip: string): boolean {
  const v = isIP(ip);
  if (v === 4) {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)
      || (a === 169 && b === 254) || (a === 100 && b >= 64 && b <= 127);
  }
  if (v === 6) {
    const s = ip.toLowerCase();
    if (s === '::1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(s);
    if (mapped) return isInternalAddress(mapped[1]!);
    return /^f[cd][0-9a-f]{0,2}:/.test(s) || /^fe[89ab][0-9a-f]?:/.test(s);
  }
  return false;
}

function readHttp(r: ArgReader, url: string): WaitCondition | undefined {
  // Read the companions first so a bad URL does not also report them as unknown.
  const statusList = r.stringList('status');
  const insecure = r.bool('insecure', { default: false }) ?? false;
  const status = statusList?.map(Number);
  if (status && (status.length === 0 || status.some((s) => !Number.isInteger(s) || s < 100 || s > 599))) {
    r.problem('status', '"status" must be a non-empty list of HTTP status codes like [200, 204]');
  }
  let u: URL;
  try { u = new URL(url); } catch { r.problem('http', `"http" must be a URL like http://127.0.0.1:10550/healthz (got "${url}")`); return undefined; }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') { r.problem('http', `"http" must be an http:// or https:// URL (got "${u.protocol}")`); return undefined; }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) && !isInternalAddress(host)) {
    r.problem('http', `"http" must target a local or internal address (loopback, private or link-local); ${host} is public and plans run offline`);
    return undefined;
  }
  return { kind: 'http', url: u.toString(), status, insecure };
}

/** Schema for `wait.for`. */
export const waitForSchema = schema<WaitForArgs>(
  'wait.for',
  'Wait until tcp host:port accepts, a local http URL answers, a command exits 0, or a file exists (timeout, interval)',
  (r) => {
    const tcp = r.string('tcp');
    const http = r.string('http');
    const command = readCommand(r, 'command');
    const file = readAbsPath(r, 'file', false);
    const given = [tcp, http, command, file].filter((x) => x !== undefined).length;
    let condition: WaitCondition | undefined;
    if (given !== 1) {
      r.problem('', given === 0
        ? 'give one of "tcp" (host:port), "http" (URL), "command" (argv or shell) or "file" (absolute path)'
        : 'give only one of "tcp", "http", "command" or "file"; use several wait.for steps to wait for several things');
    } else if (tcp !== undefined) {
      const hp = splitHostPort(tcp);
      if (hp) condition = { kind: 'tcp', ...hp };
      else r.problem('tcp', `"tcp" must be host:port like 127.0.0.1:10004 or [::1]:10004 (got "${tcp}")`);
    } else if (http !== undefined) condition = readHttp(r, http);
    else if (command !== undefined) condition = { kind: 'command', command };
    else if (file !== undefined) condition = { kind: 'file', path: file };
    if (http === undefined && (r.any('status') !== undefined || r.any('insecure') !== undefined)) {
      r.problem('status', '"status" and "insecure" only go with "http"');
    }
    return {
      condition: condition!,
      timeoutMs: readDuration(r, 'timeout', { default: 60_000, min: 1 }) ?? 60_000,
      intervalMs: readDuration(r, 'interval', { default: 1_000, min: 10 }) ?? 1_000,
    };
  },
);
