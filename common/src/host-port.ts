import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';

/** A listen or dial address: host (IPv6 without brackets) and port. */
export interface HostPort {
  host: string;
  port: number;
}

const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[^:[\]]+):(\d{1,5})$/;

/**
 * "host:port" or "[v6]:port" → its parts; undefined when it is neither or
 * the port is above 65535. The one parser for every address setting.
 */
export function parseHostPort(s: string): HostPort | undefined {
  const m = HOST_PORT.exec(s);
  if (!m || Number(m[2]) > 65535) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/**
 * Starts `server` listening on `addr` (port 0: any free one) and resolves
 * with the port it got; a failure to listen (in use, no such address) is
 * turned into the caller's error by `fail`.
 */
export function listenOn(server: Server, addr: HostPort, fail: (err: Error) => Error): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const onError = (err: Error) => reject(fail(err));
    server.once('error', onError);
    server.listen(addr.port, addr.host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
