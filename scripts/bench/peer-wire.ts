/** What the plain peers (h2-peer.ts) and their clients (stage-probe.ts) agree on. */

/** HTTP/2 flow-control window, per stream and connection, on both sides of both peers. */
export const PEER_WINDOW_BYTES = 16 * 1024 * 1024;
/** Message size of the plain grpc-js peer (Ferry's chunks average 1 MiB). */
export const PEER_MESSAGE_BYTES = 1024 * 1024;
/** The plain gRPC peer's one method: request = newline-separated file paths, response stream = their bytes. */
export const PEER_GRPC_METHOD = '/bench.Peer/Files';
