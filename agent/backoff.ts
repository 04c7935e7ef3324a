// Capped exponential backoff with full jitter, so a fleet of agents does not reconnect in step.

export interface Backoff {
  /** The delay before the next attempt, in ms; grows with each call until reset. */
  next(): number;
  reset(): void;
  readonly attempts: number;
}

/** A floor keeps an unlucky draw of full jitter from turning into a tight retry loop. */
const FLOOR_MS = 50;

export function createBackoff(initialMs: number, maxMs: number, random: () => number = Math.random): Backoff {
  let attempts = 0;
  return {
    next() {
      const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempts, 30));
      attempts++;
      return Math.max(Math.min(FLOOR_MS, ceiling), Math.round(random() * ceiling));
    },
    reset() {
      attempts = 0;
    },
    get attempts() {
      return attempts;
    },
  };
}

/** Resolves after ms, or early (without error) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
