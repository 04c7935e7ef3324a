// Runs one local emulator (dynalite, fauxqs) in a child process: its CPU on the other core, and it dies with us.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';

export interface ServiceProcess {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A child left by a stack that was killed still holds its files' locks: make sure it is gone. */
async function reapOrphan(pidFile: string, script: string): Promise<void> {
  let pid: number | undefined;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim()) || undefined;
  } catch {
    return;
  }
  if (!pid || pid === process.pid || !alive(pid)) return;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    /* not Linux, or gone */
  }
  // Only ours: a recycled pid that now belongs to something else is left alone.
  if (cmdline && !cmdline.includes(script)) return;
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
}

/**
 * Starts `node script ...args`; the child reports `{port}` over IPC once it listens, and exits when
 * the IPC channel closes (our exit, even by kill -9) or on SIGTERM.
 */
export async function startServiceProcess(script: string, args: string[], pidFile?: string): Promise<ServiceProcess> {
  if (pidFile) await reapOrphan(pidFile, script);
  const child: ChildProcess = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port?: number; error?: string }) => (m?.port ? resolve(m.port) : reject(new Error(m?.error ?? `${script} did not report its port`))));
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code} before listening`)));
    child.once('error', reject);
  });
  if (pidFile) writeFileSync(pidFile, String(child.pid));
  const exited = new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
  return {
    port,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      if (pidFile) rmSync(pidFile, { force: true });
    },
  };
}

/** In the child: exit when the parent goes (the IPC channel closes) or asks (SIGTERM). */
export function serveUntilParentGoes(close: () => Promise<void>): void {
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
