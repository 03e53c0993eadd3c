import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import { fromServiceError, toServiceError } from '../../common/src/grpc-status.js';

describe('error boundary', () => {
  it('round-trips code, message and hint through gRPC metadata', () => {
    const se = toServiceError(new FerryError(ErrorCode.TokenExpired, 'token x expired', 'ask for a new one; check clock'));
    assert.equal(se.code, status.UNAUTHENTICATED);
    const back = fromServiceError({ ...se, message: 'x' });
    assert.equal(back.code, ErrorCode.TokenExpired);
    assert.equal(back.message, 'token x expired');
    assert.equal(back.hint, 'ask for a new one; check clock');
  });

  it('hides internal errors and maps foreign statuses', () => {
    const se = toServiceError(new Error('secret stack detail'));
    assert.equal(se.code, status.INTERNAL);
    assert.doesNotMatch(String(se.details), /secret/);
    assert.equal(fromServiceError({ code: status.RESOURCE_EXHAUSTED, details: 'too big' }).code, ErrorCode.ResourceExhausted);
  });
});
