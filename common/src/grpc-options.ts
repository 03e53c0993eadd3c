import type { ChannelOptions } from '@grpc/grpc-js';

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
