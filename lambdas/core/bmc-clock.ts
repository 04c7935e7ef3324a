// Where a BMC's clock sits against ours, learned from its own deliveries (docs/reboot-model.md,
// "Placing a BMC's event on our clock"). Pure: the ingest reads the estimate with the node state and
// writes a sample back with one conditional write that encodes `supersedes`.
import { CROSS_SOURCE_SLACK_MS, LATE_DELIVERY_MS } from './model.ts';
import type { NativeEvent } from './types.ts';

/**
 * What a source's deliveries say of its clock: the smallest gap (our receipt − its own time) seen
 * lately. Every gap is the clock offset plus that delivery's latency (≥ 0), so the smallest is the
 * offset plus the shortest latency: an upper bound on the offset, tight for a prompt delivery. An
 * event's own time plus it is then no earlier than when the event was really sent, by our clock.
 */
export interface ClockEstimate {
  /** receipt − own time of the smallest recent sample, in ms. */
  gapMs: number;
  /** When we received that sample (epoch ms, our clock). */
  at: number;
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
export function clockSampleOf(ev: NativeEvent): ClockEstimate | undefined {
  if (ev.source !== 'redfish' || ev.timeIsReceipt) return undefined;
  const at = Date.parse(ev.receivedAt);
  const time = Date.parse(ev.time);
  if (!Number.isFinite(at) || !Number.isFinite(time)) return undefined;
  return { gapMs: at - time, at };
}

/** Does `sample` replace the stored estimate? A smaller (or equal, fresher) gap, or an estimate past its window. */
export function supersedes(old: ClockEstimate | undefined, sample: ClockEstimate): boolean {
  return !old || sample.gapMs <= old.gapMs || old.at < sample.at - CLOCK_WINDOW_MS;
}

/** The estimate after a sample (the rule the store's conditional write applies). */
export function noteSample(old: ClockEstimate | undefined, sample: ClockEstimate): ClockEstimate {
  return supersedes(old, sample) ? sample : old!;
}

/** An event placed on our clock: it was sent no later than `sentBy`, give or take `uncertaintyMs`. */
export interface Placement {
  sentBy: string;
  uncertaintyMs: number;
}

/**
 * Places a stamped BMC event on our clock through its BMC's estimate: `time + gapMs` (no earlier than
 * its real send time while the clock held), widened by the drift the estimate's age allows. None when
 * the estimate is missing or older than its window, or when the event does not fit it: "sent" after
 * its receipt beyond the uncertainty (the clock moved forward since) or delivered more than
 * LATE_DELIVERY_MS after.
 */
export function placeOnOurClock(est: ClockEstimate | undefined, ev: NativeEvent): Placement | undefined {
  const sample = clockSampleOf(ev);
  if (!est || !sample) return undefined;
  const age = Math.abs(sample.at - est.at);
  if (age > CLOCK_WINDOW_MS) return undefined;
  // At least the slack two sources may deliver one happening apart with (the ready's own latency hides in it).
  const uncertaintyMs = CROSS_SOURCE_SLACK_MS + Math.ceil(age * DRIFT_PER_MS);
  const sentBy = Date.parse(ev.time) + est.gapMs;
  const latency = sample.at - sentBy;
  // Delivered later than a sender's retries bring an event: a clock set back is likelier.
  if (latency < -uncertaintyMs || latency > LATE_DELIVERY_MS) return undefined;
  return { sentBy: new Date(sentBy).toISOString(), uncertaintyMs };
}
