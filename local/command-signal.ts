// Wakes an agent's long poll the moment a command for it is written (same process locally).
import type { CommandSignal, StoredCommand } from '../lambdas/ports/index.ts';

type Waiter = (commands?: StoredCommand[]) => void;

export class InProcessCommandSignal implements CommandSignal {
  readonly #waiters = new Map<string, Set<Waiter>>();
  #closed = false;

  /** The commands, where given, go to every poll woken: they race for them (the store's conditional mark decides). */
  notify(agent: string, commands?: StoredCommand[]): void {
    const set = this.#waiters.get(agent);
    if (!set) return;
    this.#waiters.delete(agent);
    for (const wake of set) wake(commands);
  }

  wait(agent: string, ms: number, signal?: AbortSignal): Promise<StoredCommand[] | undefined> {
    if (this.#closed || ms <= 0 || signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      let set = this.#waiters.get(agent);
      if (!set) {
        set = new Set();
        this.#waiters.set(agent, set);
      }
      const done: Waiter = (commands) => {
        clearTimeout(timer);
        set!.delete(done);
        signal?.removeEventListener('abort', onAbort);
        resolve(commands);
      };
      const onAbort = () => done();
      const timer = setTimeout(done, ms);
      set.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Shutdown: every long poll answers now. */
  closeAll(): void {
    this.#closed = true;
    for (const agent of [...this.#waiters.keys()]) this.notify(agent);
  }
}
