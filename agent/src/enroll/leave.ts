import type { FerryError } from '../../../common/src/errors.js';
import { AgentSessionClient } from '../../../common/src/gen/ferry/v1/session.js';
import { unaryCall } from '../../../common/src/grpc-call.js';
import { clientChannelOptions } from '../../../common/src/grpc-options.js';
import { controllerCreds } from '../grpc-creds.js';
import type { AgentState } from '../state/agent-state.js';

/** Whether the controller heard that this agent is leaving, and if not, why. */
export type LeaveOutcome = { told: true; address: string } | { told: false; why: string };

/**
 * Tells the controller that this agent leaves the fleet (AgentSession.Leave,
 * with the agent's own certificate): it is revoked there. Tries each
 * controller address once, briefly: a field tech resetting a host whose
 * controller is unreachable must not wait, and is told the operator has to
 * revoke it instead. Never throws.
 */
export async function leaveFleet(state: AgentState, reason: string, timeoutMs = 5_000): Promise<LeaveOutcome> {
  const loaded = state.load();
  let why = 'no controller address';
  for (const address of loaded.identity.addresses) {
    const client = new AgentSessionClient(address, controllerCreds(loaded.caPem, loaded), clientChannelOptions());
    try {
      await unaryCall(client, client.leave, { reason }, timeoutMs);
      return { told: true, address };
    } catch (err) {
      why = `${address}: ${(err as FerryError).message ?? String(err)}`;
    } finally {
      client.close();
    }
  }
  return { told: false, why };
}
