// sameOutage (lambdas/core/model.ts): which ended xPU reboot a late down or ready belongs to, when the BMC
// announced the reboot and an agent's ready ended it before the BMC's own retries came in.
import { describe, expect, it } from 'vitest';
import { LATE_DELIVERY_MS, originOf, predates, sameOutage, sourceOf } from '../../lambdas/core/model.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { EXAMPLE, parseInventory } from './inventory-fixture.ts';
import { sourceOfNodeA } from './skewed-events.ts';

const nodeA = parseInventory(EXAMPLE, 'test').nodes[0];
const R0 = Date.parse('2026-11-25T10:00:00.000Z');
const at = (s: number) => new Date(R0 + s * 1000).toISOString();
/** The BMC's clock: 3 days behind ours. */
const bmc = (s: number) => new Date(R0 - 3 * 86_400_000 + s * 1000).toISOString();

const redfish = sourceOfNodeA(R0, -3 * 86_400_000, 'redfish');

/** Announced by the BMC at 0, ended by the agent's ready (received at 60) at 62. */
function endedByTheAgent(): StoredReboot {
  const notice = redfish('p', 'xpu.reboot.pending', 0, 0);
  const r = newXpuReboot('xr-1', nodeA, 'dpu0', notice, 'planned');
  const agentReady: NativeEvent = {
    ...notice,
    id: 'a',
    type: 'xpu.ready',
    time: at(60),
    source: 'native',
    dedupKey: 'native:node-a:a',
    receivedAt: at(60),
    by: 'agent:node-a.dpu0',
  };
  return { ...r, origin: originOf(notice), readyOrigin: originOf(agentReady), readyAt: at(60), status: 'completed', endedAt: at(62) };
}

describe('a late down or ready from the BMC that announced the reboot', () => {
  it('sent while the reboot ran (by its clock, placed through its notice) belongs to it, however late it comes', () => {
    const r = endedByTheAgent();
    expect(sameOutage(r, redfish('d', 'xpu.down', 30, 120))).toBe(true);
    expect(sameOutage(r, redfish('r', 'xpu.ready', 59, 120))).toBe(true);
    expect(sameOutage(r, redfish('r2', 'xpu.ready', 61, 1800))).toBe(true);
  });

  it('delivered more than LATE_DELIVERY_MS after it was sent (its clock set back since, likelier than a retry) is new', () => {
    const r = endedByTheAgent();
    expect(sameOutage(r, redfish('d', 'xpu.down', 30, 30 + LATE_DELIVERY_MS / 1000 + 1))).toBe(false);
  });

  it('sent after it ended is a new outage (an unannounced reboot)', () => {
    const r = endedByTheAgent();
    expect(sameOutage(r, redfish('d', 'xpu.down', 600, 600))).toBe(false);
    // (Sent within CROSS_SOURCE_SLACK_MS of the agent's ready, at 63, it is that ready told again: model-joined-clock.test.ts.)
    expect(sameOutage(r, redfish('r', 'xpu.ready', 66, 66))).toBe(false);
  });

  it('from a BMC whose clock was set since (jumped by more than a drift) is judged by receipt: new', () => {
    const r = endedByTheAgent();
    const jumped = { ...redfish('d', 'xpu.down', 30, 120), time: new Date(Date.parse(bmc(30)) - 7 * 86_400_000).toISOString() };
    expect(sameOutage(r, jumped)).toBe(false);
  });

  it('from another source is judged by receipt, as before', () => {
    const r = endedByTheAgent();
    const other: NativeEvent = { ...redfish('x', 'xpu.down', 30, 120), source: 'native', by: 'operator', time: at(30) };
    expect(sameOutage(r, other)).toBe(false);
  });
});

describe('a late ready from a BMC whose power-off the reboot applied (the agent announced it)', () => {
  it('sent before the end, by the clock that power-off placed, belongs to it; sent after, is new', () => {
    const notice: NativeEvent = {
      id: 'n',
      type: 'xpu.reboot.pending',
      node: 'node-a',
      xpu: 'dpu0',
      time: at(0),
      data: {},
      source: 'native',
      dedupKey: 'native:node-a:n',
      receivedAt: at(0),
      by: 'agent:node-a.dpu0',
    };
    const down = redfish('d', 'xpu.down', 30, 30);
    const agentReady: NativeEvent = {
      ...notice,
      id: 'a',
      type: 'xpu.ready',
      time: at(60),
      receivedAt: at(60),
      dedupKey: 'native:node-a:a',
    };
    const r: StoredReboot = {
      ...newXpuReboot('xr-2', nodeA, 'dpu0', notice, 'planned'),
      origin: originOf(notice),
      downOrigin: originOf(down),
      readyOrigin: originOf(agentReady),
      status: 'completed',
      endedAt: at(62),
    };
    expect(sameOutage(r, redfish('r', 'xpu.ready', 59, 300))).toBe(true);
    expect(sameOutage(r, redfish('r2', 'xpu.ready', 90, 300))).toBe(false);
    expect(sameOutage({ ...r, downOrigin: undefined }, redfish('r', 'xpu.ready', 59, 300))).toBe(false);
  });
});

describe('a Redfish record without a timestamp', () => {
  it('is on our clock, not its BMC’s: the BMC’s stamped ready, 2 hours behind, does not predate the unstamped notice', () => {
    const notice: NativeEvent = { ...redfish('p', 'xpu.reboot.pending', 0, 0), time: at(0), timeIsReceipt: true };
    const r: StoredReboot = { ...newXpuReboot('xr-3', nodeA, 'dpu0', notice, 'planned'), origin: originOf(notice) };
    const ready: NativeEvent = { ...redfish('r', 'xpu.ready', 0, 90), time: new Date(R0 + 90_000 - 2 * 3_600_000).toISOString() };
    expect(sourceOf(notice)).not.toBe(sourceOf(ready));
    expect(predates(r, ready)).toBe(false);
    // Two unstamped records of one BMC still order by their receipts.
    const down: NativeEvent = { ...redfish('d', 'xpu.down', 0, 30), time: at(30), timeIsReceipt: true };
    expect(sourceOf(down)).toBe(sourceOf(notice));
  });
});
