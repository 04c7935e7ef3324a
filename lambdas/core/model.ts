// The reboot model: every way a reboot changes is one named, pure transition here.
//
// A transition takes the reboot as stored (never mutated), what happened, the coordinator's clock
// and returns the next reboot plus the effects the handler must carry out after writing it — or
// null when the input changes nothing (a duplicate, a replay). Handlers load, apply, write
// conditionally (lost the race: reload and apply again) and perform the effects; nothing else
// changes a reboot. The model's tests (test/unit/reboot-model*.test.ts) drive these through
// random interleavings, so every rule about disorder lives here, in one file.
import { onQueueLeft } from './budgets.ts';
import { COORDINATOR } from './principal.ts';
import {
  advanceStatus,
  commandId,
  decideExtension,
  isNoticePhase,
  undoneCommands,
  isFinal,
  noticeTime,
  hostRebootMode,
  tenantOf,
  planPostpone,
  summarize,
  type PlannedCommand,
  type StoredReboot,
  type WaitFor,
} from './reboot.ts';
import { agentIdOf } from './inventory.ts';
import type {
  Actor,
  CommandResultStatus,
  CommandStatus,
  CommandSummary,
  CommandType,
  HistoryEntry,
  NativeEvent,
  NodeDef,
  RebootStatus,
} from './types.ts';

/** What a handler must do after it wrote the reboot a transition returned. All are safe to repeat. */
export type Effect =
  /** Let go of the node claim this reboot holds. */
  | { kind: 'release' }
  /** Run the recovery of an xPU that came back after its reboot had failed (restore-pcie, resume-workloads). */
  | { kind: 'start-late-recovery' }
  /** Write these commands (idempotent: ids are fixed by the plan) and wake their agents. */
  | { kind: 'send'; step: string; commands: PlannedCommand[] }
  /** The node's xPUs are now provisioned for this tenant. */
  | { kind: 'provision'; tenant: string }
  | { kind: 'metric'; name: string; dimensions?: Record<string, string> }
  /** docs/fleet-safety.md: stop handing out these open commands (the workflow no longer waits for them). */
  | { kind: 'close-commands'; ids: string[] }
  /** docs/fleet-safety.md: take a queued reboot out of the queue; `takeBudget`: it counts in its budgets now, beyond them if need be. */
  | { kind: 'leave-queue'; takeBudget: boolean }
  /** docs/fleet-safety.md: give the node's budget slots back, and let queued reboots of those budgets go on. */
  | { kind: 'release-budgets' }
  /**
   * Signals of the xPU's next outage were kept on this reboot (`deferred`): mark its claim so the
   * `release` that lets go of the xPU sends them to the ingest again (sent now if it let go already).
   */
  | { kind: 'defer' };

export interface Step {
  reboot: StoredReboot;
  effects: Effect[];
}

// --- who and when -------------------------------------------------------------------------------

/** Who a native event speaks for: the token that posted it, else the BMC for Redfish records. */
export function actorOfEvent(ev: NativeEvent): Actor {
  if (ev.by) return ev.by;
  return ev.source === 'redfish' ? `bmc:${ev.node}` : `agent:${ev.xpu && ev.type.startsWith('xpu.') ? `${ev.node}.${ev.xpu}` : ev.node}`;
}

/**
 * The clock an event's own `time` was read from. Times of one source order that source's events
 * among themselves; times of two sources are never compared (a BMC may be days off).
 */
export function sourceOf(ev: NativeEvent): string {
  // A time that is our receipt is on our clock: ordered with the source's own times it would be hours off
  // whenever that clock is (a BMC 2 h behind would make its stamped ready "predate" its unstamped notice).
  return `${ev.source === 'redfish' ? `bmc:${ev.node}` : actorOfEvent(ev)}@${ev.node}${ev.timeIsReceipt ? '#receipt' : ''}`;
}

/**
 * When a signal happened, on the coordinator's clock: its receipt (contract 7.1: a source's own time
 * only orders that source's events, it never dates anything). Deadlines, timeouts and the report are
 * dated with this.
 */
export function coordinatorTime(ev: NativeEvent): string {
  return noticeTime(ev).toISOString();
}

/** The event that started a reboot, as far as ordering needs it. */
export interface Origin {
  source: string;
  /** The source's own time of that event (its clock, maybe days off). */
  time: string;
  /** When the coordinator received it. */
  receivedAt: string;
}

export function originOf(ev: NativeEvent): Origin {
  return { source: sourceOf(ev), time: ev.time, receivedAt: ev.receivedAt };
}

/**
 * How far a source's clock may drift against our receipts between two of its events before its
 * times stop ordering them: its deliveries take seconds to minutes (a BMC retries for ~90 s; an
 * event held through an outage of its network, hours at worst), so a gap between its clock and our
 * receipts that changed by more than this is a clock that was set (an RTC reset after a BMC
 * reboot, NTP coming back after days), not a slow delivery. Receipts are the API's, kept through
 * the queue and the DLQ, so a late or redriven queue delivery does not widen the gap.
 */
export const MAX_CLOCK_DRIFT_MS = 6 * 60 * 60 * 1000;

/**
 * May `ev` and the signal `o` be ordered by their one source's clock? Same source, and the clock
 * did not jump between them. A BMC whose clock is days off all along still orders its own events
 * (contract 7.1); one whose clock was set back after a reboot no longer puts its next notice
 * "before" the last reboot's ready (the notice would join that ended reboot and start nothing).
 */
function sameClock(o: Origin, ev: NativeEvent): boolean {
  if (sourceOf(ev) !== o.source) return false;
  const clockGap = Date.parse(ev.time) - Date.parse(o.time);
  const receiptGap = Date.parse(ev.receivedAt) - Date.parse(o.receivedAt);
  return Math.abs(clockGap - receiptGap) <= MAX_CLOCK_DRIFT_MS;
}

/** Two sources may deliver a moment apart for one happening; closer than this, receipt order says nothing. */
export const CROSS_SOURCE_SLACK_MS = 5_000;

/**
 * How far a BMC's latest clock sample (core/bmc-clock.ts) may exceed the gap a placement goes by
 * before that placement is refused: more is a slow delivery or the clock set back by about that much
 * since, and the two cannot be told apart. Within it, the excess widens the placement's uncertainty
 * (a step back of that much is then covered).
 */
export const AGREEMENT_MS = 2000;

/**
 * Does an event come from before the reboot began? The same source's clock decides for its own
 * events; another source's event is judged by when the coordinator received each of them.
 */
export function predates(r: StoredReboot, ev: NativeEvent): boolean {
  const o = r.origin;
  if (!o) return false;
  // An unannounced reboot is first heard of in the middle of its outage: its down, its notice or
  // its crash may well come from before that first signal. Only an older ready is another outage's.
  if (r.mode === 'unannounced' && ev.type !== 'xpu.ready') return false;
  if (sameClock(o, ev)) return Date.parse(ev.time) < Date.parse(o.time);
  return Date.parse(ev.receivedAt) < Date.parse(o.receivedAt) - CROSS_SOURCE_SLACK_MS;
}

function entry(at: string, phase: string, detail: string, by: Actor): HistoryEntry {
  return { at, phase, detail, by };
}

function evRef(ev: NativeEvent): string {
  return `(${ev.source} event ${ev.id})`;
}

/** Has this event already been applied to the reboot? Every applied event leaves its reference in a history line. */
function applied(r: StoredReboot, ev: NativeEvent): boolean {
  const ref = evRef(ev);
  return r.history.some((h) => h.detail.endsWith(ref));
}

function next(r: StoredReboot): StoredReboot {
  return structuredClone(r);
}

/** The same signal again under another event (a BMC and an agent both report it; a second outage inside one reboot): noted, changes nothing. */
function noteRepeat(r: StoredReboot, ev: NativeEvent): Step | null {
  if (applied(r, ev)) return null;
  const s = next(r);
  s.history.push(entry(ev.receivedAt, 'repeat', `${ev.type} again ${evRef(ev)}`, actorOfEvent(ev)));
  return { reboot: s, effects: [] };
}

function noteStale(r: StoredReboot, ev: NativeEvent): Step | null {
  if (applied(r, ev)) return null;
  const s = next(r);
  s.history.push(
    entry(ev.receivedAt, 'stale-event', `${ev.type} from ${ev.time} predates this reboot: not applied ${evRef(ev)}`, actorOfEvent(ev)),
  );
  return { reboot: s, effects: [] };
}

// --- signals to an xPU reboot ---------------------------------------------------------------------

export function onXpuDown(r: StoredReboot, ev: NativeEvent): Step | null {
  if (predates(r, ev)) return noteStale(r, ev);
  if (applied(r, ev)) return replayedDeferral(r, ev);
  if (ofNextOutage(r, ev) || cancelledBefore(r)) return deferToNextOutage(r, ev);
  if (r.downAt) return noteRepeat(r, ev);
  const s = next(r);
  s.downAt = coordinatorTime(ev);
  s.downOrigin = originOf(ev);
  s.history.push(entry(ev.receivedAt, 'xpu-down', `xPU ${ev.xpu} went down ${evRef(ev)}`, actorOfEvent(ev)));
  return { reboot: s, effects: [] };
}

/**
 * A down or ready that reaches a reboot cancelled before it was applied (the cancel was written first;
 * the reboot may still hold the xPU's claim for a moment): the xPU went down or came back anyway, an
 * outage the cancelled reboot does not own. Kept for the xPU's next reboot like a signal of the next
 * outage, so it is recorded as an unannounced reboot from its first signal on, counted in its
 * budgets while the xPU is away, instead of landing on the cancelled one. Received after the cancel
 * or before it (still in the queue when the cancel was answered; docs/fleet-safety.md "A down
 * received before the cancel"): a cancel is refused once a down is applied, so a cancelled reboot
 * never owns one.
 */
function cancelledBefore(r: StoredReboot): boolean {
  return r.status === 'cancelled' && !!r.endedAt;
}

/** Failure reasons after which the xPU may still come back (late recovery). */
const WANT_OF_READY = 'xpu-never-returned';

