import { controllerCreds } from '../../agent/src/grpc-creds.js';
import type { FerryError } from '../../common/src/errors.js';
import { AgentSessionClient } from '../../common/src/gen/ferry/v1/session.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import type { Controller } from '../../controller/src/controller.js';
import { fakeFacts } from './fixtures.js';

/** Opens a raw agent session with the given identity and returns the error the controller ends it with. */
export function rawSession(c: Controller, identity?: { keyPem: string; certPem: string }): Promise<FerryError> {
  const client = new AgentSessionClient(`127.0.0.1:${c.port}`, controllerCreds(c.ctx.ca.certPem, identity));
  const call = client.connect();
  call.write({ msg: { $case: 'hello', value: { agentVersion: 't', facts: fakeFacts('raw'), openJobs: [], bundles: [] } } });
  return new Promise((resolve, reject) => {
    call.on('data', () => reject(new Error('the controller answered a session it should have refused')));
    call.on('error', (e) => { client.close(); resolve(fromServiceError(e)); });
  });
}
