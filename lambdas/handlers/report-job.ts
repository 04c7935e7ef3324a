// The scheduled compliance report: the same computation as the API, for the last full window.
import { computeComplianceReport } from '../core/report/compute.ts';
import { renderReport } from '../core/report/render.ts';
import { publicReboot } from './views.ts';
import type { Deps } from './deps.ts';

export interface ReportSink {
  put(name: string, contentType: string, body: string): Promise<void>;
}

/** Reboots notified this long before `from` are read too, to find overlaps across the window's start. */
const LOOKBACK_MS = 24 * 3600 * 1000;

/** The report over [from, to), checked against each node's own policy. */
export async function complianceReport(deps: Deps, from: Date, to: Date) {
  const index = await deps.inventory();
  const [reboots, rollouts] = await Promise.all([
    deps.store.rebootsNotifiedBetween(new Date(from.getTime() - LOOKBACK_MS), to),
    deps.rollouts ? deps.rollouts.rolloutsCreatedBetween(from, to) : Promise.resolve([]),
  ]);
  return computeComplianceReport(reboots.map(publicReboot), {
    rollouts,
    from,
    to,
    generatedAt: deps.clock.now(),
    policy: (node: string) => index.node(node)?.policy,
  });
}

/** Reports the window [to - windowSeconds, to), where `to` is the last whole window boundary. */
export async function writeScheduledReport(
  deps: Deps,
  sink: ReportSink,
  windowSeconds: number,
): Promise<{ from: string; to: string; reboots: number }> {
  const now = deps.clock.now().getTime();
  const to = new Date(Math.floor(now / (windowSeconds * 1000)) * windowSeconds * 1000);
  return writeReportWindow(deps, sink, new Date(to.getTime() - windowSeconds * 1000), to);
}

/** The file stem of the report of the window starting at `from`: `compliance-2024-05-01T00-00-00-000Z`. */
export function reportStem(from: Date): string {
  return `compliance-${from.toISOString().replace(/[:.]/g, '-')}`;
}

/**
 * Writes the report of [from, to) as HTML, then JSON: a JSON file present means its window is written
 * whole (local/report-schedule.ts resumes after the newest one).
 */
export async function writeReportWindow(
  deps: Deps,
  sink: ReportSink,
  from: Date,
  to: Date,
): Promise<{ from: string; to: string; reboots: number }> {
  const report = await complianceReport(deps, from, to);
  const stem = reportStem(from);
  for (const format of ['html', 'json'] as const) {
    const out = renderReport(report, format);
    await sink.put(`${stem}.${format}`, out.contentType, out.body);
  }
  return { from: from.toISOString(), to: to.toISOString(), reboots: report.reboots.length };
}
