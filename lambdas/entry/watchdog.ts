// Lambda entry: every few minutes, counts nodes whose BMC has gone quiet (BMCs drop subscriptions silently).
import { quietBmcs } from '../handlers/watchdog.ts';
import { deps, powertoolsMetrics } from './runtime.ts';

const QUIET_AFTER_SECONDS = Number(process.env.QUIET_BMC_SECONDS ?? 3600);

export const handler = async () => {
  try {
    const quiet = await quietBmcs(deps, QUIET_AFTER_SECONDS);
    deps.metrics.count('QuietBmcs', quiet.length);
    if (quiet.length) deps.logger.warn('quiet BMCs', { nodes: quiet.slice(0, 100), count: quiet.length });
    return { quiet: quiet.length };
  } finally {
    powertoolsMetrics.publishStoredMetrics();
  }
};
