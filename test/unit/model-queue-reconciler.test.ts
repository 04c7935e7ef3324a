// The model's transitions for the reconciler and the budget queue (lambdas/core/model.ts): pure,
// never mutating what they are given, null when nothing changes (a replay, a lost race).
import { describe, expect, it } from 'vitest';
import {
  admitNew,
  countOutOfQueue,
  endByReconciler,
  leaveQueue,
  noteBudgetExceeded,
  noteQueueRecheck,
  recordQueuedPostpone,
} from '../../lambdas/core/model.ts';
import { newXpuReboot, planPostpone, summarize, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { EXAMPLE, parseInventory } from './inventory-fixture.ts';

const [node] = parseInventory(EXAMPLE, 'test').nodes;
const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000);
const iso = (s: number) => at(s).toISOString();

function reboot(status: StoredReboot['status'] = 'preparing'): StoredReboot {
  const ev: NativeEvent = {
    id: 'e1',
    type: 'xpu.reboot.pending',
    node: node.id,
    xpu: 'dpu0',
    time: iso(0),
    source: 'native',
    dedupKey: 'k',
    receivedAt: iso(0),
  };
  const r = newXpuReboot('xr-01jabcdefghjkmnpqrstvwxyz0', node, 'dpu0', ev, 'planned');
  r.status = status;
  return r;
}

function queued(): StoredReboot {
  const r = reboot('queued');
  r.queue = { queuedAt: iso(0), reason: 'budget: rack r1 is full', announcedDeadline: r.deadline!, capAt: iso(600) };
  return r;
}

