// A BMC's clock learned from its own deliveries (lambdas/core/bmc-clock.ts), and the one use the model makes of it
// (model.ts placedBeforeReady): a BMC notice delivered late after an agent's ready ended its outage joins that
// outage instead of starting a second reboot; a notice sent after the ready still starts one.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CLOCK_WINDOW_MS,
  type ClockEstimate,
  type ClockSample,
  clockSampleOf,
  isLater,
  latestOf,
  noteSample,
  placeOnOurClock,
  supersedes,
} from '../../lambdas/core/bmc-clock.ts';
import { AGREEMENT_MS, KEEP_SIGNAL_MS, onNotice, originOf, sameOutage, unannouncedReboot } from '../../lambdas/core/model.ts';
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

/** The estimate one sample leaves: it is both the smallest and the latest. */
const estOf = (sample: ClockSample): ClockEstimate => noteSample(undefined, sample);

/** As the ingest hands a BMC's event to the model: placed by its BMC's estimate, that BMC's latest sample beside it. */
const placed = (est: ClockEstimate | undefined, ev: NativeEvent): NativeEvent => {
  const p = placeOnOurClock(est, ev);
  const clockLatest = latestOf(est);
  return { ...ev, ...(p ? { placed: p } : {}), ...(clockLatest ? { clockLatest } : {}) };
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
    expect(noteSample(est, { gapMs: 5000, at: R0 + CLOCK_WINDOW_MS + 1 })).toMatchObject({ gapMs: 5000, at: R0 + CLOCK_WINDOW_MS + 1 });
  });

  it('keeps the latest sample beside it, whatever its gap, in any order of the writes', () => {
    const a = { gapMs: 1000, at: R0 };
    const b = { gapMs: 9000, at: R0 + 60_000 };
    expect(isLater(a, b)).toBe(true);
    expect(isLater(b, a)).toBe(false);
    expect(noteSample(noteSample(undefined, a), b)).toEqual({ ...a, latest: b });
    expect(noteSample(noteSample(undefined, b), a)).toEqual({ ...a, latest: b });
  });

  it('places an event at its own time plus the gap, widened by the age; not at all when stale or not fitting', () => {
    const est = estOf(clockSampleOf(bmcEvent('s', 'xpu.ready', R0, R0 + 200))!);
    const late = bmcEvent('p', 'xpu.reboot.pending', R0 - 90_000, R0 + 6000);
    expect(placeOnOurClock(est, late)).toEqual({ sentBy: iso(R0 - 90_000 + 200), uncertaintyMs: 5006 });
    // Too old an estimate; delivered more than 30 min after it was sent; "sent" well after it was received.
    const older = est.at - CLOCK_WINDOW_MS - 7000;
    expect(placeOnOurClock({ ...est, at: older, latest: { ...est.latest!, at: older } }, late)).toBeUndefined();
    expect(placeOnOurClock(est, bmcEvent('p', 'xpu.reboot.pending', R0 - 31 * 60_000, R0 + 6000))).toBeUndefined();
    const shifted = (by: number) => estOf({ gapMs: est.gapMs + by, at: est.at });
    expect(placeOnOurClock(shifted(60_000), late)).toBeDefined();
    expect(placeOnOurClock(shifted(110_000), late)).toBeUndefined();
    expect(placeOnOurClock(undefined, late)).toBeUndefined();
  });

  it('not at all when the latest sample is missing or off the smallest by more than AGREEMENT_MS (a clock set back since?)', () => {
    const min = clockSampleOf(bmcEvent('s', 'xpu.ready', R0, R0 + 200))!;
    const late = bmcEvent('p', 'xpu.reboot.pending', R0 - 90_000, R0 + 6000);
    expect(placeOnOurClock(min, late)).toBeUndefined();
    // The clock set back 10 min after the smallest: the latest shows it.
    expect(placeOnOurClock({ ...min, latest: { gapMs: min.gapMs + 600_000, at: R0 + 3000 } }, late)).toBeUndefined();
    expect(placeOnOurClock({ ...min, latest: { gapMs: min.gapMs + AGREEMENT_MS + 1, at: R0 + 3000 } }, late)).toBeUndefined();
    // Within it: placed, the difference added to the uncertainty.
    expect(placeOnOurClock({ ...min, latest: { gapMs: min.gapMs + AGREEMENT_MS, at: R0 + 3000 } }, late)).toEqual({
      sentBy: iso(R0 - 90_000 + 200),
      uncertaintyMs: 5006 + AGREEMENT_MS,
    });
  });
});

