// Runs one hook executable for one command: own process group, stdin JSON, capped output, killed at its deadline.
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { formatOutput, TailBuffer } from './output.ts';
import { identify, terminateGroup, type ProcessIdentity } from './proc.ts';
import { isoTime } from './iso-time.ts';
import { fs, spawn } from './builtins.ts';
import type { GateChild, WarmGate } from './warm-gate.ts';

const { accessSync, constants, statSync } = fs;

export type HookLookup = { kind: 'ok'; path: string } | { kind: 'missing'; path: string; reason: string };

/** The hook for a command type: `DIR/<type>`, a regular executable file. */
export function findHook(hooksDir: string, type: string): HookLookup {
  const path = join(hooksDir, type);
  try {
    if (!statSync(path).isFile()) return { kind: 'missing', path, reason: 'not a regular file' };
  } catch {
    return { kind: 'missing', path, reason: 'no such file' };
  }
  try {
    accessSync(path, constants.X_OK);
  } catch {
    return { kind: 'missing', path, reason: 'not executable' };
  }
  return { kind: 'ok', path };
}

export interface HookOutcome {
  status: 'succeeded' | 'failed' | 'skipped';
  output: string;
  exitCode: number | null;
  signal: string | null;
  /** Why the agent killed it, when it did. */
  killed?: 'deadline' | 'stop';
  durationMs: number;
}

export interface HookRun {
  readonly pid: number | undefined;
  /** Known once spawned: what the journal records to find leftovers after our own crash. */
  readonly identity: ProcessIdentity | undefined;
  /** It ran through the agent's pre-started gate shell (no fork on the command's path). */
  readonly warm: boolean;
  readonly done: Promise<HookOutcome>;
  /** A redelivery after an extension carries a moved deadline. */
  setDeadline(deadline: Date): void;
  /** The agent is stopping: give the hook until min(deadline, now + graceMs), then kill it. */
  stop(graceMs: number): void;
}

export interface HookSpec {
  path: string;
  stdin: string;
  /** What the hook inherits, with commandEnv on top. */
  env: NodeJS.ProcessEnv;
  /** The variables that differ per command: a warm gate exports them from lines on its stdin. */
  commandEnv?: Readonly<Record<string, string>>;
  cwd: string;
  deadline: Date;
  maxOutputBytes: number;
  killGraceMs: number;
  /** Called once the process group exists and before the hook runs: journal it here. */
  onSpawn?: (identity: ProcessIdentity) => void;
  /** A gate shell started ahead (warm-gate.ts): used when it runs this hook exactly as a cold spawn would. */
  warm?: WarmGate;
  /** How far the server's clock is ahead of ours: `deadline` is on our clock, the output names the server's. */
  serverAheadMs?: number;
}

/**
 * $0 is the hook. `exec` keeps the pid, so the group id and identity recorded stay the hook's.
 * The gate is the first line of stdin: the shell's `read` takes a pipe byte by byte, so the hook
 * reads exactly the command JSON after it. `2>&1` gives the hook one pipe for its output, read in
 * the order it was written. Two pipes instead of four (a separate gate and stderr): each costs the
 * agent a socketpair and a stream at every spawn, on the path from a command to its hook.
 */
const GATE = 'IFS= read -r go && [ "$go" = go ] && exec "$0" 2>&1; exit 125';

/** Groups of hooks currently running, so a hard exit of the agent can take them down with it. */
export const liveGroups = new Set<number>();

// setTimeout fires at once for delays beyond 2^31-1 ms (~24.8 days); longer waits are re-armed.
const MAX_TIMER_MS = 2_147_483_647;