export function onXpuReady(r: StoredReboot, ev: NativeEvent): Step | null {
  if (predates(r, ev)) return noteStale(r, ev);
  if (applied(r, ev)) return replayedDeferral(r, ev) ?? (r.lateRecovery ? { reboot: r, effects: [{ kind: 'start-late-recovery' }] } : null);
  if (ofNextOutage(r, ev) || cancelledBefore(r)) return deferToNextOutage(r, ev);
  if (r.readyAt) return noteRepeat(r, ev);
  const s = next(r);
  s.readyAt = coordinatorTime(ev);
  s.readyOrigin = originOf(ev);
  const by = actorOfEvent(ev);
  // Notices that joined before this ready but were sent after it (it was applied late): they
  // announce the next outage, not this one.
  // (Sent at the very instant of the ready, the order they were applied in stands: joined.)
  const later = (r.outageNotices ?? []).filter((n) => announcesNext(r, s.readyOrigin!, n) && !sentWith(s.readyOrigin!, n));
  delete s.outageNotices;
  const moved = new Set(later.map((n) => `${sourceOf(n)}|${n.time}|${n.receivedAt}`));
  if (moved.size && s.joinedOrigins) s.joinedOrigins = s.joinedOrigins.filter((o) => !moved.has(`${o.source}|${o.time}|${o.receivedAt}`));
  if (later.length) {
    const deferred = deferToNextOutage(s, later);
    return finishReady(r, deferred.reboot, ev, by, deferred.effects);
  }
  return finishReady(r, s, ev, by, []);
}

/** The rest of onXpuReady, on `s` (readyAt set): a late recovery, or the end of the outage. */
function finishReady(r: StoredReboot, s: StoredReboot, ev: NativeEvent, by: Actor, effects: Effect[]): Step {
  if (r.status === 'failed' && r.failure === WANT_OF_READY) {
    // The reboot failed waiting for this: the host is still drained with PCIe protected. Recover it.
    s.lateRecovery = true;
    s.history.push(
      entry(
        ev.receivedAt,
        'recovered-late',
        `xPU ${ev.xpu} is ready after all, past the recovery bound: restoring the host ${evRef(ev)}`,
        by,
      ),
    );
    return { reboot: s, effects: [...effects, { kind: 'start-late-recovery' }] };
  }
  // The contract: ready ends the outage whenever it arrives; a missing down is recorded, not awaited.
  if (!r.downAt) s.history.push(entry(ev.receivedAt, 'note', 'xpu.down was never received', COORDINATOR));
  s.history.push(entry(ev.receivedAt, 'xpu-ready', `xPU ${ev.xpu} is ready ${evRef(ev)}`, by));
  return { reboot: s, effects };
}

/** A crash while the reboot runs (or one that arrives after an unannounced reboot of the same outage). */
export function onXpuCrashed(r: StoredReboot, ev: NativeEvent): Step | null {
  if (predates(r, ev)) return noteStale(r, ev);
  if (applied(r, ev)) return replayedDeferral(r, ev);
  if (ofNextOutage(r, ev)) return deferToNextOutage(r, ev);
  if (r.crashedAt) {
    const repeat = noteRepeat(r, ev);
    if (repeat && r.kind === 'xpu') repeat.reboot.joinedOrigins = withClockOf(r, ev);
    return repeat;
  }
  const s = next(r);
  if (r.kind === 'xpu') s.joinedOrigins = withClockOf(r, ev);
  s.crashedAt = coordinatorTime(ev);
  const why = typeof ev.data?.reason === 'string' ? `: ${ev.data.reason}` : '';
  s.history.push(entry(ev.receivedAt, 'crashed', `xPU crashed during the reboot${why} ${evRef(ev)}`, actorOfEvent(ev)));
  return { reboot: s, effects: [] };
}

/** Another notice for an xPU whose reboot runs (or an unannounced one of the same outage): it joins. */
export function onNotice(r: StoredReboot, ev: NativeEvent): Step | null {
  if (applied(r, ev)) return replayedDeferral(r, ev);
  if (ofNextOutage(r, ev)) return deferToNextOutage(r, ev);
  const s = next(r);
  // Joined before the outage's ready: if that ready turns out to have been sent first (a delivery
  // retried, applied late), this notice announces the next outage (onXpuReady moves it to `deferred`).
  if (r.kind === 'xpu' && !r.readyAt && (r.outageNotices?.length ?? 0) < MAX_KEPT_FOR_NEXT)
    s.outageNotices = [...(r.outageNotices ?? []), ev];
  if (r.kind === 'xpu') s.joinedOrigins = withClockOf(r, ev);
  const late = r.mode === 'unannounced' ? ' (it arrived after the outage it announces)' : '';
  s.history.push(
    entry(ev.receivedAt, 'joined', `another reboot notice for ${ev.xpu} joined this reboot${late} ${evRef(ev)}`, actorOfEvent(ev)),
  );
  return { reboot: s, effects: [] };
}

/**
 * The reboot's joined origins with `ev`'s added when its source has no reference yet (its first signal
 * on this reboot places its clock; later ones would only move the reference).
 */
function withClockOf(r: StoredReboot, ev: NativeEvent): Origin[] | undefined {
  const refs = r.joinedOrigins ?? [];
  const source = sourceOf(ev);
  if ([r.origin, r.downOrigin, ...refs].some((o) => o?.source === source)) return r.joinedOrigins;
  return [...refs, originOf(ev)];
}

/** The events of the reboot whose source's clock places that source's other events on ours. */
function clockRefs(r: StoredReboot): Array<Origin | undefined> {
  return [r.origin, r.downOrigin, ...(r.joinedOrigins ?? [])];
}

/** Was `ev` sent before the ready that ended an outage (by that ready's source's clock, else received before it)? */
function beforeReady(ready: Origin, ev: NativeEvent): boolean {
  return sameClock(ready, ev) ? Date.parse(ev.time) < Date.parse(ready.time) : Date.parse(ev.receivedAt) < Date.parse(ready.receivedAt);
}

/** Was `ev` sent no later than the signal `o` (by its source's clock; from another source, received at most CROSS_SOURCE_SLACK_MS after it)? */
function notAfterOrigin(o: Origin, ev: NativeEvent): boolean {
  return sameClock(o, ev)
    ? Date.parse(ev.time) <= Date.parse(o.time)
    : Date.parse(ev.receivedAt) <= Date.parse(o.receivedAt) + CROSS_SOURCE_SLACK_MS;
}

/** Was `ev` sent at the very instant of `o` (by their one source's clock, else received then)? */
function sentWith(o: Origin, ev: NativeEvent): boolean {
  return sameClock(o, ev) ? Date.parse(ev.time) === Date.parse(o.time) : Date.parse(ev.receivedAt) === Date.parse(o.receivedAt);
}

/** How many signals of the next outage one reboot keeps (a storm beyond it is noted, not kept). */
const MAX_KEPT_FOR_NEXT = 16;

/**
 * Is a notice, crash or down that reached this xPU reboot one of the xPU's *next* outage? The xPU
 * is back (its ready came before this signal), but the reboot still holds the xPU's claim until it
 * registers its recovery, so the ingest hands it the signal. Joined, a second reboot would go
 * unannounced. The rules are sameOutage's: a notice or crash is the next outage's unless sent
 * before the ready; a down only when its source's clock puts it after the ready (a down received
 * late is the usual reordering of this outage). A ready sent after a deferred down or crash ends
 * that next outage, so it goes too.
 */
function ofNextOutage(r: StoredReboot, ev: NativeEvent): boolean {
  const ready = r.readyOrigin;
  if (r.kind !== 'xpu' || !ready) return false;
  switch (ev.type) {
    case 'xpu.reboot.pending':
    case 'xpu.crashed':
      return announcesNext(r, ready, ev);
    case 'xpu.down':
      return sameClock(ready, ev) && Date.parse(ev.time) > Date.parse(ready.time);
    case 'xpu.ready':
      return endsNext(r, ev);
    default:
      return false;
  }
}

/**
 * Is a ready one of the next outage, whose first signals `r` deferred? Sent after a deferred down or
 * crash; after a deferred notice only by that notice's own source's clock (across sources, a second
 * word on this outage's ready must not end the next reboot before its xPU even went down).
 */
function endsNext(r: StoredReboot, ev: NativeEvent): boolean {
  const again = originOf(ev);
  return (r.deferred ?? []).some((d) =>
    d.type === 'xpu.reboot.pending' ? sameClock(again, d) && Date.parse(d.time) < Date.parse(again.time) : beforeReady(again, d),
  );
}

/** A deferred signal delivered again: its `defer` effect again (the first may have died before marking the claim). */
function replayedDeferral(r: StoredReboot, ev: NativeEvent): Step | null {
  const key = nextOutageKey(r, ev);
  return r.deferred?.some((d) => d.dedupKey === key) ? { reboot: r, effects: [{ kind: 'defer' }] } : null;
}

/** Is a notice or crash sent after the ready that ended `r`'s outage (so of the next one)? */
function announcesNext(r: StoredReboot, ready: Origin, ev: NativeEvent): boolean {
  // An unannounced reboot's own notice or crash, delivered after the outage it announced.
  if (r.mode === 'unannounced' && r.origin && notAfterOrigin(r.origin, ev)) return false;
  return !beforeReady(ready, ev) && !placedBeforeReady(r, ready, ev);
}

/**
 * Was a notice or crash from another clock than the ready that ended `r` sent before that ready,
 * placed on our clock? Placed through an event of the reboot on its own clock (its notice or down:
 * that event's receipt plus the time between the two by that clock, as sentWhileItRan does), else
 * through its BMC's learned clock (core/bmc-clock.ts, `ev.placed`: its own time plus the BMC's
 * smallest recent delivery gap). Either is an upper bound on when it was sent (a receipt is never
 * before its sending) while the clock held, so a notice sent after the ready (a real next reboot) is
 * placed after it and still starts one; that the clock held is checked against the BMC's latest sample
 * (`ev.clockLatest`, or the estimate's own check): a clock set back since would place it too early. Only within KEEP_SIGNAL_MS of that ready's receipt, delivered within
 * LATE_DELIVERY_MS of its placement, and with CROSS_SOURCE_SLACK_MS (or the estimate's uncertainty)
 * to spare. A ready on its own clock decides by its time (beforeReady), never this.
 */
