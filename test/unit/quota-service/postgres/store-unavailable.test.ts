import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { storeUnavailable } from '../../../../quota-service/postgres/store-unavailable.js';

const withCode = (code: string, message = 'x'): Error => Object.assign(new Error(message), { code });

describe('storeUnavailable', () => {
  it('takes a failure of the database or of the connection for UNAVAILABLE', () => {
    for (const err of [withCode('08006'), withCode('57P01', 'terminating connection due to administrator command'), withCode('53300'), withCode('57014'), withCode('ECONNREFUSED'), new Error('Connection terminated unexpectedly'), new Error('timeout exceeded when trying to connect')]) {
      expect(storeUnavailable(err)?.code, String(err)).toBe(status.UNAVAILABLE);
    }
  });

  it('leaves everything else as it is (a constraint, a syntax error, a bug of ours)', () => {
    for (const err of [withCode('23505'), withCode('42601'), withCode('40001'), new TypeError('x is undefined'), 'a string']) expect(storeUnavailable(err)).toBeUndefined();
  });
});
