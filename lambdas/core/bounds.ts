// Keeps a reboot item's size bounded: counts for everything, the entries themselves only for the last few.
import type { Reboot } from './types.ts';

/**
 * DynamoDB refuses items over 400 KB, and a refused write of a reboot is a reboot that can never
 * change again (its claim never released). Refused extensions are the unbounded input (an agent may
 * ask as often as it likes, with 1,000-character reasons), so the item keeps counts of everything
 * but only the last entries: well under 64 KiB whatever was asked.
 */
export const REBOOT_BOUNDS = Object.freeze({
  /** Refusals kept on the reboot (the newest); `refusalCount` counts all of them. */
  refusals: 20,
  /** History entries kept from the start (how the reboot began) ... */
  historyHead: 10,
  /** ... and from the end (what happened last); `historyDropped` counts those in between. */
  historyTail: 100,
  /** UTF-8 bytes of a refusal's or an extension's reason (characters, for ASCII). */
  reason: 200,
  /** UTF-8 bytes of a history entry's detail (details quote reasons and command output). */
  detail: 240,
});

export type RebootBounds = typeof REBOOT_BOUNDS;

/** The counters bounding keeps next to the entries it kept (see their notes on Reboot). */
export type BoundCounters = Pick<Reboot, 'refusalCount' | 'refusalsDropped' | 'refusalSecondsDropped' | 'historyDropped'>;

const ELLIPSIS = '…';

function utf8Bytes(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/**
 * `s` cut to at most `maxBytes` of UTF-8 (DynamoDB sizes items in UTF-8 bytes; for ASCII that is
 * `maxBytes` characters), on a code point boundary, ending in … when cut.
 */
export function truncate(s: string, maxBytes: number): string {
  if (s.length * 3 <= maxBytes) return s;
  let total = 0;
  for (const ch of s) total += utf8Bytes(ch.codePointAt(0) ?? 0);
  if (total <= maxBytes) return s;
  const budget = maxBytes - utf8Bytes(ELLIPSIS.codePointAt(0) ?? 0);
  let used = 0;
  let out = '';
  for (const ch of s) {
    const b = utf8Bytes(ch.codePointAt(0) ?? 0);
    if (used + b > budget) break;
    used += b;
    out += ch;
  }
  return out + ELLIPSIS;
}

/**
 * The reboot as it may be stored: reasons and details cut, refusals and history capped, counters
 * carried. Pure and idempotent (bounding a bounded reboot changes nothing), so the store applies it
 * on every write, whoever the writer: writers just append, as before.
 */
export function boundReboot<T extends Reboot & BoundCounters>(r: T, limits: RebootBounds = REBOOT_BOUNDS): T {
  const out: T = { ...r };
  let refusals = (r.refusals ?? []).map((x) =>
    x.reason.length * 3 > limits.reason ? { ...x, reason: truncate(x.reason, limits.reason) } : x,
  );
  let dropped = r.refusalsDropped ?? 0;
  let droppedSeconds = r.refusalSecondsDropped ?? 0;
  if (refusals.length > limits.refusals) {
    const gone = refusals.slice(0, refusals.length - limits.refusals);
    dropped += gone.length;
    droppedSeconds += gone.reduce((s, x) => s + (Number.isFinite(x.requested) ? x.requested : 0), 0);
    refusals = refusals.slice(-limits.refusals);
  }
  out.refusals = refusals;
  if (dropped > 0) {
    out.refusalsDropped = dropped;
    out.refusalSecondsDropped = droppedSeconds;
  }
  if (dropped > 0 || r.refusalCount !== undefined || refusals.length > 0) out.refusalCount = dropped + refusals.length;

  out.extensions = (r.extensions ?? []).map((x) =>
    x.reason.length * 3 > limits.reason ? { ...x, reason: truncate(x.reason, limits.reason) } : x,
  );

  let history = (r.history ?? []).map((h) =>
    h.detail.length * 3 > limits.detail ? { ...h, detail: truncate(h.detail, limits.detail) } : h,
  );
  const keep = limits.historyHead + limits.historyTail;
  if (history.length > keep) {
    out.historyDropped = (r.historyDropped ?? 0) + (history.length - keep);
    history = [...history.slice(0, limits.historyHead), ...history.slice(-limits.historyTail)];
  }
  out.history = history;
  return out;
}

/** Every refusal of a reboot, stored or dropped (what the compliance report counts). */
export function refusalTotal(r: Pick<Reboot, 'refusals'> & BoundCounters): number {
  return (r.refusalsDropped ?? 0) + (r.refusals?.length ?? 0);
}

/** Seconds asked for by every refusal of a reboot, stored or dropped. */
export function refusedSecondsTotal(r: Pick<Reboot, 'refusals'> & BoundCounters): number {
  return (r.refusalSecondsDropped ?? 0) + (r.refusals ?? []).reduce((s, x) => s + x.requested, 0);
}
