// Found by test/integration/model-audit-s9.test.ts (seed 3): on a loaded machine the xPU workflow reached its
// crash hold 4 s after the crash, when the xPU's ready had been applied already; it still sent protect-pcie to
// the host and allow-coredump to the xPU (both handed out 2.6 s after the xPU was back). In another run the
// early go (proceed-reboot) went to an xPU that was back 2.3 s before: it would have rebooted it again.
import { describe, expect, it } from 'vitest';
import { goesEarly, newXpuReboot, planCommands, xpuIsBack } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { EXAMPLE, parseInventory } from './inventory-fixture.ts';

const nodeA = parseInventory(EXAMPLE, 'test').nodes[0];
const T0 = '2026-12-07T05:04:04.555Z';
const now = new Date(Date.parse(T0) + 4_000);
const ev = (type: NativeEvent['type']): NativeEvent => ({
  id: 'e',
  type,
  node: 'node-a',
  xpu: 'dpu0',
  time: T0,
  data: { reason: 'panic' },
  source: 'native',
  dedupKey: 'native:node-a:e',
  receivedAt: T0,
});
const plan = (r: ReturnType<typeof newXpuReboot>, step: string) => planCommands(r, step, { node: nodeA, now, busyXpus: [] });

describe('steps of an xPU reboot reached after its xPU came back', () => {
  it('the crash hold, the notice phase and the early go send nothing', () => {
    const crash = { ...newXpuReboot('xr-1', nodeA, 'dpu0', ev('xpu.crashed'), 'crash'), readyAt: T0 };
    const planned = { ...newXpuReboot('xr-2', nodeA, 'dpu0', ev('xpu.reboot.pending'), 'planned'), readyAt: T0 };
    expect(xpuIsBack(crash)).toBe(true);
    expect(plan(crash, 'crash')).toEqual([]);
    expect(plan(planned, 'prepare')).toEqual([]);
    expect(plan(planned, 'proceed')).toEqual([]);
    // Recovery still goes on.
    expect(plan(crash, 'recover').map((c) => c.type)).toEqual(['restore-pcie']);
    expect(plan(planned, 'recover').map((c) => c.type)).toEqual(['restore-pcie']);
  });

  it('before the xPU came back they send what they always did', () => {
    const crash = newXpuReboot('xr-1', nodeA, 'dpu0', ev('xpu.crashed'), 'crash');
    const planned = newXpuReboot('xr-2', nodeA, 'dpu0', ev('xpu.reboot.pending'), 'planned');
    expect(plan(crash, 'crash').map((c) => c.type)).toEqual(['protect-pcie', 'allow-coredump']);
    expect(plan(planned, 'prepare').map((c) => c.type)).toEqual(['migrate-workloads', 'protect-pcie']);
    expect(plan(planned, 'proceed').map((c) => c.type)).toEqual(['proceed-reboot']);
  });

  it('the early go is only for an xPU still up and waiting: not once it went down or came back, was forced or ended', () => {
    const r = newXpuReboot('xr-2', nodeA, 'dpu0', ev('xpu.reboot.pending'), 'planned');
    expect(goesEarly(r)).toBe(true);
    expect(goesEarly({ ...r, downAt: T0 })).toBe(false);
    expect(goesEarly({ ...r, readyAt: T0 })).toBe(false);
    expect(goesEarly({ ...r, forced: true })).toBe(false);
    expect(goesEarly({ ...r, endedAt: T0 })).toBe(false);
  });
});
