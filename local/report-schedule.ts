// Locally, the scheduled compliance report (EventBridge Scheduler in AWS) writes under DATA_DIR/reports.
// Every window gets exactly one report, also across a kill -9: the newest JSON file written says where
// the last run stopped, and the first tick (at start) catches up on the windows that ended meanwhile.
import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeReportWindow } from '../lambdas/handlers/report-job.ts';
import type { Deps, Logger } from '../lambdas/handlers/deps.ts';

/** A stack down for longer than this many windows gets the newest ones only (and a warning naming the gap). */
export const MAX_CATCH_UP_WINDOWS = 1000;

/**
 * A window is written this long after it ended: a reboot is dated when the API accepted its notice, but
 * recorded when the ingest took it from the queue, a moment later.
 */
export const REPORT_GRACE_MS = 5_000;

const STEM = /^compliance-(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})-(\d{3})Z\.json$/;

/** The start of the newest window whose JSON report is in `dir` (written last, so that window is whole). */
export function newestWrittenFrom(dir: string): number | null {
  let newest: number | null = null;
  for (const name of readdirSync(dir)) {
    const m = STEM.exec(name);
    if (!m) continue;
    const t = Date.parse(`${m[1]}T${m[2]}:${m[3]}:${m[4]}.${m[5]}Z`);
    if (Number.isFinite(t) && (newest === null || t > newest)) newest = t;
  }
  return newest;
}

/**
 * The windows to write now: from `lastTo` (the end of the last one written; null on a first start: only
 * the last whole window) to the last window boundary before `now`. Windows are aligned to multiples of
 * `windowMs`; one that starts off the grid (the interval changed) ends at the next boundary.
 */
export function dueWindows(
  lastTo: number | null,
  now: number,
  windowMs: number,
): { windows: Array<[number, number]>; skipped: [number, number] | null } {
  const due = Math.floor(now / windowMs) * windowMs;
  let start = lastTo ?? due - windowMs;
  let skipped: [number, number] | null = null;
  if (due - start > MAX_CATCH_UP_WINDOWS * windowMs) {
    skipped = [start, due - MAX_CATCH_UP_WINDOWS * windowMs];
    start = skipped[1];
  }
  const windows: Array<[number, number]> = [];
  while (start < due) {
    const end = (Math.floor(start / windowMs) + 1) * windowMs;
    windows.push([start, end]);
    start = end;
  }
  return { windows, skipped };
}

export interface ReportScheduleOptions {
  /**
   * False while the ingest backlog of the last run is not yet processed (after a kill -9): the reboots its
   * events make belong to windows that ended meanwhile, so those wait for it.
   */
  ready?: () => boolean;
  graceMs?: number;
}

export function startReportSchedule(
  deps: Deps,
  dir: string,
  windowSeconds: number,
  logger: Logger,
  opts: ReportScheduleOptions = {},
): { stop(): void } {
  mkdirSync(dir, { recursive: true });
  const windowMs = windowSeconds * 1000;
  const sink = {
    async put(name: string, _contentType: string, body: string) {
      // Write then rename: a reader never sees half a report.
      const tmp = join(dir, `.${name}.tmp`);
      writeFileSync(tmp, body);
      renameSync(tmp, join(dir, name));
    },
  };
  const written = newestWrittenFrom(dir);
  // The newest file's window ended one interval after it started (or at the next boundary, if the interval changed).
  let lastTo: number | null = written === null ? null : (Math.floor(written / windowMs) + 1) * windowMs;
  let running = false;
  const graceMs = opts.graceMs ?? REPORT_GRACE_MS;
  const tick = async () => {
    if (running || (opts.ready && !opts.ready())) return;
    running = true;
    try {
      const { windows, skipped } = dueWindows(lastTo, deps.clock.now().getTime() - graceMs, windowMs);
      if (skipped) {
        logger.warn('compliance reports skipped: the stack was down for too many windows', {
          from: new Date(skipped[0]).toISOString(),
          to: new Date(skipped[1]).toISOString(),
        });
      }
      for (const [from, to] of windows) {
        const res = await writeReportWindow(deps, sink, new Date(from), new Date(to));
        lastTo = to;
        logger.info('compliance report written', { dir, ...res });
      }
    } catch (err) {
      logger.error('compliance report failed', { error: String(err) });
    } finally {
      running = false;
    }
  };
  void tick();
  // At least every second: a window is written soon after its grace, and soon after the backlog is drained.
  const timer = setInterval(tick, Math.min(windowMs, 1000));
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
