import type { ChannelOptions } from '@grpc/grpc-js';
import type { EventEmitter } from 'node:events';
import type { ServerHttp2Session } from 'node:http2';

/** Largest control message either side accepts; larger ones get RESOURCE_EXHAUSTED. */
export const MAX_CONTROL_MESSAGE_BYTES = 4 * 1024 * 1024;
/** A chunk (at most 4 MiB, FastCDC's maximum) plus its digest and framing. */
export const MAX_CHUNK_MESSAGE_BYTES = 4 * 1024 * 1024 + 64 * 1024;

/**
 * Channel options shared by every Ferry client. The flow-control window is
 * raised because grpc-js's 64 KiB default caps one TLS stream near 200 MiB/s
 * on this class of machine; keepalive notices dead links (a cut WAN cable
 * does not reset TCP) within about 30 s.
 */
export function clientChannelOptions(extra: ChannelOptions = {}): ChannelOptions {
  return {
    'grpc.max_receive_message_length': MAX_CONTROL_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_CONTROL_MESSAGE_BYTES,
    'grpc-node.flow_control_window': 4 * 1024 * 1024,
    'grpc.keepalive_time_ms': 20_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.initial_reconnect_backoff_ms': 500,
    'grpc.max_reconnect_backoff_ms': 5_000,
    ...extra,
  };
}

/** Server options matching clientChannelOptions. */
export function serverOptions(extra: ChannelOptions = {}): ChannelOptions {
  return {
    // Servers receive uploaded chunks and send chunks to agents.
    'grpc.max_receive_message_length': MAX_CHUNK_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_CHUNK_MESSAGE_BYTES,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    'grpc.http2.max_pings_without_data': 0,
    ...extra,
  };
}

/**
 * Raises the HTTP/2 receive window (per stream and per connection) and the
 * largest DATA frame peers may send on every session `server` accepts from
 * now on. grpc-js (1.x) gives its server sessions node's defaults, 64 KiB
 * and 16 KiB: a client streaming 4 MiB chunks to it (`ferry bundle push`)
 * then waits for a WINDOW_UPDATE every ~32 KiB, and the server spends its
 * time writing them (perf: 9.6% of the main thread during a push; push
 * 96 → 111–127 MiB/s with 8 MiB). grpc-js has no option for it, so this
 * reaches into its map of HTTP/2 servers, checked rather than assumed:
 * returns false, changing nothing, when the server does not look as
 * expected. Call after the server is bound.
 */
export function widenServerWindows(server: object, windowBytes: number, maxFrameBytes: number): boolean {
  const servers = (server as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) return false;
  const h2 = [...servers.keys()] as Array<{ on?: unknown }>;
  if (h2.some((h) => typeof h.on !== 'function')) return false;
  for (const h of h2 as EventEmitter[]) {
    h.on('session', (s: ServerHttp2Session) => {
      try {
        s.settings({ initialWindowSize: windowBytes, maxFrameSize: maxFrameBytes });
        s.setLocalWindowSize(windowBytes);
      } catch {
        // a session already closing: nothing to widen
      }
    });
  }
  return true;
}
