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

/**
 * Credentials for dialling a site relay (docs/relays.md): the same CA pin and
 * client identity as for the controller, but the server is checked by role,
 * not by name: its certificate must carry the relay role (OU) and name the
 * relay's agent id (CN) the controller assigned. Relays are hosts on a site
 * network, often dialled by IP, so the address is not what proves them.
 */
export function relayCreds(caPem: string, identity: { keyPem: string; certPem: string }, relayAgentId: string): ChannelCredentials {
  return credentials.createSsl(Buffer.from(caPem), Buffer.from(identity.keyPem), Buffer.from(identity.certPem), {
    checkServerIdentity: (_host, cert) => {
      const subject = cert.subject as unknown as Record<string, string | string[] | undefined>;
      const ou = subject['OU'];
      const cn = subject['CN'];
      if (ou !== 'relay' || cn !== relayAgentId) {
        return new Error(`the relay's certificate names ${String(cn)} with role ${String(ou)}; expected relay ${relayAgentId} with role relay`);
      }
      return undefined;
    },
  });
}
