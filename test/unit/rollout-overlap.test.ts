// A rollout is refused (409 RolloutOverlap) over an xPU another rollout still has to reboot: the second announce
// would join the first's reboot, and the second rollout would wait out its reboot-xpu deadline for nothing.
import { describe, expect, it } from 'vitest';
import { overlapOf, type Rollout, type RolloutItem } from '../../lambdas/core/rollout.ts';

const rollout = (id: string, status: Rollout['status'], items: Array<[string, RolloutItem['state']]>): Rollout => ({
  id,
  status,
  selector: {},
  maxUnavailable: 1,
  maxFailures: 1,
  reason: 'fw',
  createdAt: '2030-01-01T00:00:00.000Z',
  items: items.map(([node, state]) => ({ node, xpu: 'dpu0', state })),
  history: [],
  version: 0,
});
const plan = (...nodes: string[]) => nodes.map((node) => ({ node, xpu: 'dpu0' }));

describe('overlapOf', () => {
  it('names the first planned xPU a running rollout has not finished with', () => {
    const running = rollout('ro-a', 'running', [
      ['a', 'done'],
      ['b', 'rebooting'],
      ['c', 'pending'],
    ]);
    expect(overlapOf(plan('x', 'c', 'b'), [running])).toEqual({ rolloutId: 'ro-a', status: 'running', node: 'c', xpu: 'dpu0' });
    expect(overlapOf(plan('a', 'x'), [running])).toBeUndefined();
  });

  it('a paused rollout only for what it still has in flight; an ended one never', () => {
    const paused = rollout('ro-p', 'paused', [
      ['a', 'failed'],
      ['b', 'sent'],
      ['c', 'pending'],
    ]);
    expect(overlapOf(plan('c'), [paused])).toBeUndefined();
    expect(overlapOf(plan('b'), [paused])).toMatchObject({ rolloutId: 'ro-p', node: 'b' });
    for (const status of ['completed', 'cancelled'] as const)
      expect(
        overlapOf(plan('b', 'c'), [
          rollout('ro-e', status, [
            ['b', 'rebooting'],
            ['c', 'pending'],
          ]),
        ]),
      ).toBeUndefined();
  });

  it('another xPU of the same node is no overlap', () => {
    const running = rollout('ro-a', 'running', [['a', 'pending']]);
    expect(overlapOf([{ node: 'a', xpu: 'dpu1' }], [running])).toBeUndefined();
  });
});