function placedBeforeReady(r: StoredReboot, ready: Origin, ev: NativeEvent): boolean {
  if (r.kind !== 'xpu' || sameClock(ready, ev)) return false;
  // Deferred already (re-keyed): that decision stands. Placed again, by an estimate or a down that came
  // since, it could join the reboot that kept it for the next one, and then start nothing at all.
  if (ev.dedupKey.includes(NEXT_OUTAGE_KEY)) return false;
  const readyAt = Date.parse(ready.receivedAt);
  const receivedAt = Date.parse(ev.receivedAt);
  if (receivedAt - readyAt > KEEP_SIGNAL_MS) return false;
  const refs = clockRefs(r).filter((o): o is Origin => o !== undefined && sameClock(o, ev));
  if (refs.length === 0) return !!ev.placed && Date.parse(ev.placed.sentBy) + ev.placed.uncertaintyMs < readyAt;
  // Each reference's gap (receipt − own time) stands for the clock's offset; the BMC's latest sample, received
  // since, must show no step back beyond AGREEMENT_MS since it (placed by a reference alone, a real next notice
  // after such a step would look sent earlier than it was), and any excess within it widens the slack.
  const latest = ev.clockLatest;
  const excess = refs.map((o) => (latest && latest.at >= Date.parse(o.receivedAt) ? latest.gapMs - receiptGap(o) : Infinity));
  if (excess.some((x) => x > AGREEMENT_MS)) return false;
  const sentBy = Math.min(...refs.map((o) => sentByVia(o, ev)));
  return receivedAt - sentBy <= LATE_DELIVERY_MS && sentBy + CROSS_SOURCE_SLACK_MS + Math.max(0, ...excess) < readyAt;
}

/** A signal's receipt minus its own time: its source's clock offset plus that delivery's latency. */
function receiptGap(o: Origin): number {
  return Date.parse(o.receivedAt) - Date.parse(o.time);
}

/**
 * When `ev` was sent, on our clock, placed through `o` of the same clock: `o`'s receipt plus the time
 * between the two by that clock. An upper bound while the clock held (`o`'s receipt is never before
 * its sending); an event received later than LATE_DELIVERY_MS after it was more likely stamped by a
 * clock set back since.
 */
function sentByVia(o: Origin, ev: NativeEvent): number {
  return Date.parse(o.receivedAt) + (Date.parse(ev.time) - Date.parse(o.time));
}

const NEXT_OUTAGE_KEY = '#after:';

/** The key a deferred signal is ingested again under: its own key was spent on this reboot. */
function nextOutageKey(r: StoredReboot, ev: NativeEvent): string {
  return `${ev.dedupKey}${NEXT_OUTAGE_KEY}${r.id}`;
}

/** Keeps a signal of the next outage for the ingest: it starts (or signals) the reboot after this one. */
function deferToNextOutage(r: StoredReboot, evs: NativeEvent | NativeEvent[]): Step {
  const s = next(r);
  const kept = [...(r.deferred ?? [])];
  for (const ev of Array.isArray(evs) ? evs : [evs]) {
    if (kept.length >= MAX_KEPT_FOR_NEXT) {
      s.history.push(
        entry(ev.receivedAt, 'note', `${ev.type} after the xPU came back: too many kept already, not kept ${evRef(ev)}`, COORDINATOR),
      );
      continue;
    }
    kept.push({ ...ev, dedupKey: nextOutageKey(r, ev) });
    s.history.push(
      entry(
        ev.receivedAt,
        'deferred',
        `${ev.type} received after the xPU came back: kept for the xPU's next reboot, ingested again once this one lets go of the xPU ${evRef(ev)}`,
        actorOfEvent(ev),
      ),
    );
  }
  s.deferred = kept;
  return { reboot: s, effects: [{ kind: 'defer' }] };
}

/**
 * Does a signal that found no claim belong to this xPU's last reboot (in recovery, or ended)? The
 * notice or crash of the outage an unannounced reboot recorded (it was sent before that reboot's
 * first signal, by its source's clock, or received before it); the ready an xPU reboot failed
 * for want of; a down or ready received while the reboot still ran (reordered behind its end).
 */
export function sameOutage(r: StoredReboot, ev: NativeEvent): boolean {
  if (!r.origin) return false;
  // A cancelled reboot's xPU never went down for it (cancelledBefore): a down or ready not older than it is a new outage.
  if (r.status === 'cancelled' && (ev.type === 'xpu.down' || ev.type === 'xpu.ready')) return predates(r, ev);
  const notLater = notAfterOrigin(r.origin, ev);
  // At the very moment of the end (or of the ready) the order is unknown: such an event is taken as new.
  const receivedWhileItRan = !r.endedAt || Date.parse(ev.receivedAt) < Date.parse(r.endedAt);
  if (ev.type === 'xpu.reboot.pending' || ev.type === 'xpu.crashed') {
    if (r.mode === 'unannounced' && notLater) return true;
    // Sent before the ready that ended this reboot (by that ready's source): a notice of this outage, delivered late.
    const ready = r.readyOrigin;
    if (ready) return beforeReady(ready, ev) || placedBeforeReady(r, ready, ev);
    // No ready yet: a notice received while the reboot ran would have joined it then.
    return !predates(r, ev) && receivedWhileItRan;
  }
  if (ev.type === 'xpu.ready' && awaitsLateReady(r)) return !predates(r, ev);
  if (ev.type === 'xpu.ready' && endsNext(r, ev)) return false;
  // After the ready that ended this reboot's outage, by that ready's own clock: a new outage.
  const ended = r.readyOrigin;
  if (ended && sameClock(ended, ev) && Date.parse(ev.time) > Date.parse(ended.time)) return false;
  // A down sent before this reboot's ready, by that ready's clock, starts no outage of its own: that
  // ready (or an earlier one) ended it. Recorded here (as stale, if it predates the reboot too).
  if (ev.type === 'xpu.down' && ended && sameClock(ended, ev) && Date.parse(ev.time) < Date.parse(ended.time)) return true;
  if (r.mode === 'unannounced' && notLater) return true;
  if (ended && echoesReady(r, ended, ev)) return true;
  return !predates(r, ev) && (receivedWhileItRan || sentWhileItRan(r, ev));
}

/**
 * A down or ready of another source than the ready that ended the outage, sent at most
 * CROSS_SOURCE_SLACK_MS after that ready was received: a second source's word on that ready, or its
 * down delivered behind it. Closer than that their order is unknown, and an xPU does not go down and
 * come back again within it. When was it sent: placed through the reboot's own events of its source
 * (their receipt plus the time between by that clock, an upper bound), else its receipt. (A reboot
 * that ended fast left the second source's ready an unannounced reboot of its own, its host told to
 * restore PCIe twice.) The ready's own source is judged by its clock, never this.
 */
function echoesReady(r: StoredReboot, ended: Origin, ev: NativeEvent): boolean {
  if (ev.type !== 'xpu.down' && ev.type !== 'xpu.ready') return false;
  if (sameClock(ended, ev)) return false;
  const refs = clockRefs(r).filter((o): o is Origin => o !== undefined && sameClock(o, ev));
  const sentBy = refs.length ? Math.min(...refs.map((o) => sentByVia(o, ev))) : Date.parse(ev.receivedAt);
  // Delivered later than a sender retries, a clock set back since is likelier (as sentWhileItRan judges).
  if (Date.parse(ev.receivedAt) - sentBy > LATE_DELIVERY_MS) return false;
  return sentBy - Date.parse(ended.receivedAt) <= CROSS_SOURCE_SLACK_MS;
}

/**
 * Was a down or ready sent while the reboot ran, by the clock of its source? That source's own notice or
 * down, applied to this reboot, places its clock on ours (through that event's receipt), so its later
 * events need no other source's clock. A BMC retrying its power-off and ready after the agent's ready
 * ended the reboot is then a late word on this outage, not an unannounced reboot of its own.
 */
function sentWhileItRan(r: StoredReboot, ev: NativeEvent): boolean {
  if (!r.endedAt || (ev.type !== 'xpu.down' && ev.type !== 'xpu.ready')) return false;
  const endedAt = Date.parse(r.endedAt);
  const receivedAt = Date.parse(ev.receivedAt);
  return clockRefs(r).some((o) => {
    if (o === undefined || !sameClock(o, ev)) return false;
    const sentAt = sentByVia(o, ev);
    // Delivered that much later is a sender's retry; later still, a clock set back since is likelier, and a
    // new outage taken for an old one would never get its restore-pcie.
    return sentAt < endedAt && receivedAt - sentAt <= LATE_DELIVERY_MS;
  });
}

/** How late a source's retries bring an event (a BMC retries for minutes; an outage of ours, longer). */
export const LATE_DELIVERY_MS = 30 * 60_000;

/**
 * A reboot that failed for want of its xPU's ready still takes that ready (recovered-late, contract
 * 7.1): its host stays drained with PCIe protected until then. The release records it on the node
 * (with when it ended), so a ready delivered late finds it even after other reboots of the xPU began.
 */
export function awaitsLateReady(r: StoredReboot): boolean {
  return r.kind === 'xpu' && r.status === 'failed' && r.failure === WANT_OF_READY && !r.readyAt && !!r.endedAt;
}

/**
 * Is this ready the one `failed` waited for? Received while it still ran (the queue delivered it
 * late, behind other events), and not from before it began: it would have been applied to it had the
 * queue delivered in order. Whatever reboot holds the xPU now would record it as stale or as a repeat.
 */
export function failedRebootTakesReady(failed: StoredReboot, ev: NativeEvent): boolean {
  if (ev.type !== 'xpu.ready' || !awaitsLateReady(failed)) return false;
  return Date.parse(ev.receivedAt) < Date.parse(failed.endedAt!) && !predates(failed, ev);
}

// --- signals to a host reboot ----------------------------------------------------------------------

export function onHostDown(r: StoredReboot, ev: NativeEvent): Step | null {
  if (predates(r, ev)) return noteStale(r, ev);
  if (applied(r, ev)) return null;
  if (r.hostDownAt) return noteRepeat(r, ev);
  const s = next(r);
  s.hostDownAt = coordinatorTime(ev);
  s.hostDownOrigin = originOf(ev);
  s.history.push(entry(ev.receivedAt, 'host-down', `host went down ${evRef(ev)}`, actorOfEvent(ev)));
  return { reboot: s, effects: [] };
}

