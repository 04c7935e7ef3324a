// Locally, the scheduled compliance report (EventBridge Scheduler in AWS) writes under DATA_DIR/reports.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeScheduledReport } from '../lambdas/handlers/report-job.ts';
import type { Deps, Logger } from '../lambdas/handlers/deps.ts';

export function startReportSchedule(deps: Deps, dir: string, windowSeconds: number, logger: Logger): { stop(): void } {
  mkdirSync(dir, { recursive: true });
  const sink = {
    async put(name: string, _contentType: string, body: string) {
      // Write then rename: a reader never sees half a report.
      const tmp = join(dir, `.${name}.tmp`);
      writeFileSync(tmp, body);
      renameSync(tmp, join(dir, name));
    },
  };
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const res = await writeScheduledReport(deps, sink, windowSeconds);
      logger.info('compliance report written', { dir, ...res });
    } catch (err) {
      logger.error('compliance report failed', { error: String(err) });
    } finally {
      running = false;
    }
  };
  const timer = setInterval(tick, windowSeconds * 1000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
