// Maintenance windows (policy.windows): weekly local-time ranges in an IANA time zone, evaluated with Intl.

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/**
 * A weekly window: on each of `days` (local to `tz`), from `start` to `end` (HH:MM, 24 h).
 * `end` at or before `start` runs past midnight into the next day; the window belongs to the day
 * it starts on. Local wall-clock time is what counts, so a window across a DST change is an hour
 * shorter or longer in real time, and a start that falls in the skipped hour opens at the first
 * local minute after it.
 */
export interface MaintenanceWindow {
  days: Weekday[];
  start: string;
  end: string;
  tz: string;
}

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

export function minutesOf(hhmm: string): number {
  const m = HHMM.exec(hhmm);
  if (!m) throw new Error(`'${hhmm}' is not a time HH:MM`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/** Throws with a readable message when a time zone is not one Intl knows. */
export function checkTimeZone(tz: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new Error(`'${tz}' is not an IANA time zone`);
  }
}

// One formatter per zone: building one costs far more than using it.
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(tz, f);
  }
  return f;
}

/** The local weekday (0 = Sunday) and minute of the day at `at` in `tz`. */
export function localTime(at: Date, tz: string): { day: number; minute: number } {
  let weekday = '';
  let hour = 0;
  let minute = 0;
  for (const p of formatter(tz).formatToParts(at)) {
    if (p.type === 'weekday') weekday = p.value.toLowerCase().slice(0, 3);
    else if (p.type === 'hour') hour = Number(p.value);
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return { day: WEEKDAYS.indexOf(weekday as Weekday), minute: hour * 60 + minute };
}

function inWindow(w: MaintenanceWindow, at: Date): boolean {
  const { day, minute } = localTime(at, w.tz);
  const start = minutesOf(w.start);
  const end = minutesOf(w.end);
  const on = (d: number) => w.days.includes(WEEKDAYS[(d + 7) % 7]);
  if (end > start) return on(day) && minute >= start && minute < end;
  // Past midnight: the evening part on a listed day, the morning part on the day after one.
  return (on(day) && minute >= start) || (on(day - 1) && minute < end);
}

/** True when no windows are set (always open), or `at` falls in one of them. */
export function isWithinWindows(windows: readonly MaintenanceWindow[] | undefined, at: Date): boolean {
  if (!windows || windows.length === 0) return true;
  return windows.some((w) => inWindow(w, at));
}

const MINUTE = 60_000;
/** A week and a day: every weekly window opens within it. */
const HORIZON_MINUTES = 8 * 24 * 60;

/**
 * When the windows next open at or after `at`: `at` itself when open now, else the first whole
 * minute that is inside one; null when none opens within 8 days (no day listed). Steps a minute at a
 * time: windows are in whole minutes, and this way DST gaps and repeats need no special case.
 */
export function nextWindowOpening(windows: readonly MaintenanceWindow[] | undefined, at: Date): Date | null {
  if (isWithinWindows(windows, at)) return at;
  let t = Math.floor(at.getTime() / MINUTE) * MINUTE + MINUTE;
  for (let i = 0; i < HORIZON_MINUTES; i++, t += MINUTE) if (isWithinWindows(windows, new Date(t))) return new Date(t);
  return null;
}
