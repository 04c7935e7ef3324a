// The store's batch retries (unprocessed keys) and the optimistic writes' lost races share one backoff:
// backoffMs in adapters/optimistic.ts. The batch curve keeps what dynamo-store's own jitter() did.
import { describe, expect, it } from 'vitest';
import { backoffMs, THROTTLE_POLICY } from '../../lambdas/adapters/optimistic.ts';

describe('the batch retry backoff (THROTTLE_POLICY)', () => {
  it('is full jitter in [0, min(200, 5 * 2^attempt)] ms: the curve dynamo-store used before', () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const ceiling = Math.min(200, 5 * 2 ** attempt);
      expect(backoffMs(attempt, { ...THROTTLE_POLICY, random: () => 1 })).toBe(ceiling);
      expect(backoffMs(attempt, { ...THROTTLE_POLICY, random: () => 0.5 })).toBe(ceiling / 2);
      expect(backoffMs(attempt, { ...THROTTLE_POLICY, random: () => 0 })).toBe(0);
    }
  });
});
