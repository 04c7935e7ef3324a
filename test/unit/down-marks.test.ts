// Which accepted-but-unapplied down makes a cancel answer 409 (contract 7.3: after the xPU went down):
// docs/fleet-safety.md, "A down received before the cancel".
import { describe, expect, it } from 'vitest';
import { acceptedDown, downMarkOf } from '../../lambdas/core/down-marks.ts';
import { parseInventory } from '../../lambdas/core/inventory.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';

const node = parseInventory(`
nodes:
  - { id: n1, rack: r1, xpus: [{ id: dpu0 }, { id: dpu1 }] }
`).nodes[0];
const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const iso = (s: number) => new Date(T0 + s * 1000).toISOString();
const ev = (type: NativeEvent['type'], s: number, over: Partial<NativeEvent> = {}): NativeEvent => ({
  id: `${type}-${s}`,
  type,
  node: 'n1',
  xpu: 'dpu0',
  time: iso(s),
  source: 'native',
  dedupKey: `k-${type}-${s}`,
  receivedAt: iso(s),
  ...over,
});
const planned = (): StoredReboot => {
  const r = newXpuReboot('xr-1', node, 'dpu0', ev('xpu.reboot.pending', 0), 'planned');
  r.status = 'preparing';
  return r;
};

describe('downMarkOf', () => {
  it('marks downs and crashes of an xPU, nothing else', () => {
    expect(downMarkOf(ev('xpu.down', 1))).toBeDefined();
    expect(downMarkOf(ev('xpu.crashed', 1))).toBeDefined();
    for (const type of ['xpu.ready', 'xpu.reboot.pending', 'host.down'] as const) expect(downMarkOf(ev(type, 1)), type).toBeUndefined();
  });
});

describe('acceptedDown', () => {
  it('a down or crash of the xPU received since the notice, not yet applied: the cancel is refused, naming it', () => {
    for (const type of ['xpu.down', 'xpu.crashed'] as const)
      expect(acceptedDown(planned(), ev(type, 5)), type).toMatch(new RegExp(`went down \\(${type} ${type}-5 received at ${iso(5)}`));
  });

  it('says nothing for no mark, another xPU, a down from before the notice, one applied already, or a reboot cancelled already', () => {
    expect(acceptedDown(planned(), undefined)).toBeUndefined();
    expect(acceptedDown(planned(), ev('xpu.down', 5, { xpu: 'dpu1' }))).toBeUndefined();
    expect(acceptedDown(planned(), ev('xpu.down', -30))).toBeUndefined();
    // Sent before the notice by the same source's clock, received after it: the ingest takes it as stale.
    expect(acceptedDown(planned(), ev('xpu.down', 5, { time: iso(-30) }))).toBeUndefined();
    const applied = planned();
    applied.downAt = iso(5);
    expect(acceptedDown(applied, ev('xpu.down', 5))).toBeUndefined();
    const cancelled = planned();
    cancelled.status = 'cancelled';
    expect(acceptedDown(cancelled, ev('xpu.down', 5))).toBeUndefined();
  });
});
