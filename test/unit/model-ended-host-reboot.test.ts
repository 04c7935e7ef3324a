// ofEndedHostReboot (lambdas/core/model.ts). Found by test/integration/model-audit-s9.test.ts: the BMC's power-off
// of an xPU without persistent power, sent while the host was down, was delivered after the host reboot had ended;
// it started an unannounced xPU reboot that waited for a ready the host reboot had taken, and failed for want of it.
import { describe, expect, it } from 'vitest';
import { LATE_DELIVERY_MS, ofEndedHostReboot, onHostDown, onHostReady, originOf } from '../../lambdas/core/model.ts';
import { newHostReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { EXAMPLE, parseInventory } from './inventory-fixture.ts';

const nodeA = parseInventory(EXAMPLE, 'test').nodes[0];
const R0 = Date.parse('2026-12-07T05:28:00.000Z');
const at = (s: number) => new Date(R0 + s * 1000).toISOString();
const bmcClock = (s: number) => new Date(R0 - 2 * 86_400_000 + s * 1000).toISOString();

const agent = (id: string, type: NativeEvent['type'], s: number, data: Record<string, unknown> = {}): NativeEvent => ({
  id,
  type,
  node: 'node-a',
  time: at(s),
  data,
  source: 'native',
  dedupKey: `native:node-a:${id}`,
  receivedAt: at(s),
  by: 'agent:node-a',
});
const bmc = (id: string, type: NativeEvent['type'], sentS: number, receivedS: number, xpu?: string): NativeEvent => ({
  id,
  type,
  node: 'node-a',
  ...(xpu ? { xpu } : {}),
  time: bmcClock(sentS),
  data: {},
  source: 'redfish',
  dedupKey: `node-a:redfish:${id}`,
  receivedAt: at(receivedS),
});

/** Requested by the agent at 0, the BMC's host power-off at 2, the agent's host.ready at 10; ended at 14. */
function ended(): StoredReboot {
  const request = agent('q', 'host.reboot.requested', 0, { method: 'shell' });
  let r: StoredReboot = { ...newHostReboot('hr-1', nodeA, request, { allowed: true }), origin: originOf(request) };
  r = onHostDown(r, bmc('hd', 'host.down', 2, 2))!.reboot;
  r = onHostReady(r, agent('hr', 'host.ready', 10))!.reboot;
  return { ...r, status: 'completed', endedAt: at(14) };
}

describe('an xPU signal delivered after a host reboot ended', () => {
  it("sent while the host was down (placed through the BMC's host power-off) is the host reboot's", () => {
    expect(ofEndedHostReboot(ended(), bmc('xd', 'xpu.down', 2.1, 20, 'dpu0'))).toBe(true);
  });

  it('sent after the host was back, or delivered later than a retry, is not', () => {
    expect(ofEndedHostReboot(ended(), bmc('xd', 'xpu.down', 30, 30, 'dpu0'))).toBe(false);
    expect(ofEndedHostReboot(ended(), bmc('xd', 'xpu.down', 2.1, 2.1 + LATE_DELIVERY_MS / 1000 + 1, 'dpu0'))).toBe(false);
  });

  it("from the host.ready's own source its clock decides; from a source nothing places, a receipt close to the ready", () => {
    expect(ofEndedHostReboot(ended(), { ...agent('xr', 'xpu.ready', 9), receivedAt: at(20), xpu: 'dpu0' })).toBe(true);
    expect(ofEndedHostReboot(ended(), { ...agent('xr', 'xpu.ready', 11), xpu: 'dpu0' })).toBe(false);
    const other = (s: number): NativeEvent => ({ ...agent('o', 'xpu.down', s), by: 'agent:node-a.dpu0', xpu: 'dpu0' });
    expect(ofEndedHostReboot(ended(), other(12))).toBe(true);
    expect(ofEndedHostReboot(ended(), other(20))).toBe(false);
  });

  it('a host reboot still running, or one the host never came back from, takes nothing this way', () => {
    expect(ofEndedHostReboot({ ...ended(), endedAt: undefined }, bmc('xd', 'xpu.down', 2.1, 20, 'dpu0'))).toBe(false);
    expect(ofEndedHostReboot({ ...ended(), hostReadyOrigin: undefined }, bmc('xd', 'xpu.down', 2.1, 20, 'dpu0'))).toBe(false);
  });
});
