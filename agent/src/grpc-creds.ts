import { credentials, type ChannelCredentials } from '@grpc/grpc-js';

/**
 * TLS credentials that trust only the controller's CA (pinned at join), with
 * an optional client identity. Hostname checking stays on: the controller's
 * certificate must name the address the agent dials.
 */
export function controllerCreds(caPem: string, identity?: { keyPem: string; certPem: string }): ChannelCredentials {
  return credentials.createSsl(
    Buffer.from(caPem),
    identity ? Buffer.from(identity.keyPem) : null,
    identity ? Buffer.from(identity.certPem) : null,
  );
}
