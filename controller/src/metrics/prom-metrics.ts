import { Counter, Histogram, Registry } from 'prom-client';
import type { CallType, ControllerMetrics, EnrollmentOutcome } from './metrics.js';

/**
 * Latency buckets in seconds: unary admin and enrollment calls take
 * milliseconds to a second (CSR signing, store writes); streams (sessions,
 * rollout watches, chunk fetches) last minutes to days and land in the top
 * buckets, which is what their count is for.
 */
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600];

/** "/ferry.v1.Admin/ListAgents" → service "ferry.v1.Admin", method "ListAgents". */
function splitPath(path: string): { service: string; method: string } {
  const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
  return m ? { service: m[1]!, method: m[2]! } : { service: 'unknown', method: path || 'unknown' };
}

/**
 * The controller's metrics in Prometheus form, in a Registry of its own (not
 * prom-client's global one), so several controllers in one process — tests —
 * never share or collide on a metric. Counters live here; gauges of the
 * fleet's state are added by fleet-gauges.ts, read from the store at scrape
 * time. With `replica` (the controller's replica id) every series carries
 * a `replica` label, so series of several replicas stay apart wherever they
 * are collected (also behind one scrape address, or in a federated server).
 */
export class PromMetrics implements ControllerMetrics {
  readonly registry = new Registry();
  private readonly callSeconds: Histogram<'service' | 'method' | 'type'>;
  private readonly callsHandled: Counter<'service' | 'method' | 'type' | 'code'>;
  private readonly enrollments: Counter<'outcome' | 'code'>;
  private readonly chunkBytes: Counter;
  private readonly chunks: Counter;
  private readonly hostJobs: Counter<'kind'>;
  private readonly steps: Counter<'type' | 'status'>;
  // Registry (OCI pulls over HTTPS): the registry listener's only count of pulls.
  private readonly registryRequests: Counter<'kind' | 'code'>;
  private readonly registryBytes: Counter<'kind'>;
  private readonly registryErrors: Counter<'code'>;

  constructor(replica?: string) {
    if (replica) this.registry.setDefaultLabels({ replica });
    const registers = [this.registry];
    this.callSeconds = new Histogram({
      name: 'ferry_grpc_server_handling_seconds', help: 'Time from a gRPC call\'s arrival to its answer (unary) or its end (streams).',
      labelNames: ['service', 'method', 'type'], buckets: CALL_BUCKETS, registers,
    });
    this.callsHandled = new Counter({
      name: 'ferry_grpc_server_handled_total', help: 'gRPC calls finished, by the status they ended with.',
      labelNames: ['service', 'method', 'type', 'code'], registers,
    });
    this.enrollments = new Counter({
      name: 'ferry_enrollments_total', help: 'Enrollment requests by outcome: enrolled (a new agent), repeated (a lost answer asked again), refused (code: the Ferry error code).',
      labelNames: ['outcome', 'code'], registers,
    });
    // Every outcome shows from the start, so a rate() has a zero to begin from.
    this.enrollments.inc({ outcome: 'enrolled', code: '' }, 0);
    this.enrollments.inc({ outcome: 'repeated', code: '' }, 0);
    this.chunkBytes = new Counter({ name: 'ferry_chunk_bytes_served_total', help: 'Bytes of chunk messages sent to agents over Chunks.Fetch.', registers });
    this.chunks = new Counter({ name: 'ferry_chunks_served_total', help: 'Chunks sent to agents over Chunks.Fetch.', registers });
    this.hostJobs = new Counter({ name: 'ferry_host_jobs_started_total', help: 'Host jobs sent to agents (one per host of an exec, plan run or rollout attempt), by kind.', labelNames: ['kind'], registers });
    for (const kind of ['exec', 'plan']) this.hostJobs.inc({ kind }, 0);
    this.steps = new Counter({ name: 'ferry_step_results_total', help: 'Finished plan steps by step type and status (changed, unchanged, skipped, failed).', labelNames: ['type', 'status'], registers });
    this.registryRequests = new Counter({ name: 'ferry_registry_requests_total', help: 'Registry and files requests answered, by kind (blob, manifest, file) and HTTP status.', labelNames: ['kind', 'code'], registers });
    this.registryErrors = new Counter({ name: 'ferry_registry_errors_total', help: 'Registry and files requests refused or failed, by error code.', labelNames: ['code'], registers });
    this.registryBytes = new Counter({ name: 'ferry_registry_bytes_served_total', help: 'Bytes sent by the registry and files endpoints, by kind.', labelNames: ['kind'], registers });
  }

  callFinished(path: string, type: CallType, code: string, seconds: number): void {
    const { service, method } = splitPath(path);
    this.callSeconds.observe({ service, method, type }, seconds);
    this.callsHandled.inc({ service, method, type, code });
  }

  enrollment(o: EnrollmentOutcome): void {
    this.enrollments.inc({ outcome: o.outcome, code: o.outcome === 'refused' ? o.code : '' });
  }

  chunkServed(bytes: number): void {
    this.chunks.inc();
    this.chunkBytes.inc(bytes);
  }

  hostJobStarted(kind: string): void {
    this.hostJobs.inc({ kind });
  }

  stepFinished(stepType: string, status: string): void {
    this.steps.inc({ type: stepType, status });
  }

  registryError(code: string): void {
    this.registryErrors.inc({ code });
  }

  registryPull(kind: string, code: number, bytes: number): void {
    this.registryRequests.inc({ kind, code: String(code) });
    if (bytes > 0) this.registryBytes.inc({ kind }, bytes);
  }

  /** The exposition text and its content type, for GET /metrics. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
