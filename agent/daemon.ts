// The agent process: signals, exit codes, and the lean re-exec that keeps zod, commander and the CLI out of the long-running daemon.
import { dirname, join } from 'node:path';
import { EXIT_CODES, runAgent, type AgentConfig } from './agent.ts';
import { reportBoot } from './boot-report.ts';
import { liveGroups } from './hook.ts';
import { createLogger } from './log.ts';
import { startNotifier } from './notify.ts';
import { signalGroup } from './proc.ts';
import { fs } from './builtins.ts';

const { mkdirSync, readFileSync, renameSync, writeFileSync } = fs;

/**
 * The re-executed daemon reads its (already validated) configuration from here, then removes it.
 * It holds no token: /proc/PID/environ keeps a process's initial environment for its whole life,
 * whatever the process deletes. The daemon reads the token from `tokenFile` instead.
 */
export const CONFIG_ENV = 'REBOOT_AGENT_RESOLVED_CONFIG';
/** Set to 1 to run the daemon inside the CLI process instead of re-executing (debugging). */
export const NO_EXEC_ENV = 'REBOOT_AGENT_NO_EXEC';
const OWN_CACHE_ENV = 'REBOOT_AGENT_OWN_COMPILE_CACHE';
/**
 * V8's young generation grows to 16 MB per semi-space under a burst of allocations (a large journal
 * read at start, a run of commands) and keeps that memory; the agent allocates little and often.
 * --expose-gc: for releaseStartupMemory.
 */
export const DAEMON_V8_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--expose-gc'];

/**
 * Start-up (module loading, the journal, the first poll) grows V8's young generation to its
 * maximum, and an idle agent allocates too little for V8 to shrink it again. One collection
 * that gives memory back, a second after start (start-up is over by then; a later one would only
 * show up as idle CPU): −1.0 MB for the idle daemon, for good (VmRSS over 50 s of polls:
 * 48.8–48.9 MB vs 49.9–50.5 without). --expose-gc is what makes `gc` callable.
 */
const STARTUP_OVER_MS = 1000;
function releaseStartupMemory(): void {
  setTimeout(() => globalThis.gc?.({ type: 'major', flavor: 'last-resort' }), STARTUP_OVER_MS).unref();
}

/**
 * No optimising or baseline compiler (TurboFan, Maglev, Sparkplug): the agent's JavaScript is a
 * few hundred µs per command, the rest is system calls; yet at start-up Node's module resolution
 * (path normalisation, file URLs) runs hot enough for Maglev and TurboFan, whose code in the node
 * binary (~2.2 MB) and memory then stay resident. Idle daemon from the repository: −2.6 MB.
 * For a JavaScript entry (the bundle) --lite-mode does that and more (lazy feedback, no
 * WebAssembly). Not for a .ts entry: any V8 flag but the heap sizes keys a compile cache of its
 * own, so the daemon's first start strips its TypeScript itself (restartIfStripperLoaded), which
 * needs WebAssembly. Measured and not kept (±0.3 MB): --single-threaded, --v8-pool-size=1,
 * --max-old-space-size=8, MALLOC_ARENA_MAX=1, --optimize-for-size, --max-lazy,
 * --semi-space-growth-factor=1; --minor-ms −0.7 MB (not kept: a young-generation collector
 * Node does not use by default).
 */
const NO_JIT_FLAGS: readonly string[] = ['--no-opt', '--no-maglev', '--no-sparkplug'];
export const daemonV8Flags = (entry: string): string[] => [...DAEMON_V8_FLAGS, ...(entry.endsWith('.ts') ? NO_JIT_FLAGS : ['--lite-mode'])];

/**
 * `npm run package:agent` writes the daemon alone next to the bundle: V8 parses and keeps the whole
 * file a process runs, and the bundle's CLI part (commander, zod, the other commands) costs the idle
 * daemon ~3.8 MB (53.3 → 49.5 MB). Without that file (the bundle copied alone) the bundle runs the
 * daemon itself; from the repository the entry is this module.
 */
export const DAEMON_BUNDLE = 'rebootctl-agent-daemon.mjs';
function leanEntry(self: string): string {
  if (!self.endsWith('.mjs')) return self;
  const daemon = join(dirname(self), DAEMON_BUNDLE);
  return fs.existsSync(daemon) ? daemon : self;
}

/**
 * Starts the daemon for a validated configuration. Where the platform allows it, replaces this
 * process (same pid, so systemd and signals are unaffected) with a fresh Node running only the
 * agent: the CLI's modules (commander, zod, other commands) would otherwise stay resident, and
 * the idle agent must fit in 60 MB.
 */
