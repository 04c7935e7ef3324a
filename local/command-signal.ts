// Wakes an agent's long poll the moment a command for it is written (same process locally).
import type { CommandSignal } from '../lambdas/ports/index.ts';

export class InProcessCommandSignal implements CommandSignal {
  readonly #waiters = new Map<string, Set<() => void>>();
  #closed = false;

  notify(agent: string): void {
    const set = this.#waiters.get(agent);
    if (!set) return;
    this.#waiters.delete(agent);
    for (const wake of set) wake();
  }

  wait(agent: string, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.#closed || ms <= 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.#waiters.get(agent);
      if (!set) {
        set = new Set();
        this.#waiters.set(agent, set);
      }
      const done = () => {
        clearTimeout(timer);
        set!.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Shutdown: every long poll answers now. */
  closeAll(): void {
    this.#closed = true;
    for (const agent of [...this.#waiters.keys()]) this.notify(agent);
  }
}
