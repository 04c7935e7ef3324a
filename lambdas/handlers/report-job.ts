// The scheduled compliance report: the same computation as the API, for the last full window.
import { computeComplianceReport } from '../core/report/compute.ts';
import { renderReport } from '../core/report/render.ts';
import { publicReboot } from './api.ts';
import type { Deps } from './deps.ts';

export interface ReportSink {
  put(name: string, contentType: string, body: string): Promise<void>;
}

/** Reports the window [to - windowSeconds, to), where `to` is the last whole window boundary. */
export async function writeScheduledReport(deps: Deps, sink: ReportSink, windowSeconds: number): Promise<{ from: string; to: string; reboots: number }> {
  const now = deps.clock.now().getTime();
  const to = new Date(Math.floor(now / (windowSeconds * 1000)) * windowSeconds * 1000);
  const from = new Date(to.getTime() - windowSeconds * 1000);
  const reboots = await deps.store.rebootsNotifiedBetween(from, to);
  const report = computeComplianceReport(reboots.map(publicReboot), { from, to, generatedAt: new Date(now) });
  const stem = `compliance-${from.toISOString().replace(/[:.]/g, '-')}`;
  for (const format of ['json', 'html'] as const) {
    const out = renderReport(report, format);
    await sink.put(`${stem}.${format}`, out.contentType, out.body);
  }
  return { from: from.toISOString(), to: to.toISOString(), reboots: reboots.length };
}
