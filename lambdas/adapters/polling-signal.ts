// CommandSignal for Lambda: no shared memory between invocations, so a long poll re-reads the table.
import type { CommandSignal } from '../ports/index.ts';

/** Re-reading every second keeps a long poll's latency near a second at a few reads per poll. */
export class PollingCommandSignal implements CommandSignal {
  readonly #intervalMs: number;

  constructor(intervalMs = 1000) {
    this.#intervalMs = intervalMs;
  }

  notify(): void {}

  wait(_agent: string, ms: number, signal?: AbortSignal): Promise<undefined> {
    if (ms <= 0 || signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), Math.min(ms, this.#intervalMs));
      signal?.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve(undefined);
        },
        { once: true },
      );
    });
  }
}
