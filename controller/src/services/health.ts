import type { ServerUnaryCall, ServerWritableStream, sendUnaryData } from '@grpc/grpc-js';
import { status as grpcStatus } from '@grpc/grpc-js';
import {
  HealthCheckResponse_ServingStatus as Serving,
  type HealthCheckRequest, type HealthCheckResponse, type HealthServer,
} from '../../../common/src/gen/grpc/health/v1/health.js';

/** grpc.health.v1 for the controller's services; "" is the whole server. */
export class HealthState {
  private status: Serving = Serving.NOT_SERVING;
  private readonly watchers = new Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>();

  constructor(private readonly services: string[]) {}

  set(status: Serving): void {
    this.status = status;
    for (const w of this.watchers) w.write({ status });
  }

  private known(service: string): boolean {
    return service === '' || this.services.includes(service);
  }

  service(): HealthServer {
    return {
      check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, cb: sendUnaryData<HealthCheckResponse>) => {
        if (!this.known(call.request.service)) {
          cb({ code: grpcStatus.NOT_FOUND, details: `unknown service ${call.request.service}` });
          return;
        }
        cb(null, { status: this.status });
      },
      watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        if (!this.known(call.request.service)) {
          call.write({ status: Serving.SERVICE_UNKNOWN });
          return;
        }
        call.write({ status: this.status });
        this.watchers.add(call);
        call.on('cancelled', () => this.watchers.delete(call));
      },
    };
  }

  endWatches(): void {
    for (const w of this.watchers) w.end();
    this.watchers.clear();
  }
}
