/**
 * The parts of a session's messages that the agent makes from its own
 * files and key, not from the connection: the hello's upgrade fields and a
 * certificate-renewal request. Apart from session-loop.ts, which owns the
 * connection's life and only sends what these build.
 */
import type { AgentMessage } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import { createCsr, keyPairFromPem } from '../../../common/src/pki.js';
import { loadUpgradeState, toReport } from '../upgrade/upgrade-state.js';

/** The hello's upgrade fields: the version kept for rollback and the last outcome (resent until the next upgrade). */
export function upgradeHello(stateDir: string, log: Logger): { previousAgentVersion: string; lastUpgrade: ReturnType<typeof toReport> | undefined } {
  try {
    const d = loadUpgradeState(stateDir);
    return { previousAgentVersion: d.previous, lastUpgrade: d.last ? toReport(d.last) : undefined };
  } catch (err) {
    log.error({ err: (err as Error).message }, 'cannot read the upgrade state');
    return { previousAgentVersion: '', lastUpgrade: undefined };
  }
}

/** Asks the controller for a new certificate: a CSR for the enrolled key, sent on the session. */
export async function requestRenewal(keyPem: string, send: (m: AgentMessage) => void): Promise<void> {
  const csrPem = await createCsr(await keyPairFromPem(keyPem));
  send({ msg: { $case: 'renew', value: { csrPem } } });
}
