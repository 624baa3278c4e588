/**
 * The one table of failure types (contract/failures.ts): failure() and every retry policy read it, so a type's
 * retryability is decided there and nowhere else.
 */
import { driverFailure, ErrorType, failure, NON_RETRYABLE } from '../../contract';

test('failure() takes its retryability from the table, for every type', () => {
  for (const type of Object.values(ErrorType)) {
    const f = failure(type, `a ${type}`);
    expect({ type: f.type, nonRetryable: f.nonRetryable }).toEqual({
      type,
      nonRetryable: NON_RETRYABLE.includes(type),
    });
  }
});

test('a corrupt backup is never retried: it stays corrupt when read again', () => {
  expect(NON_RETRYABLE).toContain(ErrorType.BackupCorrupt);
  expect(failure(ErrorType.BackupCorrupt, 'sha256 differs').nonRetryable).toBe(true);
});

test('what a retry cannot change fails at once; what a retry may fix is retried', () => {
  const never = [
    ErrorType.BackupCorrupt,
    ErrorType.BackupExists,
    ErrorType.ManifestInvalid,
    ErrorType.ManifestUnauthenticated,
    ErrorType.RestoreRefused,
    ErrorType.NotReady,
    ErrorType.InvalidInput,
    ErrorType.SplitBrain,
  ];
  const again = [
    ErrorType.FenceFailed,
    ErrorType.RecloneFailed,
    ErrorType.RdsWaitTimedOut,
    ErrorType.ECONNRESET,
    ErrorType.DumpFailed,
    ErrorType.RestoreFailed,
  ];
  expect(never.filter((t) => !NON_RETRYABLE.includes(t))).toEqual([]);
  expect(again.filter((t) => NON_RETRYABLE.includes(t))).toEqual([]);
});

test("a driver's own code is retried; without one, the fallback's row of the table decides", () => {
  const coded = driverFailure('ER_LOCK_WAIT_TIMEOUT', ErrorType.MysqlError, 'lock wait timeout');
  expect({ type: coded.type, nonRetryable: coded.nonRetryable }).toEqual({
    type: 'ER_LOCK_WAIT_TIMEOUT',
    nonRetryable: false,
  });
  const bare = driverFailure(undefined, ErrorType.SshError, 'no code');
  expect({ type: bare.type, nonRetryable: bare.nonRetryable }).toEqual({ type: 'SshError', nonRetryable: false });
  expect(driverFailure(undefined, ErrorType.AccessDenied, 'denied').nonRetryable).toBe(true);
});
