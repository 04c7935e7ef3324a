// The answer to a request whose write lost every race on one item (docs/api.md): 503 with Retry-After, never a 500.
import type { Context } from 'hono';
import type { Logger } from './deps.ts';
import { retryLater } from './unavailable.ts';

/**
 * Seconds a client waits before it tries again. The store retried for seconds already (adapters/
 * optimistic.ts): what is left is a burst of writers on one reboot, command or rollout, over soon.
 */
export const CONTENDED_RETRY_AFTER_SECONDS = 1;

/**
 * A ConcurrentUpdate that outlasted the store's retries. The write it lost did not happen; what the
 * request wrote before it (a command marked final, say) its repeat finishes, as for any request
 * retried after a lost answer. So the same request may be sent again as it is; an Idempotency-Key
 * never keeps a 503 as its first answer (its repeat gets the grant or refusal, if one was made).
 */
export function contended(c: Context, err: Error, logger: Logger) {
  logger.warn('request gave up under contention', { path: c.req.path, error: err.message });
  return retryLater(
    c,
    'ConcurrentUpdate',
    `${err.message}; send the request again after ${CONTENDED_RETRY_AFTER_SECONDS}s`,
    CONTENDED_RETRY_AFTER_SECONDS,
  );
}