export function onHostReady(r: StoredReboot, ev: NativeEvent): Step | null {
  if (predates(r, ev)) return noteStale(r, ev);
  if (applied(r, ev)) return null;
  if (r.hostReadyAt) return noteRepeat(r, ev);
  const s = next(r);
  s.hostReadyAt = coordinatorTime(ev);
  s.hostReadyOrigin = originOf(ev);
  const tenant = tenantOf(ev);
  if (tenant) s.nextTenant = tenant;
  if (!r.hostDownAt) s.history.push(entry(ev.receivedAt, 'note', 'host.down was never received', COORDINATOR));
  s.history.push(entry(ev.receivedAt, 'host-ready', `host is up${tenant ? ` for tenant ${tenant}` : ''} ${evRef(ev)}`, actorOfEvent(ev)));
  return { reboot: s, effects: [] };
}

/**
 * Was a host reboot request sent after this host reboot's host.ready (by that ready's source's
 * clock; from another source, received more than CROSS_SOURCE_SLACK_MS after it)? Then the host
 * is up and asks to reboot again: not a second word on the reboot that ran. A reboot stored
 * before host.ready kept its origin answers no (it joins, as it did).
 */
export function afterHostBack(r: StoredReboot, ev: NativeEvent): boolean {
  const o = r.hostReadyOrigin;
  if (r.kind !== 'host' || !r.hostReadyAt || !o) return false;
  return !notAfterOrigin(o, ev);
}

/** An xPU went down or came back while the host reboots: a host reset power-cycles xPUs without persistent power. */
export function onXpuSignalForHost(r: StoredReboot, ev: NativeEvent): Step | null {
  if (predates(r, ev)) return noteStale(r, ev);
  if (applied(r, ev)) return null;
  const s = next(r);
  s.xpuReadyAt ??= {};
  const xpu = ev.xpu!;
  const by = actorOfEvent(ev);
  if (ev.type !== 'xpu.ready' || s.xpuReadyAt[xpu]) {
    s.history.push(
      entry(
        ev.receivedAt,
        ev.type === 'xpu.ready' ? 'note' : 'xpu-down',
        `xPU ${xpu} ${ev.type === 'xpu.ready' ? 'ready again' : 'went down'} ${evRef(ev)}`,
        by,
      ),
    );
    return { reboot: s, effects: [] };
  }
  s.xpuReadyAt[xpu] = coordinatorTime(ev);
  s.history.push(entry(ev.receivedAt, 'xpu-ready', `xPU ${xpu} is ready after the host reset ${evRef(ev)}`, by));
  return { reboot: s, effects: [] };
}

/**
 * Is a down or ready of an xPU, found no reboot of its own, one of this host reboot that ended (its
 * xPU power-cycled with the host, the signal delivered after the host was back)? Sent before the
 * host.ready: by that ready's clock when it is the same source, else placed through the host
 * reboot's own events of its source (receipt plus the time between by that clock, an upper bound),
 * else received at most CROSS_SOURCE_SLACK_MS after it. Not from before the host reboot began, and
 * delivered within LATE_DELIVERY_MS. Otherwise it would start an unannounced xPU reboot that waits
 * for a ready the host reboot took already, and fails for want of it.
 */
export function ofEndedHostReboot(r: StoredReboot, ev: NativeEvent): boolean {
  const ready = r.hostReadyOrigin;
  if (r.kind !== 'host' || !r.endedAt || !ready || (ev.type !== 'xpu.down' && ev.type !== 'xpu.ready')) return false;
  if (predates(r, ev)) return false;
  if (sameClock(ready, ev)) return Date.parse(ev.time) < Date.parse(ready.time);
  const refs = [r.origin, r.hostDownOrigin].filter((o): o is Origin => o !== undefined && sameClock(o, ev));
  const receivedAt = Date.parse(ev.receivedAt);
  if (refs.length === 0) return receivedAt - Date.parse(ready.receivedAt) <= CROSS_SOURCE_SLACK_MS;
  const sentBy = Math.min(...refs.map((o) => sentByVia(o, ev)));
  return receivedAt - sentBy <= LATE_DELIVERY_MS && sentBy < Date.parse(ready.receivedAt);
}

/**
 * Is the host of this host reboot down, i.e. may an xPU reboot join it? From the accepted request
 * to its host.ready; after that the host runs again and an xPU reboot needs the whole notice flow.
 */
export function hostIsDown(r: StoredReboot): boolean {
  return !r.endedAt && r.decision !== 'denied' && !r.hostReadyAt;
}

/** An xPU announced a reboot (or crashed) while the host is down: it reboots within the host reboot. */
export function joinHostReboot(r: StoredReboot, ev: NativeEvent, mode: 'planned' | 'crash'): Step | null {
  if (applied(r, ev)) return null;
  const s = next(r);
  const xpu = ev.xpu!;
  s.joinedXpus = [...new Set([...(r.joinedXpus ?? []), xpu])];
  // Ready before this announcement does not count: wait for the xPU to come back from this reboot.
  if (s.xpuReadyAt?.[xpu]) delete s.xpuReadyAt[xpu];
  const what = mode === 'crash' ? `crashed${ev.data?.reason ? ` (${ev.data.reason})` : ''}` : 'announced a reboot';
  s.history.push(
    entry(
      ev.receivedAt,
      mode === 'crash' ? 'xpu-crashed' : 'xpu-reboot-joined',
      `xPU ${xpu} ${what} while the host is down: it reboots within this host reboot, which waits for its xpu.ready ${evRef(ev)}`,
      actorOfEvent(ev),
    ),
  );
  return { reboot: s, effects: [] };
}

/**
 * Another host reboot request while one runs (or, requestOfEndedHostReboot, for one that ended). On
 * an unannounced host reboot it is that reboot's own request, delivered after its host.ready: the
 * reboot was requested after all, and takes the request's method.
 */
export function onHostRebootRequest(r: StoredReboot, ev: NativeEvent): Step | null {
  if (applied(r, ev)) return null;
  const s = next(r);
  if (r.kind === 'host' && r.mode === 'unannounced') {
    s.mode = hostRebootMode(ev);
    s.history.push(
      entry(
        ev.receivedAt,
        'joined',
        `the request of this host reboot (${s.mode}) arrived after the host was back ${evRef(ev)}`,
        actorOfEvent(ev),
      ),
    );
    return { reboot: s, effects: [] };
  }
  s.history.push(entry(ev.receivedAt, 'joined', `another host reboot request joined this reboot ${evRef(ev)}`, actorOfEvent(ev)));
  return { reboot: s, effects: [] };
}

// --- extensions -------------------------------------------------------------------------------------
// A granted extension moves the deadline; the xPU hears of it (postpone-reboot) through the
// workflow's re-timed wait below. The route (handlers/extensions.ts) keeps the idempotent answers.

export type ExtensionOutcome =
  | { kind: 'granted'; granted: number; deadline: string; repeat: boolean }
  | { kind: 'refused'; status: 403 | 409; code: string; reason: string; repeat: boolean };

export interface ExtensionRequest {
  seconds: number;
  reason: string;
  /** `<agentId> <Idempotency-Key>`, when the request had a key. */
  idempotencyKey?: string;
  by: Actor;
}

/**
 * An agent asks for more notice. A request whose key the reboot already holds is a repeat:
 * answered as its first was, nothing changes (`step` null). Being part of the reboot's
 * conditional write, the key is recorded atomically with the grant, so two repeats racing each
 * other cannot both grant (the second's write fails, its retry finds the key).
 */
export function requestExtension(
  r: StoredReboot,
  node: NodeDef,
  req: ExtensionRequest,
  now: Date,
): { outcome: ExtensionOutcome; step: Step | null } {
  if (req.idempotencyKey) {
    const granted = r.extensions.find((e) => e.idempotencyKey === req.idempotencyKey);
    if (granted) return { outcome: { kind: 'granted', granted: granted.granted, deadline: granted.deadline, repeat: true }, step: null };
    const refused = r.refusals.find((x) => x.idempotencyKey === req.idempotencyKey);
    if (refused) {
      const status = refused.code === 'Forbidden' ? 403 : 409;
      return { outcome: { kind: 'refused', status, code: refused.code ?? 'Conflict', reason: refused.reason, repeat: true }, step: null };
    }
  }
  const at = now.toISOString();
  const key = req.idempotencyKey ? { idempotencyKey: req.idempotencyKey } : {};
  const decision = decideExtension(r, node, req.seconds, now);
  // A 403 (an untrusted host) is a rejected request like any other and changes nothing; only a
  // refusal on the reboot's own account (409) is counted on it, for the compliance report.
  if (decision.kind === 'refused' && decision.status === 403) return { outcome: { ...decision, repeat: false }, step: null };
  const s = next(r);
  if (decision.kind === 'refused') {
    s.refusals.push({ at, requested: req.seconds, reason: decision.reason, code: decision.code, ...key });
    s.history.push(
      entry(at, 'extension-refused', `asked ${req.seconds}s${req.reason ? ` (${req.reason})` : ''}: ${decision.reason}`, req.by),
    );
    return { outcome: { ...decision, repeat: false }, step: { reboot: s, effects: [] } };
  }
  s.extensions.push({ at, requested: req.seconds, granted: decision.granted, reason: req.reason, deadline: decision.deadline, ...key });
  s.deadline = decision.deadline;
  s.status = 'extended';
  s.history.push(
    entry(
      at,
      'extended',
      `granted ${decision.granted}s of ${req.seconds}s asked${req.reason ? ` (${req.reason})` : ''}; new deadline ${decision.deadline}`,
      req.by,
    ),
  );
  return { outcome: { ...decision, repeat: false }, step: { reboot: s, effects: [] } };
}

// --- command results --------------------------------------------------------------------------------

/** A command as its record has it (the store's StoredCommand has these and more). */
export interface CommandRecord {
  id: string;
  type: CommandType;
  step: string;
  status: CommandStatus;
  createdAt: string;
  seenAt?: string;
  finishedAt?: string;
  output?: string;
  /** When the command times out (the timeout a follow-up of it reuses). */
  deadline?: string;
}

