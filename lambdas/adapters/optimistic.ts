// Optimistic writes under contention: writers of one item in one process take turns, and a write that
// lost its race to another process backs off (full jitter) and tries again for a time budget.
import { ConcurrentUpdate } from '../core/errors.ts';

export interface ConflictPolicy {
  /**
   * How long a writer keeps trying after its first lost race. A count of attempts ran out under
   * contention that resolves in time: 8 writers on one reboot lose a race 2 times in 3 and a writer
   * lost 12 in a row about once in 300 requests. Well under the API's and the workflow steps' Lambda
   * timeouts (20 s and more), so a writer that gives up still answers (503, or a Retry of the step).
   */
  budgetMs: number;
  /** A bound beside the budget, should the clock not move (a stubbed one). */
  maxAttempts: number;
  /** Backoff before attempt n+1: uniform in [0, min(capMs, baseMs * 2^n)] (AWS "full jitter"). */
  baseMs: number;
  capMs: number;
  /** Milliseconds, monotonic; injectable so a test can run the budget out without waiting. */
  now: () => number;
  random: () => number;
  sleep: (ms: number) => Promise<void>;
}

export const CONFLICT_POLICY: Readonly<ConflictPolicy> = Object.freeze({
  budgetMs: 8_000,
  maxAttempts: 400,
  baseMs: 5,
  capMs: 250,
  now: () => performance.now(),
  random: Math.random,
  sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
});

/** How long to wait before attempt `attempt + 1` (full jitter: spreads the losers of one race apart). */
export function backoffMs(attempt: number, policy: Pick<ConflictPolicy, 'baseMs' | 'capMs' | 'random'> = CONFLICT_POLICY): number {
  return policy.random() * Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 30));
}

/**
 * Unprocessed items of a batch call (DynamoDB throttling): full jitter, 5 ms doubling to 200 ms. The same
 * curve as a lost race's, with a lower cap: the next call asks only for what is left.
 */
export const THROTTLE_POLICY: Readonly<Pick<ConflictPolicy, 'baseMs' | 'capMs' | 'random'>> = Object.freeze({
  baseMs: 5,
  capMs: 200,
  random: Math.random,
});

/** Waits out the backoff before asking a batch call again for its unprocessed items (attempt 0 first). */
export function throttled(attempt: number, policy: Pick<ConflictPolicy, 'baseMs' | 'capMs' | 'random'> = THROTTLE_POLICY): Promise<void> {
  return new Promise((r) => setTimeout(r, backoffMs(attempt, policy)));
}

/**
 * The retry state of one write: `more(attempt)` says whether to try (again), `lost(attempt)` waits
 * out the backoff after a lost race, `giveUp()` is the error once `more` says no.
 */
export function conflictRetry(what: string, policy: ConflictPolicy = CONFLICT_POLICY) {
  const start = policy.now();
  let attempts = 0;
  return {
    more(attempt: number): boolean {
      attempts = attempt;
      return attempt === 0 || (attempt < policy.maxAttempts && policy.now() - start < policy.budgetMs);
    },
    lost(attempt: number): Promise<void> {
      return policy.sleep(backoffMs(attempt, policy));
    },
    giveUp(): ConcurrentUpdate {
      return new ConcurrentUpdate(`${what} kept changing under ${attempts} attempts in ${Math.round(policy.now() - start)} ms`);
    },
  };
}

/**
 * Turns per key within this process: a writer of an item waits for the one of this process before it
 * (first come, first served) instead of racing it and losing. Locally every API request, ingest and
 * workflow step shares one process, so its writers of one reboot never conflict at all; in AWS each
 * Lambda instance serves one call at a time, and the conditional write and `conflictRetry` sort out
 * instances. Holds nothing after the last writer of a key is done.
 */
export class Turns {
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `fn` once the writers of `key` before it are done; `waited` says whether there were any. */
  async run<T>(key: string, fn: (waited: boolean) => Promise<T>): Promise<T> {
    const before = this.#tails.get(key);
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    const tail = before ? before.then(() => mine) : mine;
    this.#tails.set(key, tail);
    try {
      if (before) await before;
      return await fn(before !== undefined);
    } finally {
      done();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }

  /** Keys with a writer at work or waiting (for tests: nothing is held after the last one). */
  get busy(): number {
    return this.#tails.size;
  }
}
