// Where a BMC's clock sits against ours, learned from its own deliveries (docs/reboot-model.md,
// "Placing a BMC's event on our clock"). Pure: the ingest reads the estimate with the node state and
// writes a sample back with two conditional writes side by side that encode `supersedes` and `isLater`.
import { AGREEMENT_MS, CROSS_SOURCE_SLACK_MS, LATE_DELIVERY_MS } from './model.ts';
import type { NativeEvent } from './types.ts';

/** One delivery's sample of its BMC's clock. */
export interface ClockSample {
  /** Our receipt − the event's own time, in ms. */
  gapMs: number;
  /** When we received it (epoch ms, our clock). */
  at: number;
}

/**
 * What a source's deliveries say of its clock: the smallest gap (our receipt − its own time) seen
 * lately. Every gap is the clock offset plus that delivery's latency (≥ 0), so the smallest is the
 * offset plus the shortest latency: an upper bound on the offset, tight for a prompt delivery. An
 * event's own time plus it is then no earlier than when the event was really sent, by our clock —
 * while the clock held. `latest` is the last sample received: a clock set back since the smallest
 * makes it larger by the step, which the smallest alone would hide for up to an hour.
 */
export interface ClockEstimate extends ClockSample {
  latest?: ClockSample;
}

/**
 * How long a smallest gap stands: after this any sample replaces it. A clock set back since (an RTC
 * reset, NTP back after days) makes every new gap larger; the old minimum would place that source's
 * events too early, so it must give way within this, not after MAX_CLOCK_DRIFT_MS.
 */
export const CLOCK_WINDOW_MS = 60 * 60_000;

/** How fast a clock may drift against ours, per ms (1000 ppm, ten times a cheap crystal's): widens a placement with the estimate's age. */
export const DRIFT_PER_MS = 1e-3;

/** The sample one event gives: only a Redfish record stamped by its BMC (an unstamped one carries our receipt, no clock). */
export function clockSampleOf(ev: NativeEvent): ClockSample | undefined {
  if (ev.source !== 'redfish' || ev.timeIsReceipt) return undefined;
  const at = Date.parse(ev.receivedAt);
  const time = Date.parse(ev.time);
  if (!Number.isFinite(at) || !Number.isFinite(time)) return undefined;
  return { gapMs: at - time, at };
}

/** Does `sample` replace the stored smallest gap? A smaller (or equal, fresher) gap, or one past its window. */
export function supersedes(old: ClockSample | undefined, sample: ClockSample): boolean {
  return !old || sample.gapMs <= old.gapMs || old.at < sample.at - CLOCK_WINDOW_MS;
}

/** Is `sample` the latest received (the store's second write, beside the conditional one for the smallest)? */
export function isLater(old: ClockSample | undefined, sample: ClockSample): boolean {
  return !old || old.at <= sample.at;
}

/** The estimate after a sample (the rules the store's two conditional writes apply, in any order). */
export function noteSample(old: ClockEstimate | undefined, sample: ClockSample): ClockEstimate {
  const min: ClockSample = supersedes(old, sample) ? sample : { gapMs: old!.gapMs, at: old!.at };
  const latest = isLater(old?.latest, sample) ? sample : old!.latest!;
  return { ...min, latest: { gapMs: latest.gapMs, at: latest.at } };
}

/** The later of the estimate's two samples: the smallest may be the latest itself (its write landed, the latest's was lost). */
export function latestOf(est: ClockEstimate | undefined): ClockSample | undefined {
  if (!est) return undefined;
  const latest = est.latest && est.latest.at >= est.at ? est.latest : est;
  return { gapMs: latest.gapMs, at: latest.at };
}

/** An event placed on our clock: it was sent no later than `sentBy`, give or take `uncertaintyMs`. */
export interface Placement {
  sentBy: string;
  uncertaintyMs: number;
}

/**
 * Places a stamped BMC event on our clock through its BMC's estimate: `time + gapMs` (no earlier than
 * its real send time while the clock held), widened by the drift the estimate's age allows and by how
 * far the latest sample lies from the smallest. None when the estimate is missing or older than its
 * window; when its latest sample is missing, older than the window, or more than AGREEMENT_MS off the
 * smallest (the clock may have been set back since: placed by the smallest, a real next notice would
 * look sent earlier than it was); or when the event does not fit it: "sent" after its receipt beyond
 * the uncertainty (the clock moved forward since) or delivered more than LATE_DELIVERY_MS after.
 */
export function placeOnOurClock(est: ClockEstimate | undefined, ev: NativeEvent): Placement | undefined {
  const sample = clockSampleOf(ev);
  if (!est || !sample) return undefined;
  const age = Math.abs(sample.at - est.at);
  if (age > CLOCK_WINDOW_MS) return undefined;
  const latest = latestOf(est)!;
  const disagreement = latest.gapMs - est.gapMs;
  if (!est.latest || sample.at - latest.at > CLOCK_WINDOW_MS || Math.abs(disagreement) > AGREEMENT_MS) return undefined;
  // At least the slack two sources may deliver one happening apart with (the ready's own latency hides in it),
  // plus a step back of up to the disagreement the latest sample would not show.
  const uncertaintyMs = CROSS_SOURCE_SLACK_MS + Math.ceil(age * DRIFT_PER_MS) + Math.abs(disagreement);
  const sentBy = Date.parse(ev.time) + est.gapMs;
  const latency = sample.at - sentBy;
  // Delivered later than a sender's retries bring an event: a clock set back is likelier.
  if (latency < -uncertaintyMs || latency > LATE_DELIVERY_MS) return undefined;
  return { sentBy: new Date(sentBy).toISOString(), uncertaintyMs };
}