export async function startDaemon(config: AgentConfig, entry: string = leanEntry(import.meta.filename)): Promise<void> {
  if (typeof process.execve === 'function' && process.env[NO_EXEC_ENV] !== '1') {
    try {
      const tokenFile = config.tokenFile ?? writeTokenHandoff(config);
      const { [TOKEN_ENV]: _token, ...env } = process.env;
      // The cache is written at exit, and execve is no exit: write it now for the new image.
      process.getBuiltinModule('node:module').flushCompileCache();
      process.execve(process.execPath, [process.execPath, ...daemonV8Flags(entry), ...process.execArgv, entry], {
        ...env,
        [CONFIG_ENV]: JSON.stringify({ ...config, token: '', tokenFile }),
      } as Record<string, string>);
    } catch (err) {
      process.stderr.write(`rebootctl agent: could not re-exec a lean process (${(err as Error).message}); running in this one\n`);
    }
  }
  process.exitCode = await runMain(config);
}

/** Runs the agent with SIGTERM/SIGINT wired to a graceful stop; resolves to the exit code. */
export async function runMain(config: AgentConfig): Promise<number> {
  const stop = new AbortController();
  const log = createLogger({ level: config.logLevel, base: { agent: config.agent } });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      log.info('stop requested', { signal });
      stop.abort();
      return;
    }
    // A second signal: the operator does not want to wait. Take the hooks down with us; the
    // journal reports them as interrupted at the next start.
    log.warn('second stop signal: killing running hooks and exiting now', { signal });
    for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
    process.exit(130);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const notifier = startNotifier(log);
  // A new boot id since the last start: say the machine is back (contract 7.2), without holding up the polls.
  const boot = reportBoot({
    ...config,
    stateDir: join(config.state, config.agent),
    log: (level, msg, fields) => log[level](msg, fields),
  }).catch((err) => log.warn('could not report this boot', { error: String(err) }));
  try {
    const exit = await runAgent(config, { signal: stop.signal, log });
    await Promise.race([boot, new Promise((r) => setTimeout(r, 1000).unref())]);
    return exit.code;
  } finally {
    notifier.stop();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

const TOKEN_ENV = 'REBOOT_AGENT_TOKEN';

/**
 * A token given as a flag or variable reaches the daemon through a 0600 file in the agent's own
 * state directory (no inheritable fd survives Node's O_CLOEXEC): never through its argv or environ.
 * Hooks that call the API themselves find it as REBOOT_AGENT_TOKEN_FILE.
 */
function writeTokenHandoff(config: AgentConfig): string {
  const dir = join(config.state, config.agent);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'agent-token');
  writeFileSync(`${path}.tmp`, config.token + '\n', { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
  return path;
}

/** The re-executed daemon's main: configuration from CONFIG_ENV, the token from its file. */
export async function daemonMain(): Promise<never> {
  restartIfStripperLoaded();
  const text = process.env[CONFIG_ENV];
  // Hooks inherit the environment (without any token); this blob is of no use to them.
  delete process.env[CONFIG_ENV];
  if (process.env[OWN_CACHE_ENV] === '1') {
    delete process.env.NODE_COMPILE_CACHE;
    delete process.env[OWN_CACHE_ENV];
  }
  if (!text) {
    process.stderr.write(`rebootctl agent: start the agent with 'rebootctl agent' (${CONFIG_ENV} is not set)\n`);
    process.exit(EXIT_CODES.config);
  }
  const parsed = JSON.parse(text) as AgentConfig;
  // A configuration that carries its token (a test or bench spawning the daemon directly) keeps it.
  let token = parsed.token;
  try {
    if (!token) token = readFileSync(parsed.tokenFile ?? '', 'utf8').trim();
  } catch (err) {
    process.stderr.write(`rebootctl agent: cannot read the token file ${parsed.tokenFile}: ${(err as Error).message}\n`);
    process.exit(EXIT_CODES.config);
  }
  releaseStartupMemory();
  const code = await runMain(Object.freeze({ ...parsed, token }));
  process.exit(code);
}

/** Set in the image restartIfStripperLoaded starts: it never restarts twice. */
const WARM_ENV = 'REBOOT_AGENT_WARM_START';
const STRIPPER = 'NativeModule internal/deps/amaro/dist/index';

/**
 * Node's TypeScript stripper (WebAssembly, ~17 MB resident for good) is loaded when a module
 * misses the compile cache: on the daemon's first start with its V8 flags, whose cache is not the
 * CLI's (daemonV8Flags). Every module is stripped and compiled by now, so write the cache and
 * start this same image again (same pid) from it: once per node binary and flags.
 */
function restartIfStripperLoaded(): void {
  if (process.env[WARM_ENV] === '1') {
    delete process.env[WARM_ENV];
    return;
  }
  if (
    !process.env.NODE_COMPILE_CACHE ||
    typeof process.execve !== 'function' ||
    !(process as unknown as { moduleLoadList: string[] }).moduleLoadList.includes(STRIPPER)
  )
    return;
  try {
    process.getBuiltinModule('node:module').flushCompileCache();
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
      ...process.env,
      [WARM_ENV]: '1',
    } as Record<string, string>);
  } catch {
    // only a memory optimisation: run on in this image
  }
}

if (import.meta.main) await daemonMain();
