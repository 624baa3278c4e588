/**
 * How activities fail: a typed ApplicationFailure that names the resource. Whether it is retried
 * comes from the one table of failure types in contract/failures.ts (`failure()` lives there so
 * workflow code raises its failures the same way).
 */
import { ApplicationFailure } from '@temporalio/common';
import { driverFailure, ErrorType, failure } from '../contract';

export { driverFailure, failure };

const AWS_NOT_FOUND = /NotFound|NoSuch|DoesNotExist|InvalidInstanceID|Malformed/;
const AWS_DENIED =
  /AccessDenied|UnauthorizedOperation|AuthFailure|InvalidClientTokenId|SignatureDoesNotMatch|ExpiredToken/;
const AWS_VALIDATION = /Validation|InvalidParameter|InvalidDBInstanceState|InvalidChangeBatch/;

/** Map an AWS SDK error to a typed failure naming the resource; transient faults stay retryable. */
export function awsFailure(err: unknown, resource: string): Error {
  if (err instanceof ApplicationFailure) return err;
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const name = e.name ?? 'Error';
  const message = `${resource}: ${name}: ${e.message ?? String(err)}`;
  if (AWS_DENIED.test(name)) return failure(ErrorType.AccessDenied, message, { resource });
  if (AWS_NOT_FOUND.test(name)) return failure(ErrorType.ResourceNotFound, message, { resource });
  if (AWS_VALIDATION.test(name)) return failure(ErrorType.AwsValidation, message, { resource });
  // Throttling, 5xx and network errors: retryable, still named.
  return ApplicationFailure.create({ type: name, message, nonRetryable: false, details: [{ resource }] });
}

/** Run an AWS call and turn its failure into a typed one. */
export async function aws<T>(resource: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw awsFailure(err, resource);
  }
}

/** The innermost cause's message: a workflow failure wraps the activity's, which wraps the server's. */
export function rootCauseMessage(err: unknown): string {
  let e = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}
