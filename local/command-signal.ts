// Wakes an agent's long poll the moment a command for it is written (same process locally), or hands a
// claimed poll the commands written as delivered to it (docs/command-delivery.md).
import type { CommandSignal, HandedCommands, PollClaim, StoredCommand } from '../lambdas/ports/index.ts';

/**
 * How long a claimed poll waits for its claimer before it looks for itself. A claimer writes a command
 * or two (milliseconds); one that stalls longer gets `hand() === false` and flags them for redelivery.
 */
export const CLAIM_WAIT_MS = 2_000;

interface Parked {
  wake(commands?: StoredCommand[]): void;
  claim(): PollClaim;
}

export class InProcessCommandSignal implements CommandSignal {
  readonly #waiters = new Map<string, Set<Parked>>();
  /** Claimed polls not yet answered: shutdown answers them too. */
  readonly #claimed = new Set<() => void>();
  #closed = false;

  /** The commands, where given, go to every poll woken: they race for them (the store's conditional mark decides). */
  notify(agent: string, commands?: StoredCommand[]): void {
    const set = this.#waiters.get(agent);
    if (!set) return;
    this.#waiters.delete(agent);
    for (const p of set) p.wake(commands);
  }

  /**
   * The newest parked poll of the agent (an older one of the same agent is the likelier to be a
   * connection its agent has left), taken out of reach of `notify`.
   */
  claim(agent: string): PollClaim | undefined {
    const set = this.#waiters.get(agent);
    if (!set || set.size === 0) return undefined;
    const newest = [...set].at(-1)!;
    return newest.claim();
  }

  wait(agent: string, ms: number, signal?: AbortSignal): Promise<StoredCommand[] | HandedCommands | undefined> {
    if (this.#closed || ms <= 0 || signal?.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      let set = this.#waiters.get(agent);
      if (!set) {
        set = new Set();
        this.#waiters.set(agent, set);
      }
      const waiters = set;
      let over = false;
      const finish = (answer?: StoredCommand[] | HandedCommands) => {
        if (over) return;
        over = true;
        clearTimeout(timer);
        this.#leave(agent, waiters, parked);
        this.#claimed.delete(onShutdown);
        signal?.removeEventListener('abort', onAbort);
        resolve(answer);
      };
      const onAbort = () => finish();
      const onShutdown = () => finish();
      let timer = setTimeout(finish, ms);
      const parked: Parked = {
        wake: (commands) => finish(commands),
        claim: () => {
          this.#leave(agent, waiters, parked);
          this.#claimed.add(onShutdown);
          // Its own deadline waits for the claimer: answering empty now would leave the commands
          // about to be written as delivered to nobody.
          clearTimeout(timer);
          timer = setTimeout(finish, CLAIM_WAIT_MS);
          return {
            get live() {
              return !over;
            },
            hand: (commands) => {
              if (over) return false;
              finish({ delivered: commands });
              return true;
            },
            release: () => finish(),
          };
        },
      };
      waiters.add(parked);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #leave(agent: string, set: Set<Parked>, p: Parked): void {
    set.delete(p);
    if (set.size === 0 && this.#waiters.get(agent) === set) this.#waiters.delete(agent);
  }

  /** Shutdown: every long poll answers now, claimed ones too. */
  closeAll(): void {
    this.#closed = true;
    for (const agent of [...this.#waiters.keys()]) this.notify(agent);
    for (const end of [...this.#claimed]) end();
  }
}
