// The rollout tick (pure): the plan's order, maxUnavailable, maxFailures and cancel under any sequence of outcomes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseInventory } from '../../lambdas/core/inventory.ts';
import {
  cancelRollout,
  isInFlight,
  planRollout,
  rolloutTick,
  type Observation,
  type Rollout,
  type StartGate,
} from '../../lambdas/core/rollout.ts';

const inventory = parseInventory(`nodes:
  - { id: a, rack: r2, zone: z1, tenant: t1, xpus: [{ id: dpu0 }] }
  - { id: b, rack: r1, zone: z1, tenant: t2, xpus: [{ id: dpu0 }, { id: dpu1 }] }
  - { id: c, rack: r2, zone: z2, tenant: t1, xpus: [{ id: dpu0 }] }
  - { id: d, zone: z2, xpus: [] }
`);

describe('planRollout', () => {
  it('goes rack by rack (racks in order of first appearance), nodes and xPUs in inventory order', () => {
    expect(planRollout(inventory, {})).toEqual([
      { node: 'a', xpu: 'dpu0' },
      { node: 'c', xpu: 'dpu0' },
      { node: 'b', xpu: 'dpu0' },
      { node: 'b', xpu: 'dpu1' },
    ]);
    expect(planRollout(inventory, { tenant: 't1' }).map((p) => p.node)).toEqual(['a', 'c']);
    expect(planRollout(inventory, { zone: 'z2' })).toEqual([{ node: 'c', xpu: 'dpu0' }]);
    expect(planRollout(inventory, { node: 'd' })).toEqual([]);
  });
});

function fresh(n: number, maxUnavailable: number, maxFailures: number): Rollout {
  return {
    id: 'ro-1',
    status: 'running',
    selector: {},
    maxUnavailable,
    maxFailures,
    reason: 'fw',
    createdAt: '2030-01-01T00:00:00.000Z',
    items: Array.from({ length: n }, (_, i) => ({ node: `n${i}`, xpu: 'dpu0', state: 'pending' as const })),
    history: [],
    version: 0,
  };
}

// One step of the world between two ticks: some in-flight xPUs end (ok or not), some gates shut, maybe a cancel.
const stepArb = fc.record({
  outcomes: fc.array(
    fc.constantFrom<'none' | 'rebooting' | 'completed' | 'failed' | 'skipped'>('none', 'rebooting', 'completed', 'failed', 'skipped'),
    { minLength: 12, maxLength: 12 },
  ),
  shut: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
  cancel: fc.integer({ min: 0, max: 9 }).map((v) => v === 0),
});

describe('rolloutTick', () => {
  it('never has more than maxUnavailable in flight, starts in plan order, never after pausing or cancel, and ends', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(stepArb, { minLength: 1, maxLength: 40 }),
        (n, maxU, maxF, steps) => {
          let r = fresh(n, maxU, maxF);
          const now = new Date('2030-01-01T00:00:00Z');
          for (const [k, s] of steps.entries()) {
            const obs = new Map<number, Observation>();
            r.items.forEach((it, i) => {
              if (!isInFlight(it)) return;
              const o = s.outcomes[i];
              if (o === 'skipped') obs.set(i, { commandStatus: 'skipped' });
              else if (o !== 'none')
                obs.set(i, { reboot: { id: `xr-${i}`, status: o, ...(o !== 'rebooting' ? { endedAt: now.toISOString() } : {}) } });
            });
            const gates = new Map<number, StartGate>(r.items.map((_, i) => [i, { ok: !s.shut[i], why: 'shut' }]));
            if (s.cancel) r = cancelRollout(r, 'stop', 'operator', now) ?? r;
            const before = r;
            const t = rolloutTick(r, obs, gates, new Map(), new Date(now.getTime() + k * 1000));
            r = t.rollout;
            const inFlight = r.items.filter(isInFlight).length;
            expect(inFlight).toBeLessThanOrEqual(maxU);
            // Started only while running, and in plan order: nothing pending before a started one.
            if (before.status !== 'running') expect(t.started).toEqual([]);
            for (const i of t.started) expect(r.items.slice(0, i).some((it) => it.state === 'pending')).toBe(false);
            // Ended items stay ended.
            before.items.forEach((it, i) => {
              if (it.state === 'done' || it.state === 'failed') expect(r.items[i].state).toBe(it.state);
            });
            if (r.items.filter((it) => it.state === 'failed').length >= maxF) expect(['paused', 'cancelled']).toContain(r.status);
            if (t.next === 'completed') expect(r.items.every((it) => it.state === 'done' || it.state === 'failed')).toBe(true);
            if (t.next === 'completed' || t.next === 'paused' || t.next === 'cancelled') {
              expect(inFlight).toBe(0);
              break;
            }
          }
        },
      ),
      { seed: 16_2030, numRuns: 300, endOnFailure: true },
    );
  });

  it('waits for the window with the time until it opens, capped at an hour', () => {
    const t = rolloutTick(
      fresh(2, 1, 1),
      new Map(),
      new Map([[0, { ok: false, why: 'outside its maintenance window', retryAt: '2030-01-01T00:10:00.000Z' }]]),
      new Map(),
      new Date('2030-01-01T00:00:00Z'),
    );
    expect(t).toMatchObject({ next: 'wait-window', waitSeconds: 600, started: [] });
    expect(t.rollout.blocked).toBe('n0/dpu0: outside its maintenance window');
  });

  it('fails an xPU whose reboot-xpu went unanswered past its deadline', () => {
    const r = fresh(1, 1, 1);
    r.items[0] = { ...r.items[0], state: 'sent', sentAt: '2030-01-01T00:00:00.000Z' };
    const t = rolloutTick(r, new Map([[0, {}]]), new Map(), new Map([[0, '2030-01-01T00:10:00.000Z']]), new Date('2030-01-01T00:10:01Z'));
    expect(t.rollout.items[0]).toMatchObject({ state: 'failed', reason: 'no reboot was announced by the reboot-xpu deadline' });
    expect(t.next).toBe('paused');
  });
});
