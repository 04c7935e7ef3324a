// Time for the local Step Functions engine: every timer it owns goes through a Clock so tests can drive time.

export interface Clock {
  now(): number;
  /** Calls fn once at absolute time atMs (at once if it is in the past). Returns a cancel function. */
  setTimer(atMs: number, fn: () => void): () => void;
}

// setTimeout silently turns delays above 2^31-1 ms (24.8 days) into 1 ms, so long timers re-arm in steps.
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(atMs, fn) {
    let handle: NodeJS.Timeout | undefined;
    let cancelled = false;
    const arm = () => {
      if (cancelled) return;
      const delay = atMs - Date.now();
      if (delay > MAX_TIMEOUT_MS) {
        handle = setTimeout(arm, MAX_TIMEOUT_MS);
      } else {
        handle = setTimeout(fn, Math.max(0, delay));
      }
    };
    arm();
    return () => {
      cancelled = true;
      if (handle) clearTimeout(handle);
    };
  },
};

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
}

// A macrotask turn lets every promise chain the engine started (journal writes, handler calls) settle.
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A clock that only moves when told to; timers fire in time order, with engine work settling between them. */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private timers: ManualTimer[] = [];

  constructor(startMs: number = Date.parse('2030-01-01T00:00:00.000Z')) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimer(atMs: number, fn: () => void): () => void {
    const timer: ManualTimer = { at: atMs, seq: this.seq++, fn };
    this.timers.push(timer);
    // Already due: fire on the next turn, as a real timer would, without waiting for someone to advance.
    if (atMs <= this.current) setImmediate(() => this.fire(timer));
    return () => {
      const i = this.timers.indexOf(timer);
      if (i >= 0) this.timers.splice(i, 1);
    };
  }

  /** Number of timers not yet fired or cancelled. */
  pending(): number {
    return this.timers.length;
  }

  /** Absolute time of the next timer, if any. */
  nextAt(): number | undefined {
    return this.earliest()?.at;
  }

  async advance(ms: number): Promise<void> {
    await this.advanceTo(this.current + ms);
  }

  async advanceTo(targetMs: number): Promise<void> {
    await settle();
    for (;;) {
      const next = this.earliest();
      if (!next || next.at > targetMs) break;
      if (next.at > this.current) this.current = next.at;
      this.fire(next);
      await settle();
    }
    if (targetMs > this.current) this.current = targetMs;
    await settle();
  }

  /** Fires every timer, including ones scheduled while firing, up to `limit` of them. */
  async runAll(limit = 10_000): Promise<void> {
    await settle();
    for (let i = 0; i < limit; i++) {
      const next = this.earliest();
      if (!next) return;
      await this.advanceTo(Math.max(next.at, this.current));
    }
    throw new Error(`ManualClock.runAll: more than ${limit} timers, probably a timer loop`);
  }

  private fire(timer: ManualTimer): void {
    const i = this.timers.indexOf(timer);
    if (i < 0) return; // cancelled or already fired
    this.timers.splice(i, 1);
    timer.fn();
  }

  private earliest(): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.timers) {
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/**
 * A clock whose timers do not fire until it is opened: after a restart, the stack holds the engine's timers
 * (deadlines, heartbeat timeouts, waits that ran out while it was down) until the events queued meanwhile have
 * been processed once, so an `xpu.ready` accepted before a deadline does not lose to that deadline just because
 * the coordinator was down. Held timers fire in time order when it opens; cancelling a held timer drops it.
 */
export class HoldingClock implements Clock {
  private held: { at: number; seq: number; fn: () => void }[] | undefined = [];
  private seq = 0;

  private readonly inner: Clock;

  constructor(inner: Clock) {
    this.inner = inner;
  }

  get holding(): boolean {
    return this.held !== undefined;
  }

  now(): number {
    return this.inner.now();
  }

  setTimer(atMs: number, fn: () => void): () => void {
    let entry: { at: number; seq: number; fn: () => void } | undefined;
    const cancelInner = this.inner.setTimer(atMs, () => {
      if (!this.held) return fn();
      entry = { at: atMs, seq: this.seq++, fn };
      this.held.push(entry);
    });
    return () => {
      cancelInner();
      if (entry && this.held) this.held = this.held.filter((e) => e !== entry);
    };
  }

  /** Lets time run: fires what was held, earliest first. Later calls do nothing. */
  open(): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    for (const e of held.sort((a, b) => a.at - b.at || a.seq - b.seq)) e.fn();
  }
}