/** Applies `f` to a frozen copy: a transition that mutated its input would throw. */
function pure<T>(r: StoredReboot, f: (r: StoredReboot) => T): T {
  const frozen = structuredClone(r);
  deepFreeze(frozen);
  return f(frozen);
}
function deepFreeze(o: unknown): void {
  if (o && typeof o === 'object') {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
}

describe('endByReconciler', () => {
  it('fails the reboot, times out the commands it closed unless a result got there first, and says who ended it', () => {
    const r = reboot();
    r.waiter = { token: 't', step: 'prepare', for: { kind: 'commands', ids: ['a', 'b'] } } as never;
    r.commands.a = { id: 'a', type: 'migrate-workloads', agent: node.id, status: 'running' } as never;
    r.commands.b = { id: 'b', type: 'protect-pcie', agent: node.id, status: 'succeeded' } as never;
    const step = pure(r, (x) => endByReconciler(x, ['a', 'b'], 'execution-failed', 'States.Runtime', at(30)));
    expect(step?.effects).toEqual([]);
    const s = step!.reboot;
    expect(s).toMatchObject({ status: 'failed', endedAt: iso(30), waiter: null });
    expect(s.failure).toBeUndefined();
    expect(s.commands.a.status).toBe('timed-out');
    expect(s.commands.b.status).toBe('succeeded');
    expect(s.history.at(-1)).toEqual({
      at: iso(30),
      phase: 'failed',
      detail: 'execution-failed: States.Runtime; ended by the reconciler',
      by: 'coordinator',
    });
  });

  it('changes nothing once the reboot ended some other way', () => {
    const ended = endByReconciler(reboot(), [], 'gone', 'x', at(1))!.reboot;
    expect(endByReconciler(ended, [], 'gone', 'again', at(2))).toBeNull();
  });
});

describe('the budget queue', () => {
  it('admitNew counts a new reboot in its budgets, and a crash beyond one says so; the reboot it was given is left as it was', () => {
    const planned = pure(reboot('notified'), (x) => admitNew(x, ['rack#r1'], undefined, at(0)));
    expect(planned.budgetKeys).toEqual(['rack#r1']);
    expect(planned.history.some((h) => h.phase === 'budget-exceeded')).toBe(false);
    const r = reboot('notified');
    r.mode = 'crash';
    const crash = pure(r, (x) => admitNew(x, [], 'rack r1 (maxUnavailable 1)', at(1)));
    expect(crash.budgetKeys).toBeUndefined();
    expect(crash.history.at(-1)).toEqual({
      at: iso(1),
      phase: 'budget-exceeded',
      detail: 'a crash is never held: the node is unavailable beyond rack r1 (maxUnavailable 1)',
      by: 'coordinator',
    });
  });

  it('noteQueueRecheck sets when to look again, only while queued', () => {
    const s = pure(queued(), (x) => noteQueueRecheck(x, iso(60)))!.reboot;
    expect(s.queue?.recheckAt).toBe(iso(60));
    expect(noteQueueRecheck(reboot('notified'), iso(60))).toBeNull();
  });

  it('noteBudgetExceeded says it once', () => {
    const s = pure(reboot('notified'), (x) => noteBudgetExceeded(x, 'rack r1 (maxUnavailable 1)', at(5)))!.reboot;
    expect(s.history.at(-1)).toEqual({
      at: iso(5),
      phase: 'budget-exceeded',
      detail: 'the node is unavailable beyond rack r1 (maxUnavailable 1)',
      by: 'coordinator',
    });
    expect(noteBudgetExceeded(s, 'rack r1 (maxUnavailable 1)', at(6))).toBeNull();
  });

  it('countOutOfQueue takes the keys it is given, says once that it went beyond, and changes nothing when it already counts', () => {
    const s = pure(reboot('notified'), (x) => countOutOfQueue(x, ['rack#r1'], 'rack r1 (maxUnavailable 1)', at(5)))!.reboot;
    expect(s.budgetKeys).toEqual(['rack#r1']);
    expect(s.history.at(-1)?.detail).toBe('forced out of the queue: the node is unavailable beyond rack r1 (maxUnavailable 1)');
    expect(countOutOfQueue(s, ['rack#r1'], 'rack r1 (maxUnavailable 1)', at(6))).toBeNull();
    expect(countOutOfQueue(reboot('notified'), [], undefined, at(6))).toBeNull();
    const keysOnly = countOutOfQueue(reboot('notified'), ['rack#r1'], undefined, at(6))!.reboot;
    expect(keysOnly.budgetKeys).toEqual(['rack#r1']);
    expect(keysOnly.history.some((h) => h.phase === 'budget-exceeded')).toBe(false);
  });

  it('recordQueuedPostpone records the postpone-reboot once, while queued, and what the watchdog was told', () => {
    const r = queued();
    const postpone = planPostpone(r, r.deadline!, 'queued: budget', node, at(1));
    const s = pure(r, (x) => recordQueuedPostpone(x, postpone, at(1)))!.reboot;
    expect(s.commands[postpone.id]).toEqual(summarize(postpone, 'budget', iso(1)));
    expect(s.postponedTo).toBe(r.deadline);
    expect(recordQueuedPostpone(s, postpone, at(2))).toBeNull();
    expect(recordQueuedPostpone(reboot('notified'), postpone, at(2))).toBeNull();
  });

  it('leaveQueue at a free slot: notice goes on with a new deadline, its keys, and a postpone-reboot for the moved deadline', () => {
    const r = queued();
    const { step, postpone } = pure(r, (x) => leaveQueue(x, 'slot', ['rack#r1'], node, at(100)));
    const s = step!.reboot;
    expect(s.status).toBe('notified');
    expect(s.budgetKeys).toEqual(['rack#r1']);
    expect(s.queue?.admittedAt).toBe(iso(100));
    expect(s.history.at(-1)?.phase).toBe('admitted');
    expect(s.deadline).not.toBe(r.deadline);
    expect(postpone?.type).toBe('postpone-reboot');
    expect(s.commands[postpone!.id]).toEqual(summarize(postpone!, 'budget', iso(100)));
    expect(s.postponedTo).toBe(s.deadline);
    expect(leaveQueue(s, 'slot', ['rack#r1'], node, at(101))).toEqual({ step: null });
  });

  it('leaveQueue at the cap says it goes on beyond its budget', () => {
    const { step } = leaveQueue(queued(), 'cap', [], node, at(600), 'the xPU went down while queued');
    expect(step!.reboot.queue?.exceeded).toBe(true);
    expect(step!.reboot.budgetKeys).toBeUndefined();
    expect(step!.reboot.history.at(-1)).toMatchObject({
      phase: 'budget-exceeded',
      detail: expect.stringMatching(/the xPU went down while queued/),
    });
  });
});
