// The answer to a request a dependency could not serve (docs/api.md): 503 with Retry-After, not a 500.
import type { Context } from 'hono';
import type { Logger } from './deps.ts';

/** Seconds a client waits before it tries again: an emulator restarting or a throttled table is back in about that. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 2;

/** Error names of AWS services (and their SDK) that say "not now": throttled, overloaded, or timed out. */
const TRANSIENT_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'RequestThrottled',
  'RequestThrottledException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalServerError',
  'InternalFailure',
  'TimeoutError',
]);

/** Socket errors of a dependency that is down or restarting (the local emulators, a VPC endpoint). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
]);

type Failure = { name?: string; code?: string; cause?: unknown; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };

/**
 * Whether a request failed because a dependency (DynamoDB, SQS, Step Functions, or their local
 * emulators) did not answer or refused for load, after the SDK's own retries: nothing of the failed
 * call was done, and the same request may be sent again. The SDK marks such errors `$retryable`;
 * a socket error carries its code, maybe under `cause`.
 */
export function isDependencyDown(err: unknown): boolean {
  for (let e = err as Failure | undefined, depth = 0; e && typeof e === 'object' && depth < 4; e = e.cause as Failure, depth++) {
    if (e.$retryable) return true;
    if (e.name && TRANSIENT_NAMES.has(e.name)) return true;
    if (e.code && NETWORK_CODES.has(e.code)) return true;
    if ((e.$metadata?.httpStatusCode ?? 0) >= 500) return true;
  }
  return false;
}

export function unavailable(c: Context, err: Error, logger: Logger) {
  logger.warn('a dependency did not answer', { path: c.req.path, error: `${err.name}: ${err.message}` });
  return retryLater(
    c,
    'Unavailable',
    `a dependency of the coordinator did not answer (${err.name}); nothing was done, send the request again after ${UNAVAILABLE_RETRY_AFTER_SECONDS}s`,
    UNAVAILABLE_RETRY_AFTER_SECONDS,
  );
}

/** A 503 whose request may be sent again as it is after `seconds` (`Retry-After`): the API's transient failures (this module, contended.ts). */
export function retryLater(c: Context, error: string, message: string, seconds: number) {
  c.header('Retry-After', String(seconds));
  return c.json({ error, message }, 503);
}
