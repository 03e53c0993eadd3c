import { controllerCreds } from '../../agent/src/grpc-creds.js';
import type { FerryError } from '../../common/src/errors.js';
import { AgentSessionClient, type ControllerMessage, type Hello, type Welcome } from '../../common/src/gen/ferry/v1/session.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import { FERRY_VERSION, PROTOCOL_VERSION } from '../../common/src/version.js';
import type { Controller } from '../../controller/src/controller.js';
import { fakeFacts } from './fixtures.js';

/** Opens a raw agent session with the given identity and returns the error the controller ends it with. */
export function rawSession(c: Controller, identity?: { keyPem: string; certPem: string }, agentVersion = FERRY_VERSION): Promise<FerryError> {
  const client = new AgentSessionClient(`127.0.0.1:${c.port}`, controllerCreds(c.ctx.ca.certPem, identity));
  const call = client.connect();
  call.write({ msg: { $case: 'hello', value: { agentVersion, protocolVersion: PROTOCOL_VERSION, facts: fakeFacts('raw'), openJobs: [], bundles: [], previousAgentVersion: '', lastUpgrade: undefined } } });
  return new Promise((resolve, reject) => {
    call.on('data', () => reject(new Error('the controller answered a session it should have refused')));
    call.on('error', (e) => { client.close(); resolve(fromServiceError(e)); });
  });
}

/**
 * Opens a session as `identity` with a hello of the test's making; resolves
 * with the controller's welcome (the session is then closed) or its refusal.
 */
export function rawHello(c: Controller, identity: { keyPem: string; certPem: string }, hello: Partial<Hello>): Promise<{ welcome?: Welcome; error?: FerryError }> {
  const client = new AgentSessionClient(`127.0.0.1:${c.port}`, controllerCreds(c.ctx.ca.certPem, identity));
  const call = client.connect();
  call.write({ msg: { $case: 'hello', value: {
    agentVersion: FERRY_VERSION, protocolVersion: PROTOCOL_VERSION, facts: fakeFacts('raw'), openJobs: [], bundles: [], previousAgentVersion: '', lastUpgrade: undefined, ...hello,
  } } });
  return new Promise((resolve) => {
    call.on('data', (m: ControllerMessage) => {
      if (m.msg?.$case !== 'welcome') return;
      call.cancel();
      client.close();
      resolve({ welcome: m.msg.value });
    });
    call.on('error', (e) => { client.close(); resolve({ error: fromServiceError(e) }); });
  });
}