const lastLine = (output: string) => output.trim().split('\n').slice(-1)[0]?.slice(0, 200);

/**
 * A command's final result reaches its reboot, unless the reboot has it already. Applied for the
 * first result and for every repeat of it: a repeat re-applies what the command record says, so a
 * first POST that failed between marking the command and writing the reboot is completed by its retry.
 */
export function recordResult(r: StoredReboot, cmd: CommandRecord, agentId: string): Step | null {
  const known = r.commands[cmd.id];
  if ((known && isFinal(known.status)) || !isFinal(cmd.status) || cmd.status === 'timed-out')
    return known?.status === cmd.status ? cancelResumeAfterRestore(r, cmd, cmd.finishedAt ?? cmd.createdAt) : null;
  const s = next(r);
  const at = cmd.finishedAt ?? cmd.seenAt ?? cmd.createdAt;
  const output = cmd.output ?? '';
  const summary: CommandSummary = known
    ? { ...s.commands[cmd.id] }
    : { id: cmd.id, type: cmd.type, agent: agentId, step: cmd.step, status: 'pending', at: cmd.createdAt };
  summary.status = cmd.status;
  summary.at = at;
  if (cmd.status === 'failed') summary.output = output.slice(-2000);
  s.commands[cmd.id] = summary;
  const tail = cmd.status === 'failed' && output ? `: ${lastLine(output)}` : '';
  s.history.push(entry(at, `command-${cmd.status}`, `${cmd.type} on ${agentId} ${cmd.status}${tail}`, `agent:${agentId}`));
  const resume = cancelResumeAfterRestore(s, cmd, at);
  return resume ? { reboot: resume.reboot, effects: resume.effects } : { reboot: s, effects: [] };
}

/** The first heartbeat of a command shows on its reboot (operators see the hook running); later ones change nothing. */
export function markRunning(r: StoredReboot, cmdId: string, now: Date): Step | null {
  const c = r.commands[cmdId];
  if (!c || (c.status !== 'pending' && c.status !== 'delivered')) return null;
  const s = next(r);
  s.commands[cmdId] = { ...c, status: 'running', at: now.toISOString() };
  return { reboot: s, effects: [] };
}

/**
 * A result that came after the workflow stopped waiting for its command (closed `timed-out`):
 * noted once, changes nothing else. What the agent said (e.g. "deadline exceeded") is kept, as the
 * report lists why the command timed out.
 */
export function noteLateResult(
  r: StoredReboot,
  cmdId: string,
  result: { status: CommandResultStatus; output: string },
  agentId: string,
  now: Date,
): Step | null {
  if (r.history.some((h) => h.phase === 'late-result' && h.detail.startsWith(cmdId))) return null;
  const s = next(r);
  const tail = result.status === 'failed' && result.output ? `: ${lastLine(result.output)}` : '';
  s.history.push(
    entry(
      now.toISOString(),
      'late-result',
      `${cmdId} ${result.status} after the workflow stopped waiting for it${tail}`,
      `agent:${agentId}`,
    ),
  );
  const c = s.commands[cmdId];
  if (c) {
    c.lateStatus = result.status;
    if (result.output) c.output = result.output.slice(-2000);
  }
  return { reboot: s, effects: [] };
}

/**
 * The deadline the xPU's watchdog runs on, as last told to it: the announced one until a
 * postpone-reboot moved it.
 */
export function watchdogDeadline(r: StoredReboot): string | null {
  if (r.postponedTo) return r.postponedTo;
  if (!r.deadline) return null;
  return new Date(Date.parse(r.notifiedAt) + r.noticeSeconds * 1000).toISOString();
}

function lastReason(r: StoredReboot): string {
  const last = r.extensions.at(-1);
  return last ? `extension granted${last.reason ? `: ${last.reason}` : ''}` : 'deadline moved';
}

/** The deadline moved (extension; later budgets and holds): tell the xPU, once per move. */
export function postponeIfMoved(r: StoredReboot, node: NodeDef, now: Date): Step | null {
  if (r.kind !== 'xpu' || !r.deadline || r.mode === 'crash' || r.mode === 'unannounced') return null;
  const told = watchdogDeadline(r);
  if (!told) return null;
  if (Date.parse(r.deadline) <= Date.parse(told)) {
    // Told already; re-send what a crash may have kept from going out (the write is idempotent).
    const sent = r.postponedTo ? planPostpone(r, r.postponedTo, '', node, now) : undefined;
    const c = sent && r.commands[sent.id];
    if (c?.status !== 'pending') return null;
    return {
      reboot: r,
      effects: [{ kind: 'send', step: 'postpone', commands: [planPostpone(r, r.postponedTo!, lastReason(r), node, new Date(c.at))] }],
    };
  }
  const s = next(r);
  s.postponedTo = r.deadline;
  const reason = lastReason(r);
  // Sent already for this deadline (a budget or hold released it, handlers/fleet.ts): only remember it.
  if (r.commands[planPostpone(r, r.deadline, reason, node, now).id]) return { reboot: s, effects: [] };
  s.history.push(entry(now.toISOString(), 'postponed', `told the xPU to hold its reboot until ${r.deadline} (${reason})`, COORDINATOR));
  const cmd = planPostpone(r, r.deadline, reason, node, now);
  s.commands[cmd.id] = summarize(cmd, 'postpone', now.toISOString());
  return { reboot: s, effects: [{ kind: 'send', step: 'postpone', commands: [cmd] }] };
}

// --- workflow steps ------------------------------------------------------------------------------------

export interface Registration {
  token: string;
  step: string;
  waitFor: WaitFor;
  deadline: string | null | undefined;
  enteredAt?: string;
  status?: RebootStatus;
  /** Commands the step sends, already written: recorded on the reboot. */
  commands: CommandSummary[];
  story: string;
}

/** A workflow's callback Task registers what it waits for (and records the commands it sent). */
export function registerWaiter(r: StoredReboot, reg: Registration, now: Date): Step {
  const at = now.toISOString();
  const s = next(r);
  for (const c of reg.commands) if (!s.commands[c.id]) s.commands[c.id] = c;
  s.waiter = {
    token: reg.token,
    step: reg.step,
    waitFor: reg.waitFor,
    deadline: reg.deadline ?? s.deadline,
    at,
    ...(reg.enteredAt ? { enteredAt: reg.enteredAt } : {}),
  };
  const effects: Effect[] = [];
  if (reg.status && !s.endedAt) {
    const st = advanceStatus(s.status, reg.status);
    if (st !== s.status) {
      s.status = st;
      s.history.push(entry(at, st, reg.story, COORDINATOR));
    }
  }
  // Back up and handed to recovery, the xPU is no longer rebooting: a host reboot (the one
  // `afterReady: reboot-host` asks for above all) must not be denied on its account.
  if (s.kind === 'xpu' && reg.step === 'recover' && !r.lateRecovery) effects.push({ kind: 'release' });
  // The host is up for another tenant: the xPUs are re-provisioned for it, which makes it theirs.
  const tenant = reg.step === 'reprovision' ? tenantProvisionedBy(s) : undefined;
  if (tenant) effects.push({ kind: 'provision', tenant });
  return { reboot: s, effects };
}

/**
 * The tenant a host reboot makes the node's (contract 7.1): the one its host.ready named, once its
 * xPUs are being re-provisioned for it. The end writes it again before the reboot shows ended: the
 * registration's write may still be on its way when the xPUs' answers complete the reboot.
 */
export function tenantProvisionedBy(r: StoredReboot): string | undefined {
  if (r.kind !== 'host' || !r.nextTenant || r.nextTenant === r.tenant) return undefined;
  const reprovisioning = r.waiter?.step === 'reprovision' || Object.values(r.commands).some((c) => c.step === 'reprovision');
  return reprovisioning ? r.nextTenant : undefined;
}

/** The host is prepared: the xPU is told to reboot now, ahead of its deadline. */
export function proceed(r: StoredReboot, commands: CommandSummary[], now: Date): Step | null {
  const at = now.toISOString();
  const s = next(r);
  for (const c of commands) if (!s.commands[c.id]) s.commands[c.id] = c;
  if (!r.rebootingAt) {
    s.status = advanceStatus(s.status, 'rebooting');
    s.rebootingAt = at;
    s.history.push(entry(at, 'rebooting', 'the host is prepared: told the xPU to reboot now, ahead of its deadline', COORDINATOR));
  }
  return { reboot: s, effects: [] };
}

/** The xPU did not take the early go (proceed-reboot failed, was skipped or timed out): its watchdog decides. */
export function proceedNotTaken(r: StoredReboot, now: Date): Step | null {
  if (r.proceedRefused) return null;
  const s = next(r);
  s.proceedRefused = true;
  const c = Object.values(r.commands).find((x) => x.type === 'proceed-reboot');
  s.history.push(
    entry(
      now.toISOString(),
      'proceed-not-taken',
      `proceed-reboot ${c?.status ?? 'not answered'}: the xPU reboots at its deadline ${r.deadline}; recovery is timed from its going down`,
      COORDINATOR,
    ),
  );
  return { reboot: s, effects: [] };
}

/**
 * The deadline passed: the watchdog reboots the xPU whatever the host had left undone. Not a reboot
 * that ended meanwhile: an operator's cancel that won the race with the deadline's timer told the
 * xPU to stand down (cancel-reboot), and a cancelled reboot recorded as forced would contradict itself.
 */
export function markForced(r: StoredReboot, undone: CommandSummary[], timedOut: string[], now: Date): Step | null {
  if (r.forced || r.endedAt) return null;
  const at = now.toISOString();
  const s = next(r);
  s.forced = true;
  markTimedOut(s, timedOut);
  s.status = advanceStatus(s.status, 'rebooting');
  // The watchdog fired at the deadline the wait was timed on; an extension that slipped in after
  // the timer fired must not date the reboot in the future.
  s.rebootingAt = s.deadline && Date.parse(s.deadline) <= now.getTime() ? s.deadline : at;
  const outstanding = outstandingAt(s, undone, s.rebootingAt);
  s.outstanding = outstanding;
  s.history.push(
    entry(
      at,
      'forced',
      `deadline reached: the xPU watchdog reboots it${outstanding.length ? `; still outstanding: ${outstanding.join(', ')}` : ''}`,
      COORDINATOR,
    ),
  );
  return { reboot: s, effects: [{ kind: 'metric', name: 'RebootsForced' }] };
}

