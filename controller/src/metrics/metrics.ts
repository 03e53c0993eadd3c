/**
 * What the controller's components report for /metrics, as small
 * interfaces: each component is handed only the one it uses (the call
 * boundary a CallMetrics, the chunk service a ChunkMetrics, …), so none
 * depends on prom-client, and a component built without metrics (a unit
 * test, a tool) gets NO_METRICS. The Prometheus side is prom-metrics.ts;
 * fleet-wide gauges (agents, jobs, rollouts by state) are read from the
 * store at scrape time instead (fleet-gauges.ts), so they are right after
 * a restart and cannot drift from what `ferry agents ls` shows.
 */

/** The kinds of gRPC call, as in grpc-go's and grpc-java's metrics. */
export type CallType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

/** One finished server call, reported by the one error boundary (services/call-boundary.ts). */
export interface CallMetrics {
  /**
   * `method` is the full path (/ferry.v1.Admin/ListAgents); `code` the gRPC
   * status name it ended with (OK, UNAUTHENTICATED, …); `seconds` from the
   * call's arrival (before the caller check) to its answer or stream end.
   */
  callFinished(method: string, type: CallType, code: string, seconds: number): void;
}

/** How an enrollment ended: a new identity, a retried one answered again, or a refusal with its Ferry error code. */
export type EnrollmentOutcome = { outcome: 'enrolled' | 'repeated' } | { outcome: 'refused'; code: string };

export interface EnrollmentMetrics {
  enrollment(o: EnrollmentOutcome): void;
}

/** Chunks.Fetch: what went out to agents. */
export interface ChunkMetrics {
  /** One chunk message handed to the transport: `bytes` of its wire form (chunk data plus a few bytes of framing). */
  chunkServed(bytes: number): void;
}

/** Jobs as the one job sequencer sees them (jobs/job-sequencer.ts). */
export interface JobMetrics {
  /** A host's part of a job was recorded and sent (kind: exec or plan). */
  hostJobStarted(kind: string): void;
  /**
   * A finished step, counted once however often the agent resends it.
   * `stepType` is the plan's type for the step (image.import, …), or
   * "unknown" when the controller no longer holds the job's plan (a `ferry
   * run` job from before a controller restart).
   */
  stepFinished(stepType: string, status: string): void;
}

/**
 * The HTTPS registry and files endpoints (OCI pulls from the chunk store)
 * report every answered pull and every refusal here, and nowhere else:
 * /metrics is the one count of pulls (names under ferry_registry_*).
 */
export interface RegistryMetrics {
  /** One blob or manifest request answered: `kind` blob|manifest|file, `code` the HTTP status, `bytes` sent. */
  registryPull(kind: string, code: number, bytes: number): void;
  /** A registry or files request refused or failed, by its error code (UNAUTHORIZED, MANIFEST_UNKNOWN, …). */
  registryError(code: string): void;
}

/** Everything the controller's parts report; one object (PromMetrics) implements it all. */
export type ControllerMetrics = CallMetrics & EnrollmentMetrics & ChunkMetrics & JobMetrics & RegistryMetrics;

/** Reports nothing: for parts built outside a controller (tests of one component, tools). */
export const NO_METRICS: ControllerMetrics = {
  callFinished: () => undefined,
  enrollment: () => undefined,
  chunkServed: () => undefined,
  hostJobStarted: () => undefined,
  stepFinished: () => undefined,
  registryPull: () => undefined,
  registryError: () => undefined,
};
