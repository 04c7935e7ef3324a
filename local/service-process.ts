// Runs one local emulator (dynalite, fauxqs) in a child process: its CPU on the other core, and it dies with us.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import module from 'node:module';

export interface ServiceProcess {
  port: number;
  pid: number;
  /** What the child said beside its port when it first listened (fauxqs: the messages it released). */
  hello: Record<string, unknown>;
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

export interface Supervision {
  /** Name in messages: 'dynalite', 'fauxqs'. */
  name: string;
  /** Arguments for a restart under a running stack, when they differ from the first start's. */
  restartArgs?: string[];
  /** Told of each unexpected exit and whether the child was started again. */
  onExit?: (info: { name: string; code: number | null; signal: NodeJS.Signals | null; restarted: boolean; error?: string }) => void;
  /** Called when the child cannot be kept alive (it died too often, or its port is gone): the stack is unusable. */
  onGiveUp?: (error: Error) => void;
}

export class ServiceDied extends Error {
  override readonly name = 'ServiceDied';
}

// A child that dies this often within the window is not coming back by being restarted.
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

/**
 * dynalite and fauxqs allocate short-lived garbage per request; with V8's default young generation
 * (semi-spaces growing to 16 MB) dynalite under 1,000 reboots' writes held 225 MB, with 2 MB semi-spaces
 * 127 MB (MALLOC_ARENA_MAX=2 changed nothing). Issue 19; bench/README.md, "Round 2".
 */
const SERVICE_V8_FLAGS = ['--max-semi-space-size=2'];

/** Live children by script, so a diagnostic (the bench) can ask each for its `process.memoryUsage()`. */
const live = new Map<ChildProcess, string>();

/** Each live child's `process.memoryUsage()` (V8 heap vs the rest), by script file name; a child that does not answer within 1 s is left out. */
export async function serviceMemoryUsage(): Promise<Record<string, NodeJS.MemoryUsage>> {
  const out: Record<string, NodeJS.MemoryUsage> = {};
  await Promise.all(
    [...live].map(
      ([child, script]) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(done, 1000);
          function done() {
            clearTimeout(timer);
            child.off('message', onMessage);
            resolve();
          }
          function onMessage(m: { memoryUsage?: NodeJS.MemoryUsage }) {
            if (!m?.memoryUsage) return;
            out[script.replace(/^.*\//, '').replace(/\.[a-z]+$/, '')] = m.memoryUsage;
            done();
          }
          child.on('message', onMessage);
          try {
            child.send('memoryUsage');
          } catch {
            done();
          }
        }),
    ),
  );
  return out;
}

async function spawnChild(
  script: string,
  args: string[],
  port: number,
): Promise<{ child: ChildProcess; port: number; hello: Record<string, unknown> }> {
  // SERVICE_PORT: a restarted child listens where the stack's clients already point.
  const child: ChildProcess = spawn(process.execPath, [...SERVICE_V8_FLAGS, script, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, SERVICE_PORT: String(port) },
  });
  live.set(child, script);
  child.once('exit', () => live.delete(child));
  const hello = await new Promise<Record<string, unknown> & { port: number }>((resolve, reject) => {
    child.once('message', (m: { port?: number; error?: string }) =>
      m?.port ? resolve(m as typeof hello) : reject(new Error(m?.error ?? `${script} did not report its port`)),
    );
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code} before listening`)));
    child.once('error', reject);
  });
  return { child, port: hello.port, hello };
}

/**
 * Starts `node script ...args`; the child reports `{port}` over IPC once it listens, and exits when
 * the IPC channel closes (our exit, even by kill -9) or on SIGTERM. With `supervise`, a child that
 * dies on its own is started again on the same port (its data is on disk), a few times at most.
 */
export async function startServiceProcess(
  script: string,
  args: string[],
  pidFile?: string,
  supervise?: Supervision,
  fixedPort = 0,
): Promise<ServiceProcess> {
  if (pidFile) await reapOrphan(pidFile, script);
  let { child, port, hello } = await spawnChild(script, args, fixedPort);
  if (pidFile) writeFileSync(pidFile, String(child.pid));
  let stopping = false;
  const restarts: number[] = [];
  let exited = new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));

  const watch = (c: ChildProcess) => {
    c.once('exit', (code, signal) => {
      if (stopping || !supervise) return;
      const now = Date.now();
      while (restarts.length > 0 && restarts[0] < now - RESTART_WINDOW_MS) restarts.shift();
      if (restarts.length >= MAX_RESTARTS) {
        supervise.onExit?.({ name: supervise.name, code, signal, restarted: false });
        supervise.onGiveUp?.(
          new ServiceDied(
            `${supervise.name} died ${MAX_RESTARTS + 1} times within ${RESTART_WINDOW_MS / 1000} s (last: ${signal ?? `exit ${code}`}); giving up`,
          ),
        );
        return;
      }
      restarts.push(now);
      spawnChild(script, supervise.restartArgs ?? args, port).then(
        (next) => {
          if (stopping) {
            next.child.kill('SIGTERM');
            return;
          }
          child = next.child;
          if (pidFile) writeFileSync(pidFile, String(child.pid));
          exited = new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
          supervise.onExit?.({ name: supervise.name, code, signal, restarted: true });
          watch(child);
        },
        (err: Error) => {
          supervise.onExit?.({ name: supervise.name, code, signal, restarted: false, error: err.message });
          supervise.onGiveUp?.(
            new ServiceDied(
              `${supervise.name} died (${signal ?? `exit ${code}`}) and could not be started again on port ${port}: ${err.message}`,
            ),
          );
        },
      );
    });
  };
  watch(child);

  return {
    port,
    hello,
    get pid() {
      return child.pid!;
    },
    async stop() {
      stopping = true;
      child.kill('SIGTERM');
      await exited;
      if (pidFile) rmSync(pidFile, { force: true });
    },
  };
}

/**
 * In the child: tells the parent something over IPC. A child restarted just as its stack stopped can
 * finish listening after the parent is gone; writing to the closed channel would throw EPIPE as an
 * unhandled 'error' event. There is no one left to serve: it exits quietly instead.
 */
export function tellParent(message: Record<string, unknown>): void {
  if (!process.connected) process.exit(0);
  process.send!(message, undefined, undefined, (err) => {
    if (err) process.exit(0);
  });
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
  process.on('message', (m) => {
    if (m === 'memoryUsage') process.send?.({ memoryUsage: process.memoryUsage() });
  });
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The stack's start enabled the compile cache (NODE_COMPILE_CACHE); Node writes it at exit, which a kill -9 never
  // reaches: write it now, so the next start of this child loads compiled code.
  module.flushCompileCache?.();
}