/**
 * What the host had not done when the watchdog fired, each with where it got to. `undone` was read
 * before this write; a command that succeeded (or was skipped) in time since is not outstanding, and
 * one that did so only after the deadline says so, never a bare "outstanding: x (succeeded)".
 */
function outstandingAt(s: StoredReboot, undone: CommandSummary[], firedAt: string): string[] {
  const fired = Date.parse(firedAt);
  const out: string[] = [];
  for (const c of undone) {
    const known = s.commands[c.id];
    const done = [c, known].find((x) => x && (x.status === 'succeeded' || x.status === 'skipped'));
    if (!done) out.push(`${c.type} (${c.status})`);
    else if (Date.parse(done.at) > fired) out.push(`${c.type} (${done.status} after the deadline)`);
  }
  return out;
}

/**
 * No heartbeat from the host agent, or every preparation command answered without success: the
 * deadline decides. Recorded once per silence.
 */
export function markSilentHost(r: StoredReboot, now: Date): Step | null {
  const prep = Object.values(r.commands).filter((c) => c.step === 'prepare');
  const answered = prep.length > 0 && prep.every((c) => isFinal(c.status));
  const phase = answered ? 'host-not-prepared' : 'silent-host';
  if (r.history.at(-1)?.phase === phase) return null;
  const detail = answered
    ? `the host could not prepare (${prep
        .filter((c) => c.status !== 'succeeded' && c.status !== 'skipped')
        .map((c) => `${c.type} ${c.status}`)
        .join(', ')}): the xPU reboots at its deadline`
    : 'the host agent stopped answering: the xPU reboots at its deadline';
  const s = next(r);
  s.history.push(entry(now.toISOString(), phase, detail, COORDINATOR));
  return { reboot: s, effects: answered ? [] : [{ kind: 'metric', name: 'SilentHosts' }] };
}

/**
 * The xPU is back (its ready ends the outage whenever it arrives: in the notice phase, in a core-dump
 * hold) while commands of those phases were still open. They were for before the outage (contract 5:
 * protect-pcie before the xPU goes down, allow-coredump before its reset), so they are closed as the
 * recovery begins: an agent that polls only now must not migrate workloads, mask PCIe or dump a core
 * after the xPU came back, nor run protect-pcie after the restore-pcie that follows. Null when none were open.
 */
export function closeOnReturn(r: StoredReboot, closed: string[], now: Date): Step | null {
  const open = closed.filter((id) => r.commands[id] && !isFinal(r.commands[id].status));
  if (open.length === 0) return null;
  const s = next(r);
  markTimedOut(s, open);
  const types = open.map((id) => s.commands[id]!.type).join(', ');
  s.history.push(entry(now.toISOString(), 'note', `the xPU rebooted before ${types} was done: closed, not sent any more`, COORDINATOR));
  return { reboot: s, effects: [] };
}

/** Marks closed commands timed out on the reboot, unless a result got there first. */
export function markTimedOut(r: StoredReboot, closed: string[]): void {
  for (const id of closed) if (r.commands[id] && !isFinal(r.commands[id].status)) r.commands[id].status = 'timed-out';
}

/** The commands sent to deny a host reboot are recorded. */
export function recordCommands(r: StoredReboot, commands: CommandSummary[]): Step | null {
  const fresh = commands.filter((c) => !r.commands[c.id]);
  if (fresh.length === 0) return null;
  const s = next(r);
  for (const c of fresh) s.commands[c.id] = c;
  return { reboot: s, effects: [] };
}

export function complete(r: StoredReboot, timedOut: string[], now: Date): Step | null {
  if (r.endedAt && !r.lateRecovery) return null;
  const s = next(r);
  markTimedOut(s, timedOut);
  if (r.endedAt) return finishLateRecovery(s, now, 'completed');
  const at = now.toISOString();
  s.status = 'completed';
  s.endedAt = at;
  s.waiter = null;
  s.history.push(
    entry(
      at,
      'completed',
      s.mode === 'unannounced' ? 'the host restored PCIe after the unannounced reboot' : 'the reboot is complete',
      COORDINATOR,
    ),
  );
  return { reboot: s, effects: [{ kind: 'release' }] };
}

/**
 * The workflow gave up on the reboot. `settled`: results that reached their command records after
 * the workflow stopped waiting but before it closed them (so they were not timed out); they are
 * recorded first, so the story is told from the reboot as it is now, never from an older read.
 */
export function fail(
  r: StoredReboot,
  reason: string,
  error: unknown,
  timedOut: string[],
  now: Date,
  settled: Array<CommandRecord & { agent: string }> = [],
): Step | null {
  if (r.endedAt && !r.lateRecovery) return null;
  let s = next(r);
  for (const c of settled) s = recordResult(s, c, c.agent)?.reboot ?? s;
  markTimedOut(s, timedOut);
  const story = failureStory(reason, error, s);
  if (r.endedAt) return finishLateRecovery(s, now, 'failed', story);
  const at = now.toISOString();
  s.status = 'failed';
  s.failure = reason;
  s.endedAt = at;
  s.waiter = null;
  s.history.push(entry(at, 'failed', story, COORDINATOR));
  return { reboot: s, effects: [{ kind: 'release' }, { kind: 'metric', name: 'RebootFailed', dimensions: { reason } }] };
}

/**
 * Why a reboot failed, in words, from the reboot as it will be written. The restore-pcie story
 * names where that command got to: a success that arrived as the wait timed out is told as such,
 * not as a failure (the workflow had already taken the failed branch; nothing more is sent).
 */
export function failureStory(reason: string, error: unknown, r: StoredReboot): string {
  if (reason === 'restore-pcie-failed') {
    const restore = Object.values(r.commands)
      .filter((c) => c.type === 'restore-pcie' && c.step === 'recover')
      .at(-1);
    const id = restore?.id ?? '';
    const tail = 'nothing more is sent (no resume-workloads); the host needs an operator';
    switch (restore?.status) {
      case 'failed':
        return `restore-pcie ${id} failed on the host: ${tail}`;
      case 'skipped':
        return `restore-pcie ${id} was skipped on the host (no hook ran): ${tail}`;
      case 'succeeded':
        return `restore-pcie ${id} succeeded on the host only after the workflow had stopped waiting for it: workloads were not resumed (no resume-workloads); the host needs an operator to resume them`;
      default:
        return `restore-pcie ${id} was not answered in time on the host: ${tail}`;
    }
  }
  const known: Record<string, string> = {
    'xpu-never-returned': 'the xPU did not report ready within the recovery bound',
    'host-never-returned': 'the host did not come back within its bound',
    'xpus-never-returned': 'an xPU without persistent power did not come back after the host reset',
  };
  if (known[reason]) return known[reason];
  const e = error as { Error?: string; Cause?: string } | undefined;
  return `${reason}${e?.Error ? `: ${e.Error}${e.Cause ? ` (${String(e.Cause).slice(0, 300)})` : ''}` : ''}`;
}

/** The late recovery of a failed reboot ends: the reboot stays failed, its history says how the host was left. */
function finishLateRecovery(s: StoredReboot, now: Date, how: 'completed' | 'failed', story?: string): Step {
  const at = now.toISOString();
  s.lateRecovery = false;
  s.waiter = null;
  s.history.push(
    entry(
      at,
      how === 'completed' ? 'recovered' : 'recovery-failed',
      how === 'completed' ? 'the host is restored after the late xpu.ready' : `late recovery failed: ${story}`,
      COORDINATOR,
    ),
  );
  return { reboot: s, effects: [] };
}

// --- new reboots -------------------------------------------------------------------------------------

/** An xPU went down or came back with no reboot of it known: recorded at once, as an unannounced reboot. */
export function unannouncedReboot(base: StoredReboot, ev: NativeEvent): Step {
  const s = next(base);
  const at = coordinatorTime(ev);
  s.mode = 'unannounced';
  s.status = 'rebooting';
  s.noticeSeconds = 0;
  s.deadline = null;
  s.rebootingAt = at;
  s.origin = originOf(ev);
  if (ev.type === 'xpu.ready') s.readyOrigin = originOf(ev);
  if (ev.type === 'xpu.down') s.downOrigin = originOf(ev);
  s.history = [
    entry(
      ev.receivedAt,
      'unannounced',
      `xPU ${ev.xpu} ${ev.type === 'xpu.down' ? 'went down' : 'rebooted'} without notice ${evRef(ev)}`,
      actorOfEvent(ev),
    ),
  ];
  if (ev.type === 'xpu.down') s.downAt = at;
  else {
    s.readyAt = at;
    s.history.push(entry(ev.receivedAt, 'xpu-ready', `xPU ${ev.xpu} is ready ${evRef(ev)}`, actorOfEvent(ev)));
  }
  return { reboot: s, effects: [] };
}

/**
 * The tenant a lone host.ready (no host reboot of the node in progress) brings up, when it is not the
 * one the node's xPUs are provisioned for: the host was rebooted without a request (an IPMI power
 * cycle, a reset nobody announced) and now serves another tenant, whose xPUs still hold the old
 * one's context (contract 7.1: such a host.ready leads to reprovision). Otherwise undefined, and the
 * signal is kept for the host reboot it may belong to.
 */
export function tenantChangeOf(ev: NativeEvent, provisionedTenant: string | undefined): string | undefined {
  const tenant = tenantOf(ev);
  return ev.type === 'host.ready' && tenant && tenant !== provisionedTenant ? tenant : undefined;
}

/**
 * The host came up for another tenant with no host reboot requested (tenantChangeOf): recorded at
 * once as an unannounced host reboot, so its xPUs free the old tenant's context and are
 * re-provisioned for the new one. The host is back already; its xPUs are not waited for (a power
 * cycle of theirs, if the reset reached them, went by unobserved: their own signals tell of it).
 */
