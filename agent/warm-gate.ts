// One gate shell started ahead of the next command ("warm gate"), so fork() is off the path from a command to its hook.
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { spawn } from './builtins.ts';
import { identify, isSameProcessAlive, type ProcessIdentity } from './proc.ts';

export type GateChild = ChildProcessByStdio<Writable, Readable, null>;

/**
 * The cold gate (hook.ts) runs `exec "$0"` once "go" arrives. The warm one is started before its
 * hook is known, so it reads everything that differs per command from stdin, one line each:
 *   <hook path>            → $1 (positional parameters are not exported: the hook's env stays as cold)
 *   <hooks dir>            → cd -P there, now (a hooks directory replaced since the gate started counts)
 *   <inherited PWD>        → PWD as the cold shell's start-up sets it (below)
 *   NAME=value ...         → export (the per-command variables only: dash reads a pipe byte by byte)
 *   go                     → exec the hook, output on the one pipe (2>&1); the command JSON follows
 * EOF or any other line before "go" (the agent died, or closed it on stop) → exit 125, nothing run.
 * It reads only from its own stdin, which only the agent can write; lines are data, never evaluated.
 *
 * What the hook sees is what the cold gate gives it. The cold shell starts in the hooks directory
 * and dash sets PWD at start-up: the inherited PWD when it is absolute and names that directory,
 * else the physical path. The gate's `cd -P` sets the physical path (and OLDPWD), so it puts OLDPWD
 * back as inherited and applies the same rule to the inherited PWD, at the time of the command
 * (not the gate's own start-up PWD: the directory may have been replaced in between). `go` ends
 * up "go" as in the cold gate. One line, so dash's error messages say line 1 as the cold gate's
 * do ("<$0>: 1: exec: …: not found").
 */
export const WARM_GATE_SCRIPT =
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansions, not a JavaScript template
  'IFS= read -r go && set -- "$go" "${OLDPWD-}" "${OLDPWD+1}" && IFS= read -r go && cd -P -- "$go" 2>&1 && IFS= read -r go || exit 125; ' +
  'if [ "$3" ]; then OLDPWD=$2; else unset OLDPWD; fi; case $go in /*) [ "$go" -ef . ] && PWD=$go;; esac; ' +
  'while IFS= read -r go; do case $go in go) exec "$1" 2>&1;; *=*) export "$go";; *) break;; esac; done; exit 125';

/** $0 of the warm gate: what `ps` shows at the end of its command line. */
export const WARM_GATE_NAME = 'rebootctl-hook-gate';

/** A gate handed to one command: the process, its identity (read when it started) and the lines that open it. */
export interface TakenGate {
  child: GateChild;
  identity: ProcessIdentity;
  /** The per-command lines ending in "go"; the command JSON goes right after. */
  lines: string;
}

/** What a hook run needs from the gate to be exactly the cold spawn's. */
export interface GateRequest {
  path: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  commandEnv?: Readonly<Record<string, string>>;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A line of the protocol cannot hold these: `read` ends at \n, and a NUL cannot be in a C string. */
const UNCARRIABLE = /[\n\0]/;

type Ref = { ref(): void; unref(): void };

/**
 * Holds at most one idle gate shell for one agent. The shell has the agent's hook environment
 * minus the per-command variables, and the hooks directory as cwd; it is journaled only when a
 * command takes it, and never counted as a running hook while idle.
 */
export class WarmGate {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  #idle: { child: GateChild; identity: ProcessIdentity } | null = null;
  #closed = false;

  constructor(env: NodeJS.ProcessEnv, cwd: string) {
    this.env = env;
    this.cwd = cwd;
  }

  /** The idle gate's pid (for logs and tests). */
  get pid(): number | undefined {
    return this.#idle?.child.pid;
  }

  /** Starts a gate shell unless one is idle; call it off the command path (it forks the agent). */
  fill(): void {
    if (this.#closed || this.#idle) return;
    let child: GateChild;
    try {
      child = spawn('/bin/sh', ['-c', WARM_GATE_SCRIPT, WARM_GATE_NAME], {
        cwd: this.cwd,
        env: this.env,
        detached: true, // its own process group, as the cold gate: pid == group id == the journaled identity
        stdio: ['pipe', 'pipe', 'ignore'],
      }) as GateChild;
    } catch {
      return; // spawn throws for some errors (ENOMEM...): off the path, the next command simply spawns cold
    }
    // A failed spawn (hooks directory gone, no /bin/sh) leaves no pid: the next command spawns cold,
    // and the next fill tries again (one attempt per command, never a loop).
    child.on('error', () => {});
    child.stdin.on('error', () => {});
    const pid = child.pid;
    if (pid === undefined) return;
    // While idle it must not keep the agent's event loop alive; a command that takes it refs it again.
    for (const h of [child, child.stdin, child.stdout] as unknown as Ref[]) h.unref();
    const idle = { child, identity: identify(pid) };
    this.#idle = idle;
    child.once('exit', () => {
      // Killed or gone while idle: forget it (the next command spawns cold, then fills again).
      if (this.#idle !== idle) return;
      this.#idle = null;
      child.stdout.destroy();
    });
  }

  /**
   * The idle gate for this hook, or null when the warm path cannot be exactly the cold one (the
   * caller then spawns cold): none idle (still starting, or taken by the command before), it
   * already exited (killed, OOM), a different env or cwd than it was started with, or a value its
   * line protocol cannot carry (a newline or NUL; a variable name that is not a shell name).
   */
  take(req: GateRequest): TakenGate | null {
    const idle = this.#idle;
    if (!idle || this.#closed) return null;
    const { child, identity } = idle;
    // exitCode/signalCode are set only once Node has handled the SIGCHLD; /proc says it sooner.
    if (child.exitCode !== null || child.signalCode !== null || !isSameProcessAlive(identity)) {
      this.#discard();
      return null;
    }
    if (req.env !== this.env || req.cwd !== this.cwd) return null;
    const lines = gateLines(req);
    if (lines === null) return null;
    this.#idle = null;
    for (const h of [child, child.stdin, child.stdout] as unknown as Ref[]) h.ref();
    return { child, identity, lines };
  }

  /** The agent is stopping: EOF on the idle gate's stdin makes it exit 125 without running anything. */
  close(): void {
    this.#closed = true;
    this.#discard();
  }

  #discard(): void {
    const idle = this.#idle;
    this.#idle = null;
    if (!idle) return;
    idle.child.stdin.end();
    idle.child.stdout.destroy();
  }
}

/** The lines that open a warm gate for this hook, or null when one of them cannot be carried. */
export function gateLines(req: GateRequest): string | null {
  const pwd = req.env.PWD ?? '';
  if (UNCARRIABLE.test(req.path) || UNCARRIABLE.test(req.cwd) || UNCARRIABLE.test(pwd)) return null;
  let lines = `${req.path}\n${req.cwd}\n${pwd}\n`;
  for (const [name, value] of Object.entries(req.commandEnv ?? {})) {
    if (!NAME.test(name) || UNCARRIABLE.test(value)) return null;
    lines += `${name}=${value}\n`;
  }
  return lines + 'go\n';
}
