// Lambda entry: every few minutes, counts nodes whose BMC has gone quiet (BMCs drop subscriptions silently).
import { quietBmcs } from '../handlers/watchdog.ts';
import { deps, env, powertoolsMetrics } from './runtime.ts';

export const handler = async () => {
  try {
    const quiet = await quietBmcs(deps, env.QUIET_BMC_SECONDS);
    deps.metrics.count('QuietBmcs', quiet.length);
    if (quiet.length) deps.logger.warn('quiet BMCs', { nodes: quiet.slice(0, 100), count: quiet.length });
    return { quiet: quiet.length };
  } finally {
    powertoolsMetrics.publishStoredMetrics();
  }
};
