import { credentials, type ClientReadableStream, type Metadata } from '@grpc/grpc-js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { AdminClient, ExecEvent, ExecRequest } from '../../../common/src/gen/ferry/v1/admin.js';
import { FastAdminClient } from '../services/fast-admin.js';
import { clientChannelOptions, MAX_CHUNK_MESSAGE_BYTES } from '../../../common/src/grpc-options.js';
import { unaryCall, type UnaryMethod } from '../../../common/src/grpc-call.js';
import { defaultDataDir } from '../config.js';

/** How the CLI reaches the controller's admin API. */
export interface AdminTarget {
  data?: string;
  adminSocket?: string;
  /** The same, as parsed from the --admin-socket flag. */
  'admin-socket'?: string;
  controller?: string;
  cert?: string;
  key?: string;
  ca?: string;
}

export const adminFlags = {
  data: { type: 'string' as const },
  'admin-socket': { type: 'string' as const },
  controller: { type: 'string' as const },
  cert: { type: 'string' as const },
  key: { type: 'string' as const },
  ca: { type: 'string' as const },
};

/** Operators upload chunks of up to 4 MiB. */
const CHUNK_OPTS = { 'grpc.max_send_message_length': MAX_CHUNK_MESSAGE_BYTES };

/**
 * A connected admin client. Local by default (the Unix socket in the data
 * directory); remote with --controller and an operator certificate.
 */
export class Admin {
  private constructor(readonly client: InstanceType<typeof AdminClient>, private readonly where: string) {}

  static connect(t: AdminTarget, env: NodeJS.ProcessEnv = process.env): Admin {
    const remote = t.controller ?? env['FERRY_CONTROLLER'];
    if (remote) {
      const files = { cert: t.cert ?? env['FERRY_CERT'], key: t.key ?? env['FERRY_KEY'], ca: t.ca ?? env['FERRY_CA'] };
      const missing = Object.entries(files).filter(([, v]) => !v).map(([k]) => `--${k}`);
      if (missing.length) {
        throw new FerryError(ErrorCode.InvalidArgument, `remote admin needs ${missing.join(', ')}`, 'get an operator certificate with `ferry operator cert NAME --out DIR` on the controller host');
      }
      const creds = credentials.createSsl(readFileSync(files.ca!), readFileSync(files.key!), readFileSync(files.cert!));
      return new Admin(new FastAdminClient(remote, creds, clientChannelOptions(CHUNK_OPTS)), remote);
    }
    const sock = t.adminSocket ?? t['admin-socket'] ?? env['FERRY_ADMIN_SOCKET'] ?? join(t.data ?? env['FERRY_DATA'] ?? defaultDataDir(), 'admin.sock');
    if (!existsSync(sock)) {
      throw new FerryError(ErrorCode.Unreachable, `no controller admin socket at ${sock}`,
        'is the controller running? point at its data directory with --data DIR (or FERRY_DATA), or use --controller host:port with an operator certificate');
    }
    return new Admin(new FastAdminClient(`unix://${sock}`, credentials.createInsecure(), clientChannelOptions(CHUNK_OPTS)), sock);
  }

  /** Calls a unary method; errors through the one mapping, an unreachable controller named. */
  call<Req, Res>(method: UnaryMethod<Req, Res>, req: Req, timeoutMs = 30_000): Promise<Res> {
    return unaryCall(this.client, method, req, timeoutMs).catch((e: FerryError) => { throw this.explain(e); });
  }

  exec(req: ExecRequest): ClientReadableStream<ExecEvent> {
    return this.client.exec(req);
  }

  explain(e: FerryError): FerryError {
    // UNAVAILABLE sent by the controller itself (its store is away) is its answer, not a sign it cannot be reached.
    const answered = ((e.cause as { metadata?: Metadata } | undefined)?.metadata?.get('ferry-code').length ?? 0) > 0;
    if (e.code === ErrorCode.Unavailable && !answered) {
      return new FerryError(ErrorCode.Unreachable, `cannot reach the controller at ${this.where}: ${e.message}`, 'is the controller running?');
    }
    return e;
  }

  close(): void {
    this.client.close();
  }
}
