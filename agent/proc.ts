// Process identity and process-group signalling: tells our own leftover hooks from an unrelated process with a reused pid.
import { sleep } from './backoff.ts';
import { fs } from './builtins.ts';

const { readdirSync, readFileSync } = fs;

/** Enough to recognise a process again after our own restart: pids are reused, (boot, start time) is not. */
export interface ProcessIdentity {
  pid: number;
  /** Linux boot id; null where /proc is not available. */
  bootId: string | null;
  /** Start time in clock ticks since boot (field 22 of /proc/PID/stat); null when unknown. */
  startTime: string | null;
}

/** Read once: it cannot change while this process lives, and identify() runs between a hook's spawn and its gate. */
let ownBootId: string | null | undefined;

export function bootId(): string | null {
  if (ownBootId !== undefined) return ownBootId;
  try {
    ownBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    ownBootId = null;
  }
  return ownBootId;
}

interface ProcStat {
  state: string;
  startTime: string;
}

function procStat(pid: number): ProcStat | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], startTime: rest[19] };
  } catch {
    return null;
  }
}

export function identify(pid: number): ProcessIdentity {
  return { pid, bootId: bootId(), startTime: procStat(pid)?.startTime ?? null };
}

function signalOk(target: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True while that very process (not a successor with the same pid) is alive and not a zombie. */
export function isSameProcessAlive(id: ProcessIdentity): boolean {
  const current = bootId();
  if (id.bootId === null || current === null) return signalOk(id.pid, 0); // no /proc: best effort
  if (id.bootId !== current) return false;
  const stat = procStat(id.pid);
  return stat !== null && stat.state !== 'Z' && stat.startTime === id.startTime;
}

/** True while any process of the group still exists (zombies included: the kernel keeps them in it). */
export function groupExists(pgid: number): boolean {
  return signalOk(-pgid, 0);
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  return signalOk(-pgid, signal);
}

/** SIGTERM the group, give it graceMs to go, then SIGKILL whatever is left. */
export async function terminateGroup(pgid: number, graceMs: number): Promise<'gone' | 'killed'> {
  if (!signalGroup(pgid, 'SIGTERM')) return 'gone';
  const until = Date.now() + graceMs;
  for (let round = 1; Date.now() < until; round++) {
    await sleep(Math.min(50, Math.max(1, until - Date.now())));
    if (!groupExists(pgid)) return 'gone';
    // A container's pid 1 may never reap reparented grandchildren, and zombies stay in the group:
    // now and then look whether anything in it is still alive.
    if (round % 5 === 0 && !hasLiveMember(pgid)) return 'gone';
  }
  signalGroup(pgid, 'SIGKILL');
  return 'killed';
}

/** Scans /proc for a member of the group that is not a zombie (true when /proc is unavailable). */
export function hasLiveMember(pgid: number): boolean {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return groupExists(pgid);
  }
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[2]) === pgid && rest[0] !== 'Z') return true;
    } catch {
      // the process went away while we looked
    }
  }
  return false;
}

/**
 * Kills what is left of a hook that ran under a previous agent process (killed with -9).
 * The group id is the hook's pid; it is ours only on the same boot and, while the leader
 * still exists, only if the leader is the process we started.
 */
export async function killLeftoverGroup(id: ProcessIdentity, graceMs: number): Promise<boolean> {
  const current = bootId();
  if (id.bootId === null || current === null || id.bootId !== current) return false;
  const leader = procStat(id.pid);
  if (leader !== null && leader.startTime !== id.startTime) return false; // pid reused by another process
  if (!groupExists(id.pid) || !hasLiveMember(id.pid)) return false;
  await terminateGroup(id.pid, graceMs);
  return true;
}
