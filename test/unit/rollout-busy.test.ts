// The rollout tick (pure) with xPUs still rebooting for someone else (a cancelled rollout's reboots run on):
// they are never started, each takes a maxUnavailable slot, and they go in plan order once free.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isInFlight, rolloutTick, type Rollout, type StartGate } from '../../lambdas/core/rollout.ts';

const NOW = new Date('2026-12-07T05:00:00Z');

function fresh(n: number, maxUnavailable: number): Rollout {
  return {
    id: 'ro-new',
    status: 'running',
    selector: {},
    maxUnavailable,
    maxFailures: 1,
    reason: 'fw 2',
    createdAt: NOW.toISOString(),
    items: Array.from({ length: n }, (_, i) => ({ node: `n${i}`, xpu: 'dpu0', state: 'pending' as const })),
    history: [],
    waiter: null,
    version: 0,
  };
}

const open = (r: Rollout) => new Map<number, StartGate>(r.items.map((_, i) => [i, { ok: true }]));

describe('rolloutTick with busy xPUs', () => {
  it('skips them, counts them against maxUnavailable, and says what it waits for', () => {
    const r = fresh(3, 2);
    const busy = new Map([[0, 'its reboot for rollout ro-old (cancelled) is still under way']]);
    const t = rolloutTick(r, new Map(), open(r), new Map(), NOW, busy);
    // n0 busy takes one slot: only n1 starts.
    expect(t.started).toEqual([1]);
    expect(t.rollout.items[0].state).toBe('pending');
    expect(t.rollout.blocked).toBe('n0/dpu0: its reboot for rollout ro-old (cancelled) is still under way');
    // All slots busy: nothing starts, and the rollout waits (not completed, not paused).
    const all = rolloutTick(
      fresh(2, 2),
      new Map(),
      open(fresh(2, 2)),
      new Map(),
      NOW,
      new Map([
        [0, 'x'],
        [1, 'y'],
      ]),
    );
    expect(all.started).toEqual([]);
    expect(all.next).toBe('wait-reboots');
    expect(all.rollout.status).toBe('running');
  });

  it('once free, the xPU goes first, in plan order', () => {
    const r = fresh(3, 1);
    const t = rolloutTick(r, new Map(), open(r), new Map(), NOW, new Map([[1, 'busy']]));
    expect(t.started).toEqual([]); // n1 busy fills the one slot, although n0 is free: it is down all the same
    const later = rolloutTick(t.rollout, new Map(), open(t.rollout), new Map(), NOW, new Map());
    expect(later.started).toEqual([0]);
  });

  it('never starts a busy item, nor more than maxUnavailable counting the busy ones (seeded property)', () => {
    const seed = 20261207;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        (n, maxUnavailable, flags) => {
          const r = fresh(n, maxUnavailable);
          const busy = new Map(flags.slice(0, n).flatMap((b, i) => (b ? [[i, 'busy'] as const] : [])));
          const t = rolloutTick(r, new Map(), open(r), new Map(), NOW, busy);
          for (const i of t.started) expect(busy.has(i)).toBe(false);
          expect(t.rollout.items.filter(isInFlight).length + busy.size).toBeLessThanOrEqual(Math.max(maxUnavailable, busy.size));
          // Every free pending item that could fit was started.
          expect(t.started.length).toBe(Math.min(n - busy.size, Math.max(0, maxUnavailable - busy.size)));
        },
      ),
      { seed, verbose: true },
    );
  });
});
