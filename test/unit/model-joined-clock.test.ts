// Found by test/integration/model-audit-s9.test.ts (seed 90901): the agent announced the reboot, the BMC's
// notice of the same outage joined it, the agent's ready ended it, and the BMC's own ready, retried 2 s
// after that end, started an unannounced reboot of its own (a second reboot for one outage; its host got a
// second restore-pcie). A joined notice (or crash) places its source's clock on ours like a down does.
import { describe, expect, it } from 'vitest';
import { onNotice, onXpuCrashed, onXpuReady, originOf, sameOutage } from '../../lambdas/core/model.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { EXAMPLE, parseInventory } from './inventory-fixture.ts';
import { sourceOfNodeA } from './skewed-events.ts';

const nodeA = parseInventory(EXAMPLE, 'test').nodes[0];
const R0 = Date.parse('2026-12-07T04:45:21.000Z');
const at = (s: number) => new Date(R0 + s * 1000).toISOString();
/** The BMC's clock: 2 days behind ours; the agent's: 3 days ahead. */
const fromBmc = sourceOfNodeA(R0, -2 * 86_400_000, 'redfish');
const fromAgent = sourceOfNodeA(R0, 3 * 86_400_000, 'native', 'agent:node-a.dpu0');

/** Announced by the agent at 0; `joining` joins at 0.2; the agent's ready (sent 2.4) ends it; it fails at 3. */
function endedAfterJoin(joining: NativeEvent, join: typeof onNotice): StoredReboot {
  const notice = fromAgent('n', 'xpu.reboot.pending', 0, 0);
  let r: StoredReboot = { ...newXpuReboot('xr-1', nodeA, 'dpu0', notice, 'planned'), origin: originOf(notice) };
  r = join(r, joining)!.reboot;
  r = onXpuReady(r, fromAgent('a', 'xpu.ready', 2.4, 2.4))!.reboot;
  return { ...r, status: 'failed', failure: 'restore-pcie-failed', endedAt: at(3) };
}

describe('a late ready from a BMC whose notice joined the reboot the agent announced', () => {
  it('sent before the end (placed through that notice) belongs to it; sent after the end is a new outage', () => {
    const r = endedAfterJoin(fromBmc('p', 'xpu.reboot.pending', 0, 0.2), onNotice);
    expect(sameOutage(r, fromBmc('r', 'xpu.ready', 2.4, 5))).toBe(true);
    expect(sameOutage(r, fromBmc('r2', 'xpu.ready', 40, 40))).toBe(false);
  });

  it('the same through a joined crash of the BMC', () => {
    const r = endedAfterJoin(fromBmc('c', 'xpu.crashed', 0, 0.2), onXpuCrashed);
    expect(sameOutage(r, fromBmc('r', 'xpu.ready', 2.4, 5))).toBe(true);
    expect(sameOutage(r, fromBmc('r2', 'xpu.ready', 40, 40))).toBe(false);
  });

  it('a notice that turned out to announce the next outage (sent after the ready) places nothing', () => {
    const notice = fromAgent('n', 'xpu.reboot.pending', 0, 0);
    let r: StoredReboot = { ...newXpuReboot('xr-2', nodeA, 'dpu0', notice, 'planned'), origin: originOf(notice) };
    // The BMC's next notice joined first; the BMC's ready of this outage, sent before it, came after.
    r = onNotice(r, fromBmc('p2', 'xpu.reboot.pending', 10, 10))!.reboot;
    expect(r.joinedOrigins).toHaveLength(1);
    r = onXpuReady(r, fromBmc('r', 'xpu.ready', 5, 11))!.reboot;
    expect(r.deferred?.map((d) => d.id)).toEqual(['p2']);
    expect(r.joinedOrigins ?? []).toEqual([]);
  });
});

// Found by test/integration/model-audit-s9.test.ts (seed 90901, run 2): the BMC told the crash and the ready,
// the reboot failed at once (restore-pcie failed), and the xPU agent's own ready, received 1.3 s after the
// BMC's, started an unannounced reboot: the host was asked to restore PCIe a second time.
describe("a second source's ready (or down) received just after the ready that ended the reboot", () => {
  function crashEndedByBmc(): StoredReboot {
    const crash = fromBmc('c', 'xpu.crashed', 0, 0);
    let r: StoredReboot = { ...newXpuReboot('xr-3', nodeA, 'dpu0', crash, 'crash'), origin: originOf(crash) };
    r = onXpuReady(r, fromBmc('r', 'xpu.ready', 0.2, 0.2))!.reboot;
    return { ...r, status: 'failed', failure: 'restore-pcie-failed', endedAt: at(0.4) };
  }

  it('within CROSS_SOURCE_SLACK_MS of it belongs to the reboot; later it is a new outage', () => {
    const r = crashEndedByBmc();
    expect(sameOutage(r, fromAgent('a', 'xpu.ready', 0, 1.5))).toBe(true);
    expect(sameOutage(r, fromAgent('d', 'xpu.down', -1, 1.5))).toBe(true);
    expect(sameOutage(r, fromAgent('a2', 'xpu.ready', 60, 60))).toBe(false);
    expect(sameOutage(r, fromAgent('d2', 'xpu.down', 6, 6))).toBe(false);
  });

  it("from the ready's own source, its clock decides: sent after that ready is a new outage", () => {
    const r = crashEndedByBmc();
    expect(sameOutage(r, fromBmc('r2', 'xpu.ready', 3, 1.5))).toBe(false);
  });
});

// Found by test/integration/model-audit-s9.test.ts (seed 3, after the fixes above): the BMC announced, the
// agent's ready ended the reboot 0.17 s after it arrived, and the BMC's ready of the same moment, placed through
// the BMC's notice (whose own delivery took 0.5 s), looked sent 0.26 s after the end: an unannounced reboot.
describe("the announcing BMC's ready of the same moment as the agent's ready that ended a fast reboot", () => {
  function announcedByBmc(): StoredReboot {
    const notice = fromBmc('p', 'xpu.reboot.pending', 0, 0.5);
    let r: StoredReboot = { ...newXpuReboot('xr-4', nodeA, 'dpu0', notice, 'planned'), origin: originOf(notice) };
    r = onXpuReady(r, fromAgent('a', 'xpu.ready', 2.2, 2.2))!.reboot;
    return { ...r, status: 'completed', endedAt: at(2.37) };
  }

  it('placed within CROSS_SOURCE_SLACK_MS of that ready is that ready told again; placed later, a new outage', () => {
    const r = announcedByBmc();
    expect(sameOutage(r, fromBmc('r', 'xpu.ready', 2.2, 3.5))).toBe(true);
    expect(sameOutage(r, fromBmc('r2', 'xpu.ready', 9, 9.5))).toBe(false);
  });
});