export function startHook(spec: HookSpec): HookRun {
  const began = Date.now();
  const tail = new TailBuffer(spec.maxOutputBytes);
  let deadline = spec.deadline;
  let stopAt: number | null = null;
  let killed: 'deadline' | 'stop' | undefined;
  let killing: Promise<'gone' | 'killed'> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let identity: ProcessIdentity | undefined;

  // The hook starts behind a gate: a shell waits for "go" on stdin, sent only once onSpawn has
  // recorded the process group. A crash of the agent in between leaves no hook running unrecorded.
  // A warm gate was forked before the command came; everything from here on is the same for both.
  const warm = spec.warm?.take(spec) ?? null;
  const child = warm?.child ?? spawnGate(spec);
  const pid = child.pid;
  // A hook that does not read its stdin closes the pipe early (its right); a killed shell too.
  child.stdin.on('error', () => {});
  if (pid !== undefined) {
    liveGroups.add(pid);
    identity = warm?.identity ?? identify(pid);
    try {
      spec.onSpawn?.(identity);
    } catch (err) {
      child.stdin.destroy(); // EOF on the gate: the shell exits without running the hook
      throw err;
    }
    child.stdin.end((warm?.lines ?? 'go\n') + spec.stdin);
  }

  const killAt = () => Math.min(deadline.getTime(), stopAt ?? Infinity);
  const arm = () => {
    clearTimeout(timer);
    if (killing || pid === undefined) return;
    const delay = killAt() - Date.now();
    if (delay <= 0) return kill();
    timer = setTimeout(arm, Math.min(delay, MAX_TIMER_MS));
  };
  const kill = () => {
    if (killing || pid === undefined) return;
    killed = stopAt !== null && stopAt <= deadline.getTime() ? 'stop' : 'deadline';
    killing = terminateGroup(pid, spec.killGraceMs);
  };

  const done = new Promise<HookOutcome>((resolve) => {
    let spawnError: Error | undefined;
    child.on('error', (err) => {
      spawnError = err;
    });
    child.stdout.on('data', (c: Buffer) => tail.push(c));

    child.on('close', () => {}); // stdio may stay open in grandchildren; 'exit' below decides
    const finish = async (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      if (killing) await killing;
      // Grandchildren left in the background may hold the pipes; take what is buffered and let go.
      await drain(child.stdout);
      if (pid !== undefined) liveGroups.delete(pid);
      const durationMs = Date.now() - began;
      const header: string[] = [];
      let status: HookOutcome['status'] = 'failed';
      if (spawnError && pid === undefined) {
        header.push(`cannot execute hook ${spec.path}: ${spawnError.message}`);
      } else if (killed === 'deadline') {
        header.push(
          `deadline exceeded: the command's deadline ${isoTime(new Date(deadline.getTime() + (spec.serverAheadMs ?? 0)))} passed after ${(durationMs / 1000).toFixed(1)} s; ` +
            `killed the hook's process group (SIGTERM, then SIGKILL after ${spec.killGraceMs / 1000} s)`,
        );
      } else if (killed === 'stop') {
        header.push(`agent stopping: the hook did not finish within the stop grace period; killed its process group`);
      } else if (code === 0) {
        status = 'succeeded';
      } else if (signal) {
        header.push(`hook killed by signal ${signal}`);
      } else {
        header.push(`hook exited with code ${code}`);
      }
      resolve({ status, output: formatOutput(header, tail, spec.maxOutputBytes), exitCode: code, signal, killed, durationMs });
    };
    if (pid === undefined) {
      // spawn failed outright (ENOENT, EACCES...): 'error' fires, 'exit' does not
      child.once('error', () => void finish(null, null));
    } else {
      child.once('exit', (code, signal) => void finish(code, signal));
    }
  });

  arm();
  return {
    pid,
    identity,
    warm: warm !== null,
    done,
    setDeadline(d: Date) {
      deadline = d;
      arm();
    },
    stop(graceMs: number) {
      stopAt = Date.now() + graceMs;
      arm();
    },
  };
}

/** The cold path: fork the agent and exec the gate shell, now. */
function spawnGate(spec: HookSpec): GateChild {
  return spawn('/bin/sh', ['-c', GATE, spec.path], {
    cwd: spec.cwd,
    env: spec.commandEnv ? { ...spec.env, ...spec.commandEnv } : spec.env,
    // Its own process group: the deadline kills the hook and everything it started, not the agent.
    detached: true,
    // The shell's own stderr: it writes nothing there (an exec failure goes to stdout, after 2>&1).
    stdio: ['pipe', 'pipe', 'ignore'],
  }) as GateChild;
}

/** Waits briefly for both pipes to end, then destroys them (a background grandchild may keep them open). */
function drain(...streams: Readable[]): Promise<void> {
  return new Promise((resolve) => {
    let open = streams.filter((s) => !s.readableEnded).length;
    const timer = setTimeout(finish, 200);
    function finish() {
      clearTimeout(timer);
      for (const s of streams) s.destroy();
      resolve();
    }
    if (open === 0) return finish();
    for (const s of streams) {
      s.once('end', () => {
        if (--open === 0) finish();
      });
    }
  });
}
