// Many real edge agents in one process: runAgent (the same loop, HTTP client, fsynced journal and hook runner as
// `rebootctl agent`) once per agent id. One process per agent would need ~40 MB each; the agents only share the
// event loop, and the bench keeps them idle but one at a time during latency samples.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { runAgent } from '../agent/agent.ts';
import { resolveAgentConfig } from '../agent/config.ts';
import { startHook } from '../agent/hook.ts';
import { WarmGate } from '../agent/warm-gate.ts';
import { Journal } from '../agent/journal.ts';
import type { Logger, LogFields } from '../agent/log.ts';
import { serveIpc } from './lib.ts';

const now = () => performance.timeOrigin + performance.now();
const stop = new AbortController();
const running: Promise<unknown>[] = [];
/** "<agent>|<type>|<reboot>" → when the agent logged 'hook started' (after spawn and the second fsync). */
const hookStarted = new Map<string, number>();
const exits: Array<{ agent: string; code: number; reason: string }> = [];

function benchLogger(agent: string, base: LogFields = {}): Logger {
  const problem = (level: string, msg: string, fields?: LogFields) =>
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, agent, msg, ...base, ...fields }) + '\n');
  return {
    debug: () => {},
    info: (msg) => {
      if (msg === 'hook started') hookStarted.set(`${agent}|${base.type}|${base.reboot}`, now());
    },
    warn: (msg, fields) => problem('warn', msg, fields),
    error: (msg, fields) => problem('error', msg, fields),
    child: (fields) => benchLogger(agent, { ...base, ...fields }),
  };
}

serveIpc({
  /** Starts the agents, spread evenly over staggerMs so their long polls are not synchronised. */
  async start({
    server,
    agents,
    hooks,
    state,
    wait,
    staggerMs = 0,
  }: {
    server: string;
    agents: Array<{ id: string; token: string }>;
    hooks: string;
    state: string;
    wait: number;
    staggerMs?: number;
  }) {
    const t0 = Date.now();
    for (const [i, a] of agents.entries()) {
      const at = t0 + (staggerMs * i) / Math.max(1, agents.length);
      if (at > Date.now()) await new Promise((r) => setTimeout(r, at - Date.now()));
      const config = await resolveAgentConfig({
        flags: { server, agent: a.id, token: a.token, hooks, state, wait: String(wait) },
        env: {},
      });
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', HOME: process.env.HOME ?? '/tmp' };
      running.push(
        runAgent(config, { signal: stop.signal, log: benchLogger(a.id), env }).then((exit) => {
          exits.push({ agent: a.id, ...exit });
        }),
      );
    }
    return agents.length;
  },
  hookStarted: () => Object.fromEntries(hookStarted),
  exits: () => exits,
  /**
   * The cost of starting a hook as the agent does (startHook: own process group, piped stdio, env):
   * from the call to the hook's own $EPOCHREALTIME, n times. `warm`: through a gate shell forked
   * beforehand (agent/warm-gate.ts), as the agent starts its hooks; else a fork of this process then.
   */
  async probeSpawn({ hook, log, n, warm = false }: { hook: string; log: string; n: number; warm?: boolean }) {
    const out: number[] = [];
    const env = Object.freeze({ PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' });
    const gate = warm ? new WarmGate(env, join(hook, '..')) : undefined;
    for (let i = 0; i < n; i++) {
      gate?.fill();
      // The agent forks its next gate while it waits on the server: give the fork that moment.
      if (gate) await new Promise((r) => setTimeout(r, 15));
      const before = readFileSync(log, 'utf8').length;
      const t0 = now();
      const run = startHook({
        path: hook,
        stdin: '{}\n',
        env,
        commandEnv: { NODE_ID: `probe${i}`, COMMAND_ID: `c${i}` },
        cwd: join(hook, '..'),
        deadline: new Date(Date.now() + 30_000),
        maxOutputBytes: 65_536,
        killGraceMs: 1000,
        warm: gate,
      });
      if (gate && !run.warm) throw new Error('the probe meant to start its hook through the warm gate started it cold');
      await run.done;
      const line = readFileSync(log, 'utf8').slice(before).trim().split('\n')[0] ?? '';
      out.push(Number(line.split(' ')[0]) * 1000 - t0);
    }
    gate?.close();
    return out;
  },
  /** One journal record appended and fsynced, as the agent does before it starts a hook, n times. */
  probeFsync({ dir, n }: { dir: string; n: number }) {
    mkdirSync(dir, { recursive: true });
    const journal = Journal.open(dir, { agent: 'probe', maxEntries: 10_000, maxAgeMs: 86_400_000, log: benchLogger('probe') });
    const out: number[] = [];
    // What the journal costs before a hook may run: its started and spawned lines (one fsync since round 2, two before).
    for (let i = 0; i < n; i++) {
      const t0 = now();
      journal.started({
        id: `probe-${i}`,
        type: 'migrate-workloads',
        rebootId: 'xr-probe',
        deadline: new Date(Date.now() + 60_000).toISOString(),
      });
      journal.spawned(`probe-${i}`, { pid: process.pid, bootId: null, startTime: null });
      out.push(now() - t0);
    }
    journal.close();
    rmSync(dir, { recursive: true, force: true });
    return out;
  },
  async stop() {
    stop.abort();
    await Promise.allSettled(running);
    return exits.length;
  },
});

process.on('SIGTERM', () => {
  stop.abort();
  void Promise.allSettled(running).then(() => process.exit(0));
  setTimeout(() => process.exit(0), 15_000).unref();
});
process.on('disconnect', () => {
  stop.abort();
  setTimeout(() => process.exit(0), 5_000).unref();
});
process.send!({ event: 'ready' });
