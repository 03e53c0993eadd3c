import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP forwarder on 127.0.0.1 between an agent and the controller, so a
 * test can cut the link (both ends see the connection close, new ones are
 * refused) and restore it, while the agent process and its jobs keep running.
 * `stall()` is the nastier partition: connections stay open but no byte
 * moves either way (no reset, no close) until restore().
 */
export class LinkProxy {
  private readonly sockets = new Set<Socket>();
  private up = true;
  private stalled = false;

  private constructor(private readonly server: Server, readonly address: string) {}

  static async start(target: string): Promise<LinkProxy> {
    const i = target.lastIndexOf(':');
    const host = target.slice(0, i);
    const port = Number(target.slice(i + 1));
    let self: LinkProxy | undefined;
    const server = createServer((client) => {
      if (!self?.up) { client.destroy(); return; }
      const upstream = connect({ host, port });
      for (const s of [client, upstream]) {
        self.sockets.add(s);
        s.on('close', () => self?.sockets.delete(s));
        s.on('error', () => { client.destroy(); upstream.destroy(); });
      }
      client.pipe(upstream);
      upstream.pipe(client);
      if (self.stalled) for (const s of [client, upstream]) s.pause();
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const addr = server.address() as { port: number };
    self = new LinkProxy(server, `127.0.0.1:${addr.port}`);
    return self;
  }

  /** Closes every forwarded connection and refuses new ones until restore(). */
  cut(): void {
    this.up = false;
    for (const s of this.sockets) s.destroy();
  }

  /** Holds every byte in both directions, connections left open, until restore(). */
  stall(): void {
    this.stalled = true;
    for (const s of this.sockets) s.pause();
  }

  restore(): void {
    this.up = true;
    this.stalled = false;
    for (const s of this.sockets) s.resume();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}
