import assert from 'node:assert/strict';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import { AdminService } from '../../common/src/gen/ferry/v1/admin.js';
import { RolloutsService } from '../../common/src/gen/ferry/v1/rollouts.js';
import { checkAccess, METHOD_ACCESS } from '../../controller/src/services/operator-call.js';
import { parseOperatorRole } from '../../controller/src/store/operators.js';

const generatedPaths: string[] = [...Object.values(AdminService), ...Object.values(RolloutsService)].map((m) => m.path);

function refusal(fn: () => void): FerryError {
  try {
    fn();
  } catch (e) {
    return e as FerryError;
  }
  return assert.fail('not refused');
}

describe('who may call which operator method: one table', () => {
  it('classifies every method of the generated Admin and Rollouts services, and nothing else', () => {
    const missing = generatedPaths.filter((p) => !(p in METHOD_ACCESS));
    assert.deepEqual(missing, [], `classify these in METHOD_ACCESS (controller/src/services/operator-call.ts): ${missing.join(', ')}`);
    const stale = Object.keys(METHOD_ACCESS).filter((p) => !generatedPaths.includes(p));
    assert.deepEqual(stale, [], `METHOD_ACCESS names methods the services no longer have: ${stale.join(', ')}`);
  });

  it('lets a viewer read and refuses it writes, naming the method and the role needed', () => {
    checkAccess('/ferry.v1.Admin/ListAgents', 'viewer', 'operator:vera');
    checkAccess('/ferry.v1.Rollouts/Watch', 'viewer', 'operator:vera');
    const e = refusal(() => checkAccess('/ferry.v1.Admin/CreateToken', 'viewer', 'operator:vera'));
    assert.equal(e.code, ErrorCode.PermissionDenied);
    assert.match(e.message, /\/ferry\.v1\.Admin\/CreateToken needs the admin role; operator:vera has the viewer role/);
    checkAccess('/ferry.v1.Admin/CreateToken', 'admin', 'operator:root');
  });

  it('refuses a method missing from the table to everyone, admins included', () => {
    const e = refusal(() => checkAccess('/ferry.v1.Admin/SomethingNew', 'admin', 'local'));
    assert.equal(e.code, ErrorCode.PermissionDenied);
    assert.match(e.message, /not classified/);
  });

  it('keeps certificate-minting, exec and plan runs admin-only', () => {
    for (const m of ['IssueOperatorCert', 'RevokeOperator', 'Exec', 'RunPlan', 'Prefetch', 'UploadChunks']) {
      assert.equal(METHOD_ACCESS[`/ferry.v1.Admin/${m}`], 'write', m);
    }
  });

  it('defaults a role to viewer and refuses unknown ones', () => {
    assert.equal(parseOperatorRole(''), 'viewer');
    assert.equal(parseOperatorRole('admin'), 'admin');
    assert.equal(refusal(() => parseOperatorRole('root')).code, ErrorCode.InvalidArgument);
  });
});