export function unannouncedHostReboot(base: StoredReboot, ev: NativeEvent, node: NodeDef, tenant: string): Step {
  const s = next(base);
  const at = coordinatorTime(ev);
  s.mode = 'unannounced';
  s.origin = originOf(ev);
  s.hostReadyAt = at;
  s.hostReadyOrigin = originOf(ev);
  s.nextTenant = tenant;
  s.xpuReadyAt = Object.fromEntries(node.xpus.map((x) => [x.id, at]));
  s.history = [
    entry(ev.receivedAt, 'unannounced', `host came up for tenant ${tenant} without a host reboot requested ${evRef(ev)}`, actorOfEvent(ev)),
    entry(ev.receivedAt, 'host-ready', `host is up for tenant ${tenant} ${evRef(ev)}`, actorOfEvent(ev)),
    entry(ev.receivedAt, 'note', 'its xPUs free the host context and are re-provisioned; they are not waited for', COORDINATOR),
  ];
  return { reboot: s, effects: [] };
}

/**
 * A host reboot request sent before the host.ready of a host reboot that has ended since, by that
 * ready's source's own clock: that reboot's own request, delivered late. It joins the ended reboot
 * instead of starting one that would wait for a host.down and host.ready already spent. Only the
 * same clock can say so: by receipt alone (afterHostBack's slack) a host that is rebooted again at
 * once would have its new request taken for the old one's.
 */
export function requestOfEndedHostReboot(last: StoredReboot, ev: NativeEvent): boolean {
  const o = last.hostReadyOrigin;
  if (last.kind !== 'host' || !last.endedAt || !o) return false;
  if (awaitsItsRequest(last, ev)) return true;
  // Sent before that host.ready by its clock, and delivered within a sender's retries of it. Later, the
  // clock was set back since (a host set back an hour between two reboots): taken for this reboot's
  // request, the host's next reboot would start nothing and its xPUs never free the host context.
  return sameClock(o, ev) && Date.parse(ev.time) < Date.parse(o.time) && Date.parse(ev.receivedAt) - sentByVia(o, ev) <= LATE_DELIVERY_MS;
}

/** How long a signal that found no reboot is kept for the reboot it belongs to (contract 7.1: at least 10 minutes). */
export const KEEP_SIGNAL_MS = 30 * 60_000;

/**
 * Is this request the one of an unannounced host reboot (one no request has joined yet), received
 * within the time its host.ready would have been kept for a request? A lone host.ready and its
 * request delivered after it cannot be told from a power cycle nobody requested until the request
 * comes: the request then joins the reboot the host.ready started, whatever the clocks say, as a
 * kept host.ready would have been applied to the request's reboot (contract 7.1).
 */
export function awaitsItsRequest(r: StoredReboot, ev: NativeEvent): boolean {
  const o = r.hostReadyOrigin;
  return r.kind === 'host' && r.mode === 'unannounced' && !!o && Date.parse(ev.receivedAt) - Date.parse(o.receivedAt) <= KEEP_SIGNAL_MS;
}

/** The signal a transition applies, by event type, for a reboot of the xPU the event names. */
export function xpuSignal(r: StoredReboot, ev: NativeEvent): Step | null {
  switch (ev.type) {
    case 'xpu.down':
      return onXpuDown(r, ev);
    case 'xpu.ready':
      return onXpuReady(r, ev);
    case 'xpu.crashed':
      return onXpuCrashed(r, ev);
    case 'xpu.reboot.pending':
      return onNotice(r, ev);
    default:
      return null;
  }
}

export function hostSignal(r: StoredReboot, ev: NativeEvent): Step | null {
  switch (ev.type) {
    case 'host.down':
      return onHostDown(r, ev);
    case 'host.ready':
      return onHostReady(r, ev);
    case 'xpu.down':
    case 'xpu.ready':
      return onXpuSignalForHost(r, ev);
    default:
      return null;
  }
}

// --- operator controls (docs/fleet-safety.md) ---------------------------------------------------------------

/** A control the reboot's state does not allow (the API answers 409 with `code`). */
export interface Refused {
  refused: string;
  code: string;
}

/**
 * Has the xPU gone down (or been told to)? From then on the reboot cannot be withdrawn or hurried:
 * the device is away, and only its recovery is left. So once its deadline passed: the xPU's
 * watchdog reboots it then, whether or not the deadline's timer has recorded that yet (a cancel
 * accepted in between would tell an xPU that is already going down to stand down).
 */
function xpuWentDown(r: StoredReboot, now: Date): string | undefined {
  if (r.kind !== 'xpu') return 'only xPU reboots have a notice phase';
  if (r.mode === 'crash' || r.mode === 'unannounced' || r.crashedAt)
    return r.mode === 'unannounced' ? 'the xPU rebooted without notice' : 'the xPU crashed';
  if (r.downAt) return 'the xPU went down';
  if (r.readyAt) return 'the xPU rebooted already';
  if (r.rebootingAt || r.forced) return `the xPU was told to reboot (${r.status})`;
  if (r.status !== 'queued' && !isNoticePhase(r.status)) return `the reboot is ${r.status}`;
  if (r.status !== 'queued' && r.deadline && now.getTime() >= Date.parse(r.deadline))
    return `its deadline ${r.deadline} passed: the xPU watchdog reboots it`;
  return undefined;
}

function planControl(
  r: StoredReboot,
  type: CommandType,
  xpu: string | null,
  args: Record<string, unknown>,
  deadline: string,
): PlannedCommand {
  return { id: commandId(r.id, type, xpu), type, agent: agentIdOf(r.node, xpu), xpu: r.xpu, args, deadline, noticePhase: false };
}

const OPEN = ['pending', 'delivered', 'running'];

/**
 * Withdraws an xPU reboot before its xPU went down (queued or in its notice phase): the xPU is told
 * to stand down (`cancel-reboot`), and the host undoes what it was asked to do, in turn:
 * `restore-pcie` if `protect-pcie` was sent, then `resume-workloads` if `migrate-workloads` was
 * (after restore-pcie succeeded, when it was sent: see cancelUndo).
 * Repeated, it returns the reboot unchanged with the same (idempotent) effects, so a crash between
 * the write and them loses nothing.
 */
export function cancel(r: StoredReboot, node: NodeDef, by: Actor, reason: string, now: Date): Step | Refused {
  const repeated = r.status === 'cancelled';
  if (!repeated) {
    const down = xpuWentDown(r, now);
    if (down) return { refused: `cannot cancel: ${down}`, code: 'PastNoticePhase' };
  }
  const at = now.toISOString();
  const due = new Date(now.getTime() + node.policy.xpuReboot.commandSeconds * 1000).toISOString();
  const commands = [planControl(r, 'cancel-reboot', r.xpu, { reason }, due), ...cancelUndo(r, due)];
  const open = Object.values(r.commands).filter((c) => c.step === 'prepare' && OPEN.includes(c.status));
  const effects: Effect[] = [
    { kind: 'close-commands', ids: open.map((c) => c.id) },
    { kind: 'send', step: 'cancel', commands },
    { kind: 'leave-queue', takeBudget: false },
    { kind: 'release' },
    { kind: 'release-budgets' },
  ];
  if (repeated) return { reboot: r, effects };
  const s = next(r);
  s.status = 'cancelled';
  s.endedAt = at;
  for (const c of open) s.commands[c.id] = { ...c, status: 'timed-out' };
  for (const p of commands) s.commands[p.id] ??= summarize(p, 'cancel', at);
  const waits = resumeWaitsForRestore(s) ? '; resume-workloads follows once restore-pcie succeeded' : '';
  s.history.push(
    entry(at, 'cancelled', `cancelled${reason ? `: ${reason}` : ''}; ${commands.map((c) => c.type).join(', then ')} sent${waits}`, by),
  );
  return { reboot: s, effects: [...effects, { kind: 'metric', name: 'RebootsCancelled' }] };
}

const undoneOk = (c: CommandSummary | undefined) => c?.status === 'succeeded' || c?.status === 'skipped';
const preparedWith = (r: StoredReboot, type: CommandType) => Object.values(r.commands).some((c) => c.type === type && c.step === 'prepare');
const undoOf = (r: StoredReboot, type: CommandType) => Object.values(r.commands).find((c) => c.type === type && c.step === 'cancel');

/**
 * What a cancelled reboot owes the host now: `restore-pcie` once `protect-pcie` went out, and
 * `resume-workloads` once `migrate-workloads` went out, but only after that restore-pcie succeeded
 * when there is one. Sent together, an agent that failed restore-pcie would resume workloads on a
 * device it could not bring back; contract 7.1 says a failed restore-pcie is never followed by
 * resume-workloads, on this path as on the recovery's. Listed whether or not sent already (sending
 * is idempotent), so a repeat re-sends what a crash may have kept from going out.
 */
function cancelUndo(r: StoredReboot, due: string): PlannedCommand[] {
  const why = { reason: `reboot ${r.id} cancelled` };
  const out: PlannedCommand[] = [];
  if (preparedWith(r, 'protect-pcie')) out.push(planControl(r, 'restore-pcie', null, why, due));
  if (preparedWith(r, 'migrate-workloads') && !resumeWaitsForRestore(r)) out.push(planControl(r, 'resume-workloads', null, why, due));
  return out;
}

/** Is the cancel's resume-workloads held back until its restore-pcie succeeds? */
function resumeWaitsForRestore(r: StoredReboot): boolean {
  return preparedWith(r, 'migrate-workloads') && preparedWith(r, 'protect-pcie') && !undoneOk(undoOf(r, 'restore-pcie'));
}

/**
 * The restore-pcie of a cancel succeeded: the resume-workloads it held back goes out now (with the
 * restore's own timeout). On a repeat of that result the reboot is unchanged and the send is repeated
 * (idempotent), so a crash between the write and the send loses nothing. Null on any other result.
 */
