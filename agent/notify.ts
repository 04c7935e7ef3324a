// systemd readiness and watchdog: READY=1 once, WATCHDOG=1 every WatchdogSec/2, through the systemd-notify binary.
import { join } from 'node:path';
import { fs, spawn } from './builtins.ts';
import type { Logger } from './log.ts';

const { accessSync, constants } = fs;

/**
 * Node has no unix datagram sockets, so the agent cannot write to $NOTIFY_SOCKET itself. It runs
 * `systemd-notify` instead; the unit sets NotifyAccess=all so a message from that child counts.
 * systemd-notify (systemd >= 246) waits until the manager has read the message, so the child's
 * exit does not lose it. Without NOTIFY_SOCKET (not under systemd) this does nothing.
 */
export function startNotifier(log: Logger, env: NodeJS.ProcessEnv = process.env): { stop(): void } {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return { stop() {} };
  const bin = findOnPath('systemd-notify', env.PATH);
  const usec = Number(env.WATCHDOG_USEC);
  const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === process.pid;
  if (!bin) {
    log.warn('NOTIFY_SOCKET is set but systemd-notify is not on PATH: no readiness or watchdog pings (remove WatchdogSec= from the unit)');
    return { stop() {} };
  }
  const send = (msg: string) => {
    const child = spawn(bin, [msg], { stdio: 'ignore', env: { PATH: env.PATH ?? '', NOTIFY_SOCKET: socket } });
    child.on('error', (err) => log.warn('systemd-notify failed', { error: err.message }));
  };
  send('READY=1');
  let timer: NodeJS.Timeout | undefined;
  if (forUs && Number.isFinite(usec) && usec > 0) {
    // Pinged from the event loop: a blocked loop (or a hung agent) misses pings and systemd restarts it.
    timer = setInterval(() => send('WATCHDOG=1'), Math.max(100, usec / 2000));
    timer.unref();
  }
  return {
    stop() {
      clearInterval(timer);
      send('STOPPING=1');
    },
  };
}

function findOnPath(name: string, path = ''): string | null {
  for (const dir of [...path.split(':').filter(Boolean), '/usr/bin', '/bin']) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // next
    }
  }
  return null;
}
