// JSON-lines logger on stderr for the local stack (the Lambdas use Powertools' logger in AWS).
import type { Logger } from '../lambdas/handlers/deps.ts';

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;

export function jsonLogger(level: keyof typeof LEVELS = 'info', service = 'xpu-reboot-coordinator'): Logger {
  const min = LEVELS[level];
  const write = (lvl: keyof typeof LEVELS, msg: string, extra?: Record<string, unknown>) => {
    if (LEVELS[lvl] < min) return;
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: lvl, service, msg, ...extra }) + '\n');
  };
  return {
    info: (m, e) => write('info', m, e),
    warn: (m, e) => write('warn', m, e),
    error: (m, e) => write('error', m, e),
  };
}
