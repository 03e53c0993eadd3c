import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { EnrollmentClient, type EnrollRequest, type EnrollResponse } from '../../../common/src/gen/ferry/v1/enrollment.js';
import type { HostFacts } from '../../../common/src/gen/ferry/v1/common.js';
import { clientChannelOptions } from '../../../common/src/grpc-options.js';
import { unaryCall } from '../../../common/src/grpc-call.js';
import { parseJoinString } from '../../../common/src/join-string.js';
import { listToLabels } from '../../../common/src/labels.js';
import { createCsr, exportPrivateKeyPem, generateKeyPair, keyPairFromPem } from '../../../common/src/pki.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import { controllerCreds } from '../grpc-creds.js';
import type { AgentState, Identity } from '../state/agent-state.js';
import { probeController } from './tls-probe.js';

/** Tries per controller address when it answers UNAVAILABLE (busy) or times out. */
const JOIN_ATTEMPTS = 5;

export interface JoinOptions {
  joinString: string;
  state: AgentState;
  facts: HostFacts;
  force?: boolean;
  timeoutMs?: number;
  /** `--hostname`: kept in the identity so `run` reports the same name. */
  hostname?: string;
  /** Told what the controller wants the field tech to know (e.g. a duplicate hostname). */
  onWarning?: (w: string) => void;
}

async function enrollCall(address: string, caPem: string, req: EnrollRequest, timeoutMs: number): Promise<EnrollResponse> {
  const client = new EnrollmentClient(address, controllerCreds(caPem), clientChannelOptions());
  try {
    return await unaryCall(client, client.enroll, req, timeoutMs);
  } finally {
    client.close();
  }
}

/**
 * Enrolls this host: checks the controller's CA against the pin before the
 * token leaves the host, generates the key here, sends token + CSR + facts,
 * and stores key, certificate and CA with mode 0600. Tries each controller
 * address in turn when one is unreachable; token errors end it at once.
 */
export async function join(opts: JoinOptions): Promise<Identity> {
  const info = parseJoinString(opts.joinString);
  if (opts.state.isEnrolled() && !opts.force) {
    const { identity } = opts.state.load();
    throw new FerryError(ErrorCode.AlreadyExists, `this host is already enrolled as ${identity.agentId} (state in ${opts.state.dir})`,
      'to replace that identity, run join again with --force; the old identity stays valid until an operator revokes it');
  }
  // One key per token: a join repeated after a lost answer (or a killed
  // join) sends the same key, and the controller answers with the identity
  // it recorded instead of spending another use.
  const tokenId = info.token.split('.')[1] ?? '';
  // A damaged pending key is replaced: the worst case is one more token use.
  const pending = opts.state.loadPendingKey(tokenId);
  const kept = pending ? await keyPairFromPem(pending).catch(() => undefined) : undefined;
  const keys = kept ?? await generateKeyPair();
  if (!kept) opts.state.savePendingKey(tokenId, await exportPrivateKeyPem(keys.privateKey));
  const csrPem = await createCsr(keys);
  let lastErr: FerryError | undefined;
  for (const address of info.addresses) {
    let caPem: string;
    try {
      ({ caPem } = await probeController(address, { pin: info.caPin }));
    } catch (err) {
      lastErr = err as FerryError;
      if (lastErr.code === ErrorCode.Unreachable) continue;
      throw lastErr;
    }
    let res: EnrollResponse | undefined;
    // A busy controller answers UNAVAILABLE without using the token: retry with backoff.
    for (let attempt = 0; attempt < JOIN_ATTEMPTS && !res; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(8_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2)));
      try {
        res = await enrollCall(address, caPem, { token: info.token, csrPem, facts: opts.facts, agentVersion: FERRY_VERSION }, opts.timeoutMs ?? 30_000);
      } catch (err) {
        lastErr = err as FerryError;
        if (lastErr.code !== ErrorCode.Unavailable && lastErr.code !== ErrorCode.DeadlineExceeded) throw lastErr;
      }
    }
    if (!res) continue;
    const identity: Identity = {
      agentId: res.agentId, addresses: info.addresses, caPin: info.caPin, labels: listToLabels(res.labels),
      operatorKeys: res.operatorKeys, enrolledAtMs: Date.now(), ...(opts.hostname ? { hostname: opts.hostname } : {}),
    };
    opts.state.saveEnrollment(await exportPrivateKeyPem(keys.privateKey), res.certPem, res.caPem, identity);
    for (const w of res.warnings) opts.onWarning?.(w);
    return identity;
  }
  throw lastErr ?? new FerryError(ErrorCode.Unreachable, 'no controller address to try');
}
