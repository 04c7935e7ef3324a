// A BMC's clock learned from its own deliveries (lambdas/core/bmc-clock.ts), and the one use the model makes of it
// (model.ts placedBeforeReady): a BMC notice delivered late after an agent's ready ended its outage joins that
// outage instead of starting a second reboot; a notice sent after the ready still starts one.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CLOCK_WINDOW_MS,
  type ClockEstimate,
  clockSampleOf,
  noteSample,
  placeOnOurClock,
  supersedes,
} from '../../lambdas/core/bmc-clock.ts';
import { KEEP_SIGNAL_MS, onNotice, originOf, sameOutage, unannouncedReboot } from '../../lambdas/core/model.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { EXAMPLE, parseInventory } from './inventory-fixture.ts';

const nodeA = parseInventory(EXAMPLE, 'test').nodes[0];
const R0 = Date.parse('2026-11-25T10:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
/** The BMC's clock: 3 days behind ours. */
const BEHIND = 3 * 86_400_000;

/** A BMC record sent at `sentMs` and received at `receivedMs` (our clock), stamped by a clock `offset` behind ours. */
function bmcEvent(id: string, type: NativeEvent['type'], sentMs: number, receivedMs: number, offset = BEHIND): NativeEvent {
  return {
    id,
    type,
    node: 'node-a',
    xpu: 'dpu0',
    time: iso(sentMs - offset),
    data: {},
    source: 'redfish',
    dedupKey: `node-a:redfish:${id}`,
    receivedAt: iso(receivedMs),
  };
}

function agentReady(receivedMs: number): NativeEvent {
  return {
    id: 'a',
    type: 'xpu.ready',
    node: 'node-a',
    xpu: 'dpu0',
    time: iso(receivedMs),
    data: {},
    source: 'native',
    dedupKey: 'native:node-a:a',
    receivedAt: iso(receivedMs),
    by: 'agent:node-a.dpu0',
  };
}

/** The agent's ready (received at `readyMs`) came first: an unannounced reboot, completed a second later. */
function unannouncedByTheAgent(readyMs: number): StoredReboot {
  const ready = agentReady(readyMs);
  const r = unannouncedReboot(newXpuReboot('xr-1', nodeA, 'dpu0', ready, 'planned'), ready).reboot;
  return { ...r, status: 'completed', endedAt: iso(readyMs + 1000) };
}

const placed = (est: ClockEstimate | undefined, ev: NativeEvent): NativeEvent => {
  const p = placeOnOurClock(est, ev);
  return p ? { ...ev, placed: p } : ev;
};

describe('the estimate', () => {
  it('is sampled from stamped BMC records only (an unstamped one is our receipt; an agent is no BMC)', () => {
    expect(clockSampleOf(bmcEvent('s', 'xpu.ready', R0, R0 + 300))).toEqual({ gapMs: BEHIND + 300, at: R0 + 300 });
    expect(clockSampleOf({ ...bmcEvent('s', 'xpu.ready', R0, R0), timeIsReceipt: true })).toBeUndefined();
    expect(clockSampleOf(agentReady(R0))).toBeUndefined();
  });

  it('keeps the smallest gap; a larger one (a slower delivery) replaces it only once it is older than its window', () => {
    const est = { gapMs: 1000, at: R0 };
    expect(supersedes(undefined, { gapMs: 5000, at: R0 })).toBe(true);
    expect(supersedes(est, { gapMs: 900, at: R0 + 1 })).toBe(true);
    expect(supersedes(est, { gapMs: 5000, at: R0 + CLOCK_WINDOW_MS })).toBe(false);
    expect(noteSample(est, { gapMs: 5000, at: R0 + CLOCK_WINDOW_MS + 1 })).toEqual({ gapMs: 5000, at: R0 + CLOCK_WINDOW_MS + 1 });
  });

  it('places an event at its own time plus the gap, widened by the age; not at all when stale or not fitting', () => {
    const est = clockSampleOf(bmcEvent('s', 'xpu.ready', R0, R0 + 200))!;
    const late = bmcEvent('p', 'xpu.reboot.pending', R0 - 90_000, R0 + 6000);
    expect(placeOnOurClock(est, late)).toEqual({ sentBy: iso(R0 - 90_000 + 200), uncertaintyMs: 5006 });
    // Too old an estimate; delivered more than 30 min after it was sent; "sent" well after it was received.
    expect(placeOnOurClock({ ...est, at: est.at - CLOCK_WINDOW_MS - 7000 }, late)).toBeUndefined();
    expect(placeOnOurClock(est, bmcEvent('p', 'xpu.reboot.pending', R0 - 31 * 60_000, R0 + 6000))).toBeUndefined();
    expect(placeOnOurClock({ ...est, gapMs: est.gapMs + 60_000 }, late)).toBeDefined();
    expect(placeOnOurClock({ ...est, gapMs: est.gapMs + 110_000 }, late)).toBeUndefined();
    expect(placeOnOurClock(undefined, late)).toBeUndefined();
  });
});

describe("a BMC's notice delivered late, after the agent's ready ended the outage", () => {
  const readyMs = R0;
  const est = clockSampleOf(bmcEvent('s', 'xpu.ready', R0 + 100, R0 + 400))!;

  it('placed before that ready: that outage, delivered late (joins, starts nothing)', () => {
    const r = unannouncedByTheAgent(readyMs);
    const late = placed(est, bmcEvent('p', 'xpu.reboot.pending', R0 - 90_000, R0 + 6000));
    expect(sameOutage(r, late)).toBe(true);
    const joined = onNotice(r, late);
    expect(joined?.reboot.history.at(-1)?.phase).toBe('joined');
    expect(joined?.effects).toEqual([]);
    // Without its placement, as before: a new reboot (by receipt, more than 5 s after the ready).
    expect(sameOutage(r, { ...late, placed: undefined })).toBe(false);
  });

  it('placed within the uncertainty of the ready, or after it: a next outage, as before', () => {
    const r = unannouncedByTheAgent(readyMs);
    expect(sameOutage(r, placed(est, bmcEvent('p', 'xpu.reboot.pending', R0 - 2000, R0 + 6000)))).toBe(false);
    expect(sameOutage(r, placed(est, bmcEvent('p', 'xpu.reboot.pending', R0 + 3000, R0 + 6000)))).toBe(false);
  });

  it('deferred already by that reboot (re-keyed for the next one): its placement is not used again', () => {
    const r = unannouncedByTheAgent(readyMs);
    const late = placed(est, bmcEvent('p', 'xpu.reboot.pending', R0 - 90_000, R0 + 6000));
    expect(sameOutage(r, late)).toBe(true);
    expect(sameOutage(r, { ...late, dedupKey: `${late.dedupKey}#after:xr-1` })).toBe(false);
  });

  it('received after the keep window: a next outage', () => {
    const r = unannouncedByTheAgent(readyMs);
    const recent = clockSampleOf(bmcEvent('s', 'xpu.ready', R0 + KEEP_SIGNAL_MS, R0 + KEEP_SIGNAL_MS + 100))!;
    const ev = placed(recent, bmcEvent('p', 'xpu.reboot.pending', R0 - 90_000, R0 + KEEP_SIGNAL_MS + 6000));
    expect(sameOutage(r, ev)).toBe(false);
  });

  it('while the reboot still holds the xPU (recovering): joins instead of being deferred to a next reboot', () => {
    const r = { ...unannouncedByTheAgent(readyMs), status: 'recovering' as const, endedAt: undefined };
    const late = placed(est, bmcEvent('p', 'xpu.reboot.pending', R0 - 90_000, R0 + 6000));
    expect(onNotice(r, late)?.reboot.history.at(-1)?.phase).toBe('joined');
    expect(onNotice(r, { ...late, placed: undefined })?.reboot.history.at(-1)?.phase).toBe('deferred');
  });

  it('when the reboot has an event on that BMC clock (its down), it is placed through that event instead', () => {
    const down = bmcEvent('d', 'xpu.down', R0 - 30_000, R0 - 29_000);
    const r = { ...unannouncedByTheAgent(readyMs), downOrigin: originOf(down) };
    // Sent 10 s after the down by the BMC's clock: placed at the down's receipt + 10 s, before the ready: joins,
    // with no estimate at all.
    expect(sameOutage(r, bmcEvent('p', 'xpu.reboot.pending', R0 - 20_000, R0 + 6000))).toBe(true);
    // Sent after the ready by that clock: a next outage, whatever an estimate says.
    const after = bmcEvent('p', 'xpu.reboot.pending', R0 + 1000, R0 + 6000);
    expect(sameOutage(r, { ...after, placed: { sentBy: iso(R0 - 60_000), uncertaintyMs: 5000 } })).toBe(false);
    // Delivered more than LATE_DELIVERY_MS after that placement (a clock set back since is likelier): as before.
    expect(sameOutage(r, bmcEvent('p', 'xpu.reboot.pending', R0 - 31 * 60_000, R0 + 60_000))).toBe(false);
    expect(sameOutage(r, bmcEvent('p', 'xpu.reboot.pending', R0 - 28 * 60_000, R0 + 60_000))).toBe(true);
  });

  it('an agent-announced reboot (native notice) ended by the agent: the BMC notice is placed by the estimate alone', () => {
    const agentNotice: NativeEvent = { ...agentReady(R0 - 120_000), id: 'n', type: 'xpu.reboot.pending', dedupKey: 'native:node-a:n' };
    const r: StoredReboot = {
      ...newXpuReboot('xr-2', nodeA, 'dpu0', agentNotice, 'planned'),
      origin: originOf(agentNotice),
      readyOrigin: originOf(agentReady(R0)),
      readyAt: iso(R0),
      status: 'completed',
      endedAt: iso(R0 + 1000),
    };
    const late = bmcEvent('p', 'xpu.reboot.pending', R0 - 125_000, R0 + 6000);
    expect(sameOutage(r, placed(est, late))).toBe(true);
    expect(sameOutage(r, late)).toBe(false);
    expect(sameOutage(r, placed(est, bmcEvent('p', 'xpu.reboot.pending', R0 + 60_000, R0 + 60_100)))).toBe(false);
  });
});

// --- property ---------------------------------------------------------------------------------------------------

const SEED = Number(process.env.FC_SEED ?? 20261207);

const scenario = fc.record({
  /** Our clock minus the BMC's: anything within ±10 days. */
  offset: fc.integer({ min: -10 * 86_400_000, max: 10 * 86_400_000 }),
  /** The BMC's deliveries before the notice: when sent (ms before the agent's ready received), and how late. */
  samples: fc.array(
    fc.record({ sentBefore: fc.integer({ min: 0, max: 30 * 60_000 }), latency: fc.integer({ min: 0, max: 20 * 60_000 }) }),
    { minLength: 0, maxLength: 6 },
  ),
  /** At least one of them prompt (within 2 s), or none. */
  prompt: fc.option(fc.record({ sentBefore: fc.integer({ min: 0, max: 30 * 60_000 }), latency: fc.integer({ min: 0, max: 2000 }) })),
  /** The order the samples' writes landed in. */
  order: fc.array(fc.nat(), { minLength: 7, maxLength: 7 }),
  /** How long the agent's ready took to arrive (ms). */
  agentLatency: fc.integer({ min: 0, max: 5000 }),
  /** When the notice was sent, relative to the agent's ready received (ms; negative: before). */
  noticeSent: fc.integer({ min: -10 * 60_000, max: 10 * 60_000 }),
  /** When it was received, after the agent's ready (ms). */
  noticeReceived: fc.integer({ min: 5001, max: 20 * 60_000 }),
  /** The BMC's down applied to the reboot (sent before the ready; then the notice is placed through it). */
  down: fc.option(fc.record({ sentBefore: fc.integer({ min: 0, max: 10 * 60_000 }), latency: fc.integer({ min: 0, max: 20 * 60_000 }) })),
  /** A forward step of the BMC's clock since the samples (it only ever places later). */
  stepForward: fc.option(fc.integer({ min: 1, max: 86_400_000 })),
});

describe('property: placement through random offsets, latencies, reorderings', () => {
  it('a notice sent after the xPU was back never joins the ended reboot; one sent well before it (prompt sample, clock held) always does', () => {
    // Both sides of the property must be reached, or it proves nothing.
    const reached = { joined: 0, nextAfterReady: 0 };
    fc.assert(
      fc.property(scenario, (s) => {
        const readyMs = R0;
        const all = [...s.samples, ...(s.prompt ? [s.prompt] : [])];
        const events = all.map((x, i) =>
          bmcEvent(`s${i}`, 'xpu.ready', readyMs - x.sentBefore, Math.min(readyMs - x.sentBefore + x.latency, readyMs + 5000), s.offset),
        );
        const ordered = events.map((e, i) => ({ e, k: s.order[i] })).sort((a, b) => a.k - b.k);
        let est: ClockEstimate | undefined;
        for (const { e } of ordered) est = noteSample(est, clockSampleOf(e)!);
        const sentMs = readyMs + s.noticeSent;
        const receivedMs = Math.max(readyMs + s.noticeReceived, sentMs);
        const offset = s.offset - (s.stepForward ?? 0);
        const notice = placed(est, bmcEvent('p', 'xpu.reboot.pending', sentMs, receivedMs, offset));
        const down =
          s.down && bmcEvent('d', 'xpu.down', readyMs - s.down.sentBefore, readyMs - s.down.sentBefore + s.down.latency, s.offset);
        const r = { ...unannouncedByTheAgent(readyMs), ...(down ? { downOrigin: originOf(down) } : {}) };
        const joins = sameOutage(r, notice);
        const readySent = readyMs - s.agentLatency;
        // Safety: sent after the ready was sent (the xPU was back): a real next reboot, never joined.
        if (sentMs > readySent) {
          reached.nextAfterReady++;
          expect(joins).toBe(false);
        }
        if (joins) reached.joined++;
        // Liveness: a prompt sample, the clock held, sent 11 s or more before the ready, delivered within 25 min.
        // (Placed through the down instead, when the reboot has one: then that down must have come promptly too.)
        const placedThroughDown = !s.down || s.down.latency <= 2000;
        if (s.prompt && placedThroughDown && s.stepForward === null && s.noticeSent <= -11_000 && receivedMs - sentMs <= 25 * 60_000)
          expect(joins).toBe(true);
      }),
      { seed: SEED, numRuns: 3000, verbose: 1, endOnFailure: false },
    );
    expect(reached.joined).toBeGreaterThan(100);
    expect(reached.nextAfterReady).toBeGreaterThan(100);
  });
});
