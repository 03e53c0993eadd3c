/**
 * Chunks.ResolveHttp: a site relay serving the registry and files endpoints
 * asks how to answer one request (docs/relays.md, "Registry and files on a
 * relay"). The request runs through the very handlers of this controller's
 * own listener (pull-api.ts, files-repo.ts) with the same client check
 * (client-auth.ts, on the certificate the relay's TLS verified), so names,
 * `ns`, who may pull, anonymous publications, conditional requests and
 * ranges are decided in one place. Only the body is different: instead of
 * bytes, the answer names the chunks a blob or file range is cut from, and
 * the relay sends them from its cache. Small bodies (manifests, tag lists,
 * listings, errors) travel in the answer.
 *
 * Pulls through a relay are counted by the relay (RelayStatus), not on the
 * controller's /metrics: the controller sends no body bytes for them.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { ResolveHttpRequest, ResolveHttpResponse } from '../../../common/src/gen/ferry/v1/chunks.js';
import type { Logger } from '../../../common/src/log.js';
import { errorResponse, RegistryError } from '../../../common/src/registry/http-error.js';
import { frontCheck, RESOLVE_HEADERS } from '../../../common/src/registry/listener.js';
import { NO_METRICS } from '../metrics/metrics.js';
import type { BundleStore } from '../bundles/bundle-store.js';
import type { CertificateAuthority } from '../pki/ca.js';
import type { AgentStore } from '../store/agents.js';
import type { OperatorStore } from '../store/operators.js';
import { BundleBytes, chunkSpan } from './bundle-bytes.js';
import { ClientAuth } from './client-auth.js';
import { handleFiles } from './files-repo.js';
import { handleV2 } from './pull-api.js';
import type { RegistryDeps, RegistryRequest } from './request.js';
import type { RegistryStore } from './registry-store.js';

/** What {@link HttpResolver} needs from the controller. */
export interface HttpResolverOptions {
  ca: CertificateAuthority;
  agents: AgentStore;
  operators: OperatorStore;
  bundles: BundleStore;
  store: RegistryStore;
  log: Logger;
}

/** See module comment. */
export class HttpResolver {
  private readonly deps: RegistryDeps;
  private readonly auth: ClientAuth;

  constructor(o: HttpResolverOptions) {
    this.deps = { store: o.store, bytes: new BundleBytes(o.bundles, o.log), metrics: NO_METRICS, log: o.log };
    this.auth = new ClientAuth(o.ca, o.agents, o.operators);
  }

  /** The answer to `req`, asked by relay `relayId`; refusals are answers too (status 4xx/5xx with the JSON body). */
  async resolve(req: ResolveHttpRequest, relayId: string): Promise<ResolveHttpResponse> {
    const out: ResolveHttpResponse = { status: 0, headers: {}, body: Buffer.alloc(0), span: undefined };
    const head = req.method === 'HEAD';
    try {
      const front = frontCheck(req.method, req.url);
      const client = await this.auth.identifyCert(req.clientCertDer.length > 0 ? Buffer.from(req.clientCertDer) : undefined, `via relay ${relayId}`);
      const headers: Record<string, string> = {};
      for (const h of RESOLVE_HEADERS) if (req.headers[h] !== undefined) headers[h] = req.headers[h]!;
      const r: RegistryRequest = {
        headers, path: front.path, query: front.query, head: front.head, host: headers['host'], client,
        res: {
          writeHead: (status: number, h: OutgoingHttpHeaders) => {
            out.status = status;
            out.headers = stringHeaders(h);
          },
          end: (body?: string | Buffer) => {
            if (body !== undefined) out.body = Buffer.from(body);
          },
        },
        sendRange: async (_bundleId, f, start, end, writeHead) => {
          writeHead();
          out.span = chunkSpan(f, start, end);
          return out.span.length;
        },
      };
      await (front.route === 'v2' ? handleV2 : handleFiles)(r, this.deps);
      if (out.status === 0) throw new Error(`no answer for ${req.url}`);
    } catch (err) {
      const e = err instanceof RegistryError ? err : new RegistryError(500, 'INTERNAL', 'internal error; the controller log has the details');
      if (!(err instanceof RegistryError)) this.deps.log.error({ err, url: req.url, relay: relayId }, 'registry: resolving a relay\'s request failed');
      const answer = errorResponse(e);
      return { status: answer.status, headers: stringHeaders(answer.headers), body: head ? Buffer.alloc(0) : Buffer.from(answer.body), span: undefined };
    }
    return out;
  }
}

function stringHeaders(h: OutgoingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : String(v);
  return out;
}