describe("a BMC's notice delivered late, after the agent's ready ended the outage", () => {
  const readyMs = R0;
  const est = estOf(clockSampleOf(bmcEvent('s', 'xpu.ready', R0 + 100, R0 + 400))!);

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
    const recent = estOf(clockSampleOf(bmcEvent('s', 'xpu.ready', R0 + KEEP_SIGNAL_MS, R0 + KEEP_SIGNAL_MS + 100))!);
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
    // The down is the BMC's latest sample (it was ingested): no step since it.
    const since = estOf(clockSampleOf(down)!);
    // Sent 10 s after the down by the BMC's clock: placed at the down's receipt + 10 s, before the ready: joins.
    expect(sameOutage(r, placed(since, bmcEvent('p', 'xpu.reboot.pending', R0 - 20_000, R0 + 6000)))).toBe(true);
    // Sent after the ready by that clock: a next outage, whatever an estimate says.
    const after = bmcEvent('p', 'xpu.reboot.pending', R0 + 1000, R0 + 6000);
    expect(sameOutage(r, { ...placed(since, after), placed: { sentBy: iso(R0 - 60_000), uncertaintyMs: 5000 } })).toBe(false);
    // Delivered more than LATE_DELIVERY_MS after that placement (a clock set back since is likelier): as before.
    expect(sameOutage(r, placed(since, bmcEvent('p', 'xpu.reboot.pending', R0 - 31 * 60_000, R0 + 60_000)))).toBe(false);
    expect(sameOutage(r, placed(since, bmcEvent('p', 'xpu.reboot.pending', R0 - 28 * 60_000, R0 + 60_000)))).toBe(true);
  });

  it('placed through its down only when the BMC latest sample since shows no clock set back beyond AGREEMENT_MS', () => {
    const down = bmcEvent('d', 'xpu.down', R0 - 30_000, R0 - 29_000);
    const r = { ...unannouncedByTheAgent(readyMs), downOrigin: originOf(down) };
    const notice = bmcEvent('p', 'xpu.reboot.pending', R0 - 20_000, R0 + 6000);
    // No latest sample, or one from before the down: nothing shows the clock held since.
    expect(sameOutage(r, notice)).toBe(false);
    expect(sameOutage(r, placed(estOf(clockSampleOf(bmcEvent('s', 'xpu.ready', R0 - 40_000, R0 - 39_000))!), notice))).toBe(false);
    // A sample after the down, the clock set back 10 min before it: a real next notice would look 10 min earlier.
    const stepped = noteSample(
      estOf(clockSampleOf(down)!),
      clockSampleOf(bmcEvent('s', 'xpu.ready', R0 - 10_000, R0 - 9000, BEHIND + 600_000))!,
    );
    expect(sameOutage(r, placed(stepped, notice))).toBe(false);
    // A later sample within AGREEMENT_MS: placed, the excess widening the slack.
    const slow = noteSample(estOf(clockSampleOf(down)!), clockSampleOf(bmcEvent('s', 'xpu.ready', R0 - 10_000, R0 - 9000 + AGREEMENT_MS))!);
    expect(sameOutage(r, placed(slow, notice))).toBe(true);
    // Placed at its send + the down's 1 s latency, then 5 s slack + the excess to spare before the ready.
    const edge = R0 - 1000 - 5000 - AGREEMENT_MS;
    expect(sameOutage(r, placed(slow, bmcEvent('p', 'xpu.reboot.pending', edge - 1, R0 + 6000)))).toBe(true);
    expect(sameOutage(r, placed(slow, bmcEvent('p', 'xpu.reboot.pending', edge, R0 + 6000)))).toBe(false);
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

const MIN = 60_000;

const scenario = fc.record({
  /** Our clock minus the BMC's: anything within ±10 days. */
  offset: fc.integer({ min: -10 * 86_400_000, max: 10 * 86_400_000 }),
  /** The BMC's other deliveries: when sent (ms, relative to the agent's ready received), and how late. */
  samples: fc.array(fc.record({ sent: fc.integer({ min: -30 * MIN, max: 20 * MIN }), latency: fc.integer({ min: 0, max: 20 * MIN }) }), {
    minLength: 0,
    maxLength: 6,
  }),
  /** At least one of them prompt (within 2 s), sent before the ready, or none. */
  prompt: fc.option(fc.record({ sent: fc.integer({ min: -30 * MIN, max: 0 }), latency: fc.integer({ min: 0, max: 2000 }) })),
  /** The order the samples' writes landed in. */
  order: fc.array(fc.nat(), { minLength: 7, maxLength: 7 }),
  /** How long the agent's ready took to arrive (ms). */
  agentLatency: fc.integer({ min: 0, max: 5000 }),
  /** When the notice was sent, relative to the agent's ready received (ms; negative: before). */
  noticeSent: fc.integer({ min: -10 * MIN, max: 10 * MIN }),
  /** When it was received, after the agent's ready (ms). */
  noticeReceived: fc.integer({ min: 5001, max: 20 * MIN }),
  /** The BMC's down applied to the reboot (sent before the ready; then the notice is placed through it). */
  down: fc.option(fc.record({ sentBefore: fc.integer({ min: 0, max: 10 * MIN }), latency: fc.integer({ min: 0, max: 20 * MIN }) })),
  /** A forward step of the BMC's clock, just before the notice (it only ever places later). */
  stepForward: fc.option(fc.integer({ min: 1, max: 86_400_000 })),
  /** The BMC's clock set back by 5 s … 30 min at some moment (ms, relative to the agent's ready received). */
  stepBack: fc.option(fc.record({ at: fc.integer({ min: -30 * MIN, max: 20 * MIN }), by: fc.integer({ min: 5000, max: 30 * MIN }) })),
});

describe('property: placement through random offsets, latencies, reorderings, clock steps', () => {
  it('a notice sent after the xPU was back never joins the ended reboot; one sent well before it (prompt samples, clock held) always does', () => {
    // Every side of the property must be reached, or it proves nothing.
    const reached = { joined: 0, nextAfterReady: 0, stepSeen: 0, stepUnseen: 0 };
    fc.assert(
      fc.property(scenario, (s) => {
        const readyMs = R0;
        const sentMs = readyMs + s.noticeSent;
        const receivedMs = Math.max(readyMs + s.noticeReceived, sentMs);
        const step = s.stepBack && { at: readyMs + s.stepBack.at, by: s.stepBack.by };
        /** The BMC's clock when it sends at `t` (our clock): set back by the step from its moment on. */
        const offsetAt = (t: number) => s.offset + (step && t >= step.at ? step.by : 0);
        const all = [...s.samples, ...(s.prompt ? [s.prompt] : [])].map((x, i) => ({ ...x, k: s.order[i] }));
        // The down applied to the reboot was ingested before the notice (and is a sample too).
        const downSent = s.down && readyMs - s.down.sentBefore;
        const downLatency = s.down && downSent !== null && Math.min(s.down.latency, receivedMs - 1 - downSent);
        const downSample = s.down && { sent: -s.down.sentBefore, latency: downLatency as number, k: s.order[6] };
        // Only the samples ingested before the notice are in the estimate.
        const seen = [...all, ...(downSample ? [downSample] : [])]
          .map((x) => ({ ...x, sentMs: readyMs + x.sent, receivedMs: readyMs + x.sent + x.latency }))
          .filter((x) => x.receivedMs < receivedMs);
        let est: ClockEstimate | undefined;
        for (const x of [...seen].sort((a, b) => a.k - b.k))
          est = noteSample(est, clockSampleOf(bmcEvent('s', 'xpu.ready', x.sentMs, x.receivedMs, offsetAt(x.sentMs)))!);
        const latest = seen.reduce<(typeof seen)[number] | undefined>((l, x) => (!l || x.receivedMs >= l.receivedMs ? x : l), undefined);
        const offset = offsetAt(sentMs) - (s.stepForward ?? 0);
        const raw = bmcEvent('p', 'xpu.reboot.pending', sentMs, receivedMs, offset);
        const notice = placed(est, raw);
        const down = downSent !== null && bmcEvent('d', 'xpu.down', downSent, downSent + (downLatency as number), offsetAt(downSent));
        const r = { ...unannouncedByTheAgent(readyMs), ...(down ? { downOrigin: originOf(down) } : {}) };
        const joins = sameOutage(r, notice);
        const readySent = readyMs - s.agentLatency;
        // A step back before the notice was sent is seen when the latest sample before it was sent after the step.
        const stepBefore = !!step && step.at <= sentMs;
        const stepSeen = stepBefore && !!latest && latest.sentMs >= step.at;
        if (stepBefore) stepSeen ? reached.stepSeen++ : reached.stepUnseen++;
        // Unseen, the notice is that clock's first word since the step: no sample can tell it from a late one.
        if (stepBefore && !stepSeen) return;
        // The placement is an upper bound on the real send time, within its uncertainty.
        if (notice.placed) expect(Date.parse(notice.placed.sentBy) + notice.placed.uncertaintyMs).toBeGreaterThanOrEqual(sentMs);
        // Safety: sent after the ready was sent (the xPU was back): a real next reboot, never joined.
        if (sentMs > readySent) {
          reached.nextAfterReady++;
          expect(joins).toBe(false);
        }
        if (joins) reached.joined++;
        // Liveness: a prompt sample and a latest one that agrees, the clock held, sent 13 s or more before the ready,
        // delivered within 25 min. (Placed through the down instead, when the reboot has one: then that down must
        // have come promptly too.)
        const placedThroughDown = downLatency === null || (downLatency as number) <= 2000;
        const promptSeen = s.prompt && readyMs + s.prompt.sent + s.prompt.latency < receivedMs;
        const latestAgrees = !!latest && latest.latency <= AGREEMENT_MS;
        const clockHeld = s.stepForward === null && (!step || step.at > receivedMs);
        if (promptSeen && latestAgrees && placedThroughDown && clockHeld && s.noticeSent <= -13_000 && receivedMs - sentMs <= 25 * MIN)
          expect(joins).toBe(true);
      }),
      { seed: SEED, numRuns: 3000, verbose: 1, endOnFailure: false },
    );
    expect(reached.joined).toBeGreaterThan(100);
    expect(reached.nextAfterReady).toBeGreaterThan(100);
    expect(reached.stepSeen).toBeGreaterThan(100);
  });
});
