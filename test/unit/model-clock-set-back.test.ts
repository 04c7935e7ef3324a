// A source's clock set back between two of its events by more than a sender's retries could delay one
// (LATE_DELIVERY_MS) but less than MAX_CLOCK_DRIFT_MS: an RTC kept in local time read as UTC after the xPU
// rebooted, an NTP step, an agent's host set back an hour. Found by test/integration/model-audit-s9.test.ts
// (seed 31337, a node serving a second run with its host agent's clock 3 h behind the first run's): the
// host's next reboot request looked sent before the last reboot's host.ready, joined that ended reboot and
// started nothing; the xPUs were never told to free the host context, and the host.ready that followed
// started an unannounced host reboot. A request is judged against a reboot that ended, where "delivered
// later than any retry" tells a clock set back from a late delivery; signals inside a reboot keep the
// contract's rule that a source's own times order its own events.
import { describe, expect, it } from 'vitest';
import { LATE_DELIVERY_MS, onHostReady, originOf, predates, requestOfEndedHostReboot } from '../../lambdas/core/model.ts';
import { newHostReboot, newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { EXAMPLE, parseInventory } from './inventory-fixture.ts';
import { sourceOfNodeA } from './skewed-events.ts';

const nodeA = parseInventory(EXAMPLE, 'test').nodes[0];
const R0 = Date.parse('2026-12-07T08:00:00.000Z');
const at = (s: number) => new Date(R0 + s * 1000).toISOString();
const HOUR = 3_600_000;
const LATE_S = LATE_DELIVERY_MS / 1000;

/** The host agent's events, its clock right (skew 0) or set back by `backMs`. */
const hostAgent = (backMs = 0) => {
  const send = sourceOfNodeA(R0, -backMs, 'native', 'agent:node-a');
  return (id: string, type: NativeEvent['type'], sentS: number, receivedS = sentS, data: Record<string, unknown> = {}) => {
    const { xpu: _xpu, ...ev } = send(id, type, sentS, receivedS);
    return { ...ev, data };
  };
};
/** The xPU agent's events (dpu0), its clock right or set back by `backMs`. */
const xpuAgent = (backMs = 0) => sourceOfNodeA(R0, -backMs, 'native', 'agent:node-a.dpu0');

/** Requested by the host agent at 0, its host.ready at 60; ended at 62. */
function endedHostReboot(): StoredReboot {
  const request = hostAgent()('q1', 'host.reboot.requested', 0, 0, { method: 'shell' });
  let r: StoredReboot = { ...newHostReboot('hr-1', nodeA, request, { allowed: true }), origin: originOf(request) };
  r = onHostReady(r, hostAgent()('r1', 'host.ready', 60))!.reboot;
  return { ...r, status: 'completed', endedAt: at(62) };
}

/** Announced by the xPU's agent at 0 (its clock right). */
function announced(): StoredReboot {
  const notice = xpuAgent()('n1', 'xpu.reboot.pending', 0, 0);
  return { ...newXpuReboot('xr-1', nodeA, 'dpu0', notice, 'planned'), origin: originOf(notice) };
}

describe('a clock set back between two events of its source, beyond a late delivery', () => {
  it("the host's next reboot request is a new reboot, not the ended reboot's request delivered late", () => {
    // Three minutes after the last reboot ended, by a clock now 3 h behind: "sent" 2 h 57 min before that ready.
    expect(requestOfEndedHostReboot(endedHostReboot(), hostAgent(3 * HOUR)('q2', 'host.reboot.requested', 240))).toBe(false);
    // Set back by 6 h and more, as before.
    expect(requestOfEndedHostReboot(endedHostReboot(), hostAgent(8 * HOUR)('q2', 'host.reboot.requested', 240))).toBe(false);
  });

  it('a request really sent before that host.ready and delivered late, within a retry, still is that reboot’s', () => {
    const late = hostAgent()('q0', 'host.reboot.requested', 30, 30 + LATE_S - 60);
    expect(requestOfEndedHostReboot(endedHostReboot(), late)).toBe(true);
    // Just beyond: a sender retries no later than this, so the clock is likelier set back.
    expect(requestOfEndedHostReboot(endedHostReboot(), hostAgent()('q0', 'host.reboot.requested', 30, 60 + LATE_S + 1))).toBe(false);
  });

  it("within a reboot, the source's clock still orders its own events (contract 7.1): a ready stamped an hour before the notice is stale", () => {
    // Within MAX_CLOCK_DRIFT_MS a late delivery and a clock set back look alike; the contract's rule (a source's
    // own times order its own events) decides for signals, which join or stay out of a reboot and start nothing.
    expect(predates(announced(), xpuAgent(HOUR)('x1', 'xpu.ready', 90))).toBe(true);
    expect(predates(announced(), xpuAgent(8 * HOUR)('x1', 'xpu.ready', 90))).toBe(false);
  });
});