function cancelResumeAfterRestore(r: StoredReboot, cmd: CommandRecord, at: string): Step | null {
  if (r.status !== 'cancelled' || cmd.type !== 'restore-pcie' || cmd.step !== 'cancel' || !undoneOk(r.commands[cmd.id])) return null;
  const timeout = cmd.deadline ? Math.max(0, Date.parse(cmd.deadline) - Date.parse(cmd.createdAt)) : 600_000;
  const due = new Date(Date.parse(at) + timeout).toISOString();
  const resume = cancelUndo(r, due).filter((p) => p.type === 'resume-workloads');
  if (resume.length === 0) return null;
  const effects: Effect[] = [{ kind: 'send', step: 'cancel', commands: resume }];
  if (resume.every((p) => r.commands[p.id])) return { reboot: r, effects };
  const s = next(r);
  for (const p of resume) s.commands[p.id] ??= summarize(p, 'cancel', at);
  s.history.push(entry(at, 'note', 'restore-pcie of the cancel succeeded: resume-workloads sent', COORDINATOR));
  return { reboot: s, effects };
}

/**
 * Commands an await wrote as (or just after) the reboot was cancelled, which the cancel could not
 * know of: closed (recorded timed out), and the undo the cancel sends for what went out before it
 * (restore-pcie after protect-pcie, resume-workloads after migrate-workloads) goes out for them
 * too. Null when the reboot is not cancelled or knows them all already (a replay).
 */
export function cancelCaughtUp(r: StoredReboot, sent: CommandSummary[], node: NodeDef, now: Date): Step | null {
  if (r.status !== 'cancelled') return null;
  const unknown = sent.filter((c) => !r.commands[c.id]);
  if (unknown.length === 0) return null;
  const at = now.toISOString();
  const due = new Date(now.getTime() + node.policy.xpuReboot.commandSeconds * 1000).toISOString();
  const s = next(r);
  for (const c of unknown) s.commands[c.id] = { ...c, status: 'timed-out' };
  // What the cancel owes now that these are known, less what it sent already.
  const undo = cancelUndo(s, due).filter((p) => !r.commands[p.id]);
  for (const p of undo) s.commands[p.id] ??= summarize(p, 'cancel', at);
  const waits = resumeWaitsForRestore(s) && !resumeWaitsForRestore(r) ? '; resume-workloads follows once restore-pcie succeeded' : '';
  const undone = `${undo.length ? `; ${undo.map((p) => p.type).join(', then ')} sent` : ''}${waits}`;
  s.history.push(
    entry(at, 'note', `${unknown.map((c) => c.type).join(', ')} went out as the reboot was cancelled: closed${undone}`, COORDINATOR),
  );
  const effects: Effect[] = [{ kind: 'close-commands', ids: unknown.map((c) => c.id) }];
  if (undo.length) effects.push({ kind: 'send', step: 'cancel', commands: undo });
  return { reboot: s, effects };
}

/**
 * Hurries an xPU reboot that is queued or in its notice phase: `proceed-reboot` goes to the xPU at
 * once, and what the host had not finished is recorded as for a reboot forced at its deadline. A
 * queued reboot leaves the queue and counts in its budgets, beyond them if need be.
 */
export function force(r: StoredReboot, node: NodeDef, by: Actor, reason: string, now: Date): Step | Refused {
  const at = now.toISOString();
  const due = new Date(now.getTime() + node.policy.xpuReboot.commandSeconds * 1000).toISOString();
  const go = planControl(r, 'proceed-reboot', r.xpu, {}, due);
  // Repeated: the same answer, and the same effects again (each idempotent) unless the reboot is over: a
  // crash between the force's write and its effects left a queued reboot in the queue and out of its
  // budgets (another reboot of its rack could start beside it), and its host's commands open.
  if (r.forced && r.history.some((h) => h.phase === 'forced' && h.by === by)) {
    if (r.endedAt) return { reboot: r, effects: [] };
    const closed = Object.values(r.commands).filter((c) => c.step === 'prepare' && c.status === 'timed-out');
    const wasQueued = r.queue?.admittedAt !== undefined && r.queue.admittedAt === r.rebootingAt;
    return {
      reboot: r,
      effects: [
        { kind: 'close-commands', ids: closed.map((c) => c.id) },
        { kind: 'send', step: 'proceed', commands: [go] },
        ...(wasQueued ? [{ kind: 'leave-queue' as const, takeBudget: true }] : []),
      ],
    };
  }
  const down = xpuWentDown(r, now);
  if (down) return { refused: `cannot force: ${down}`, code: 'PastNoticePhase' };
  const undone = undoneCommands(r, ['prepare']);
  const open = undone.filter((c) => OPEN.includes(c.status));
  const queued = r.status === 'queued';
  const s = next(r);
  s.forced = true;
  s.outstanding = undone.map((c) => `${c.type} (${c.status})`);
  for (const c of open) s.commands[c.id] = { ...c, status: 'timed-out' };
  s.commands[go.id] ??= summarize(go, 'proceed', at);
  s.status = 'rebooting';
  s.rebootingAt = at;
  if (s.queue && !s.queue.admittedAt) s.queue = { ...s.queue, admittedAt: at };
  s.history.push(
    entry(
      at,
      'forced',
      `forced${reason ? `: ${reason}` : ''}: told the xPU to reboot now${undone.length ? `; still outstanding: ${s.outstanding.join(', ')}` : ''}`,
      by,
    ),
  );
  return {
    reboot: s,
    effects: [
      { kind: 'close-commands', ids: open.map((c) => c.id) },
      { kind: 'send', step: 'proceed', commands: [go] },
      ...(queued ? [{ kind: 'leave-queue' as const, takeBudget: true }] : []),
      { kind: 'metric', name: 'RebootsForced' },
    ],
  };
}

/** Statuses from which the model never moves on: the end. */
export const ENDED: readonly RebootStatus[] = ['completed', 'denied', 'failed', 'cancelled'];

// --- the reconciler and the budget queue (lambdas/handlers/reconciler.ts, fleet.ts) ---------------

/**
 * The reconciler ends a reboot its workflow no longer runs for: failed, the commands it closed
 * marked timed out (unless a result got there first). Null if something else ended it first.
 */
export function endByReconciler(r: StoredReboot, closed: string[], reason: string, detail: string, now: Date): Step | null {
  if (r.endedAt) return null;
  const s = next(r);
  markTimedOut(s, closed);
  const at = now.toISOString();
  s.status = 'failed';
  s.endedAt = at;
  s.waiter = null;
  s.history.push(entry(at, 'failed', `${reason}: ${detail}; ended by the reconciler`, COORDINATOR));
  return { reboot: s, effects: [] };
}

/**
 * A new xPU reboot, before it is stored, counts in the budgets `keys`; an outage (a crash, an
 * unannounced reboot) is never held and says which budget it goes `beyond`.
 */
export function admitNew(r: StoredReboot, keys: string[], beyond: string | undefined, now: Date): StoredReboot {
  const s = next(r);
  if (keys.length) s.budgetKeys = keys;
  const what = r.mode === 'crash' ? 'a crash' : 'an unannounced reboot';
  if (beyond)
    s.history.push(
      entry(now.toISOString(), 'budget-exceeded', `${what} is never held: the node is unavailable beyond ${beyond}`, COORDINATOR),
    );
  return s;
}

/** A queued reboot found no slot: when to look again. Null once it left the queue. */
export function noteQueueRecheck(r: StoredReboot, recheckAt: string): Step | null {
  if (!r.queue || r.status !== 'queued') return null;
  const s = next(r);
  s.queue = { ...s.queue!, recheckAt };
  return { reboot: s, effects: [] };
}

/** The node is unavailable beyond a budget (`beyond` names it): said once per reboot. */
export function noteBudgetExceeded(r: StoredReboot, beyond: string, now: Date): Step | null {
  if (r.history.some((h) => h.phase === 'budget-exceeded')) return null;
  const s = next(r);
  s.history.push(entry(now.toISOString(), 'budget-exceeded', `the node is unavailable beyond ${beyond}`, COORDINATOR));
  return { reboot: s, effects: [] };
}

/**
 * A reboot forced or let out of the queue counts against its budgets (`keys`), also beyond them
 * (`beyond`, said once). Null when there is nothing to record or it already holds its slots.
 */
export function countOutOfQueue(r: StoredReboot, keys: string[], beyond: string | undefined, now: Date): Step | null {
  const say = !!beyond && !r.history.some((h) => h.phase === 'budget-exceeded');
  if (!say && (!keys.length || r.budgetKeys?.length)) return null;
  const s = next(r);
  if (keys.length) s.budgetKeys = keys;
  if (say)
    s.history.push(
      entry(now.toISOString(), 'budget-exceeded', `forced out of the queue: the node is unavailable beyond ${beyond}`, COORDINATOR),
    );
  return { reboot: s, effects: [] };
}

/** A queued reboot's xPU is told to hold its watchdog to the deadline: the postpone command is recorded once. */
export function recordQueuedPostpone(r: StoredReboot, postpone: PlannedCommand, now: Date): Step | null {
  if (r.commands[postpone.id] || r.status !== 'queued') return null;
  const s = next(r);
  s.commands[postpone.id] = summarize(postpone, 'budget', now.toISOString());
  s.postponedTo = s.deadline ?? undefined;
  return { reboot: s, effects: [] };
}

/**
 * A queued reboot goes on (`slot`: a slot freed; `cap`: its wait reached the cap), taking `keys`.
 * If its deadline moved, `postpone` is the command that tells the xPU (recorded here, sent by the
 * handler). Null once it left the queue.
 */
export function leaveQueue(
  r: StoredReboot,
  how: 'slot' | 'cap',
  keys: string[],
  node: NodeDef,
  now: Date,
  why?: string,
): { step: Step | null; postpone?: PlannedCommand } {
  if (r.status !== 'queued' || !r.queue) return { step: null };
  const s = next(r);
  const before = s.deadline;
  onQueueLeft(s, how, node.policy.xpuReboot, now, why);
  if (keys.length) s.budgetKeys = keys;
  let postpone: PlannedCommand | undefined;
  if (s.deadline && s.deadline !== before) {
    postpone = planPostpone(
      s,
      s.deadline,
      how === 'cap' ? 'budget wait reached its cap' : 'admitted: no hold, budgets have room',
      node,
      now,
    );
    s.commands[postpone.id] ??= summarize(postpone, 'budget', now.toISOString());
    s.postponedTo = s.deadline; // what the xPU's watchdog was told (postponeIfMoved reads it)
  }
  return { step: { reboot: s, effects: [] }, ...(postpone ? { postpone } : {}) };
}
