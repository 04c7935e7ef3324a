// The edge agent: long-polls the server for commands, runs their hooks one at a time, delivers each result exactly once.
import { join } from 'node:path';
import type { CommandType } from '../lambdas/core/types.ts';
import { createBackoff, sleep, type Backoff } from './backoff.ts';
import type { AgentConfig } from './config.ts';
import { findHook, startHook, type HookOutcome, type HookRun } from './hook.ts';
import { createHttpClient, type HttpClient, type HttpResponse } from './http.ts';
import { unknownAgentReason } from './unknown-agent.ts';
import { AgentLocked, Journal, type FinalStatus } from './journal.ts';
import { createLogger, describeError, type Logger } from './log.ts';
import { utf8Tail } from './output.ts';
import { createTransport, type Transport } from './transport-mqtt.ts';
import { killLeftoverGroup } from './proc.ts';
import { isSafeId, unsafeIdProblem } from './ids.ts';
import { isoTime } from './iso-time.ts';
import { DRY_RUN_ENV, isRequiredHook } from './roles.ts';
import { WarmGate } from './warm-gate.ts';

/** How long a hook runs before its first `running` heartbeat (see where it is used). */
const FIRST_HEARTBEAT_MS = 250;

export type { AgentConfig } from './config.ts';

/** Exit codes of the agent process; systemd and scripts tell a wrong token from a crash by them. */
export const EXIT_CODES = Object.freeze({
  ok: 0,
  /** --once could not poll or deliver; another agent holds the state directory; the journal is unwritable. */
  failure: 1,
  /** Bad configuration (flags, env, config file). */
  config: 2,
  /** The server refused the token (401/403): retrying will not fix it. */
  auth: 3,
  /** `--once` only: the server does not know this agent id (404); the daemon keeps trying slowly instead. */
  unknownAgent: 4,
});

/**
 * Tries while the server does not know the agent id (a mistyped id, an xPU not in the inventory yet):
 * 30 s doubling to 5 min, each at least half its ceiling. Slow, since only an inventory push or a fixed
 * configuration changes the answer; not an exit, so the agent comes back by itself once the inventory
 * has it (under systemd's Restart=always an exit would only become a restart every RestartSec).
 */
export const UNKNOWN_AGENT_RETRY = Object.freeze({ initialMs: 30_000, maxMs: 300_000 });

export interface AgentExit {
  code: number;
  reason: string;
}

export interface RunAgentOptions {
  /** Aborting it stops the agent gracefully (what SIGTERM/SIGINT do in the CLI). */
  signal?: AbortSignal;
  log?: Logger;
  /** The environment hooks inherit (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Runs the agent until it is stopped (signal), finishes a --once round, or meets an error it cannot retry. */
export async function runAgent(config: AgentConfig, opts: RunAgentOptions = {}): Promise<AgentExit> {
  const log = opts.log ?? createLogger({ level: config.logLevel, base: { agent: config.agent } });
  let journal: Journal;
  try {
    journal = Journal.open(join(config.state, config.agent), {
      agent: config.agent,
      maxEntries: config.journalMaxEntries,
      maxAgeMs: config.journalMaxAgeDays * 86_400_000,
      log,
    });
  } catch (err) {
    const reason = err instanceof AgentLocked ? err.message : `cannot open the journal: ${describeError(err)}`;
    log.error(reason, { state: config.state });
    return { code: EXIT_CODES.failure, reason };
  }
  const agent = new Agent(config, journal, log, opts.signal ?? new AbortController().signal, opts.env ?? process.env);
  try {
    return await agent.run();
  } catch (err) {
    // Only the journal throws out of the loop (disk full, read-only fs): running on without it
    // would break exactly-once, so stop and let the supervisor restart us.
    const reason = `agent failed: ${describeError(err)}`;
    log.error(reason, { error: err });
    return { code: EXIT_CODES.failure, reason };
  } finally {
    agent.close();
  }
}

/** A command as delivered, checked enough to run it (the server is trusted, not infallible). */
interface ValidCommand {
  id: string;
  type: string;
  rebootId: string;
  node: string;
  xpu: string | null;
  deadline: Date;
  raw: Record<string, unknown>;
}

/** Commands received but not started; more are left with the server, which delivers them again. */
const MAX_QUEUED = 256;
/** Results not yet delivered; while more are pending, no new command is started. */
const MAX_BACKLOG = 1024;
const TOKEN_ENV = 'REBOOT_AGENT_TOKEN';
const TOKEN_FILE_ENV = 'REBOOT_AGENT_TOKEN_FILE';

type Parsed = { ok: true; cmd: ValidCommand } | { ok: false; problem: string };

/**
 * The command types of docs/api.md. A copy, not an import: loading one more .ts file
 * at run time costs the idle daemon ~17 MB (the type stripper). The type check below fails the
 * build when the two lists drift.
 */
const COMMAND_TYPES = [
  'migrate-workloads',
  'protect-pcie',
  'allow-coredump',
  'proceed-reboot',
  'restore-pcie',
  'resume-workloads',
  'reboot-host',
  'free-host-context',
  'reprovision',
  'deny-host-reboot',
  'postpone-reboot',
  'cancel-reboot',
  'reboot-xpu',
] as const satisfies readonly CommandType[];
const everyTypeKnown: [Exclude<CommandType, (typeof COMMAND_TYPES)[number]>] extends [never] ? true : never = true;
void everyTypeKnown;
const KNOWN_TYPES: ReadonlySet<string> = new Set(COMMAND_TYPES);

function parseCommand(raw: Record<string, unknown>): Parsed {
  const { type, rebootId, node, xpu, deadline, args } = raw;
  // Checked before anything else: the type names a file, so only the known names may reach the file system.
  if (typeof type !== 'string' || !KNOWN_TYPES.has(type)) {
    return { ok: false, problem: `unknown command type ${JSON.stringify(type)}; this agent knows: ${COMMAND_TYPES.join(', ')}` };
  }
  if (typeof rebootId !== 'string') return { ok: false, problem: 'malformed command: rebootId is not a string' };
  if (typeof node !== 'string') return { ok: false, problem: 'malformed command: node is not a string' };
  if (xpu !== null && xpu !== undefined && typeof xpu !== 'string')
    return { ok: false, problem: 'malformed command: xpu is neither a string nor null' };
  if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args))) {
    return { ok: false, problem: 'malformed command: args is not an object' };
  }
  // These reach the hook's environment, its stdin and (in the example hooks) file names and options.
  const a = (args ?? {}) as Record<string, unknown>;
  const ids: [string, unknown][] = [
    ['rebootId', rebootId],
    ['node', node],
    ['xpu', xpu],
    ['args.tenant', a.tenant],
    ['args.xpu', a.xpu],
    ['args.rolloutId', a.rolloutId],
  ];
  for (const [name, value] of ids) {
    if (value === undefined || value === null) continue; // optional ones
    const problem = unsafeIdProblem(name, value);
    if (problem) return { ok: false, problem };
  }
  const when = typeof deadline === 'string' ? new Date(deadline) : new Date(NaN);
  if (Number.isNaN(when.getTime()))
    return { ok: false, problem: `malformed command: deadline ${JSON.stringify(deadline)} is not an ISO 8601 time` };
  return {
    ok: true,
    cmd: { id: raw.id as string, type, rebootId, node, xpu: (xpu as string | null | undefined) ?? null, deadline: when, raw },
  };
}

type PollResult =
  | { kind: 'ok'; items: unknown[] }
  | { kind: 'auth'; status: number; message: string }
  | { kind: 'error'; reason: string }
  /** 404 on the agent's own commands route: the server does not know this agent id (or --server is not its API). */
  | { kind: 'unknown'; reason: string }
  | { kind: 'stopped' };

/**
 * Tracks whether the server answers, so an outage is logged once when it starts and once when it
 * ends, however many retries happen in between.
 */
class Link {
  #down: { since: number; failures: number; reason: string } | null = null;
  readonly #log: Logger;
  readonly #maxBackoffS: number;

  constructor(log: Logger, maxBackoffS: number) {
    this.#log = log;
    this.#maxBackoffS = maxBackoffS;
  }

  /** Returns true when this success ends an outage. */
  ok(): boolean {
    if (!this.#down) return false;
    const { since, failures } = this.#down;
    this.#log.info('server reachable again', { downSeconds: Math.round((Date.now() - since) / 100) / 10, failedAttempts: failures });
    this.#down = null;
    return true;
  }

  fail(reason: string): void {
    if (this.#down) {
      this.#down.failures++;
      this.#log.debug('server still unreachable', { reason, failedAttempts: this.#down.failures });
      return;
    }
    this.#down = { since: Date.now(), failures: 1, reason };
    this.#log.warn('server unreachable; retrying with backoff (results stay journalled until delivered)', {
      reason,
      maxBackoffSeconds: this.#maxBackoffS,
    });
  }

  get down(): boolean {
    return this.#down !== null;
  }
}

/** Below this, a difference of clocks is the Date header's resolution and the network's latency: in sync. */
const CLOCK_TOLERANCE_MS = 2000;

/**
 * The coordinator dates deadlines by its own clock (contract 7.1); an xPU often boots before NTP has
 * set its clock. Learnt from the Date header of every answer: a deadline is turned into this
 * machine's time before it decides whether a command is late and when to kill its hook.
 */
class ServerClock {
  #aheadMs = 0;
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  observe(aheadMs: number | undefined): void {
    if (aheadMs === undefined || !Number.isFinite(aheadMs)) return;
    const next = Math.abs(aheadMs) <= CLOCK_TOLERANCE_MS ? 0 : Math.round(aheadMs);
    if (Math.abs(next - this.#aheadMs) <= CLOCK_TOLERANCE_MS) return;
    this.#aheadMs = next;
    if (next === 0) this.#log.info("this machine's clock agrees with the server's again");
    else
      this.#log.warn("this machine's clock differs from the server's; command deadlines follow the server's clock (set up NTP)", {
        serverAheadSeconds: Math.round(next / 1000),
      });
  }

  /** A time on the server's clock, as this machine's clock will show it. */
  local(serverTime: Date): Date {
    return this.#aheadMs === 0 ? serverTime : new Date(serverTime.getTime() - this.#aheadMs);
  }
}

type PostOutcome =
  | { kind: 'ok' }
  | { kind: 'drop'; reason: string }
  | { kind: 'auth'; status: number; message: string }
  | { kind: 'retry'; reason: string };

/** Delivers journalled results in order, retrying with backoff until the server takes them. */
class Sender {
  readonly #queue: string[] = [];
  readonly #agent: Agent;
  readonly #backoff: Backoff;
  #wake: (() => void) | null = null;
  #idleWaiters: (() => void)[] = [];
  #stopped = false;
  #backingOff = false;
  #loop: Promise<void> | null = null;
  readonly #reposted = new Map<string, number>();

  constructor(agent: Agent, backoff: Backoff) {
    this.#agent = agent;
    this.#backoff = backoff;
  }

  get pending(): number {
    return this.#queue.length;
  }

  get backingOff(): boolean {
    return this.#backingOff;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  enqueue(id: string): void {
    if (!this.#queue.includes(id)) this.#queue.push(id);
    this.#poke();
  }

  /** The server answers again: retry now instead of at the end of the current backoff. */
  nudge(): void {
    this.#backoff.reset();
    this.#poke();
  }

  /**
   * The server handed back a command whose result it already took: it may have lost it. Re-send
   * the status (idempotent on the server), at most once per backoff cap per command.
   */
  repost(id: string, status: FinalStatus): void {
    const now = Date.now();
    const last = this.#reposted.get(id) ?? 0;
    if (now - last < this.#agent.config.backoffMaxSeconds * 1000) return;
    if (this.#reposted.size > 1000) this.#reposted.clear();
    this.#reposted.set(id, now);
    this.#agent.log.info('server delivered a command again whose result it already took; re-sending the result', { command: id, status });
    void this.#agent.postResult(id, { status, output: '(result re-sent by the agent; the original output was delivered before)' });
  }

  /** Resolves true once everything queued is delivered, false if timeoutMs passes first. */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.#queue.length === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => this.#idleWaiters.push(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const result = await Promise.race([idle, timeout]);
    clearTimeout(timer);
    return result;
  }

  stop(): void {
    this.#stopped = true;
    this.#poke();
  }

  #poke(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #waitForPoke(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => this.#poke(), ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const id = this.#queue[0];
      if (id === undefined) {
        for (const w of this.#idleWaiters.splice(0)) w();
        await this.#waitForPoke();
        continue;
      }
      const entry = this.#agent.journal.get(id);
      if (!entry?.status || entry.deliveredAt) {
        this.#queue.shift();
        continue;
      }
      const outcome = await this.#agent.postResult(id, { status: entry.status, output: entry.output ?? '' });
      if (outcome.kind === 'retry') {
        this.#backingOff = true;
        await this.#waitForPoke(this.#backoff.next());
        this.#backingOff = false;
        continue;
      }
      this.#backoff.reset();
      if (outcome.kind === 'auth') {
        this.#agent.authRefused(outcome.status, outcome.message, 'delivering a result');
        this.#stopped = true;
        break;
      }
      if (outcome.kind === 'drop') {
        this.#agent.log.warn('result dropped', { command: id, reason: outcome.reason });
        this.#agent.journal.delivered(id, outcome.reason);
      } else {
        this.#agent.log.info('result delivered', { command: id, status: entry.status });
        this.#agent.journal.delivered(id);
      }
      this.#queue.shift();
    }
    for (const w of this.#idleWaiters.splice(0)) w();
  }
}

class Agent {
  readonly config: AgentConfig;
  readonly journal: Journal;
  readonly log: Logger;
  readonly #stop: AbortSignal;
  readonly #env: NodeJS.ProcessEnv;
  readonly #http: HttpClient;
  readonly #link: Link;
  readonly #clock: ServerClock;
  readonly #sender: Sender;
  readonly #queue: Record<string, unknown>[] = [];
  #current: { id: string; run: HookRun; deadline: Date } | null = null;
  #fatal: AgentExit | null = null;
  readonly #base: string;
  /** Push channel (transport-mqtt.ts): decides how long each poll waits. */
  readonly #transport: Transport;
  /** What every hook inherits (the per-command variables go on top): computed once, so a warm gate can carry it. */
  readonly #hookBaseEnv: NodeJS.ProcessEnv;
  /** The gate shell started ahead of the next command (warm-gate.ts). */
  readonly #warm: WarmGate;

  constructor(config: AgentConfig, journal: Journal, log: Logger, stop: AbortSignal, env: NodeJS.ProcessEnv) {
    this.config = config;
    this.journal = journal;
    this.log = log;
    this.#stop = stop;
    this.#env = env;
    this.#http = createHttpClient(config.server, config.token, `rebootctl-agent (${config.agent})`, config);
    this.#link = new Link(log, config.backoffMaxSeconds);
    this.#clock = new ServerClock(log);
    this.#sender = new Sender(this, this.#backoff());
    this.#base = `v1/agents/${encodeURIComponent(config.agent)}/commands`;
    this.#transport = createTransport({ mode: config.transport, url: config.mqttUrl, agent: config.agent, token: config.token, log });
    this.#hookBaseEnv = Object.freeze(this.#baseEnv());
    this.#warm = new WarmGate(this.#hookBaseEnv, config.hooks);
    // Stopping: EOF on the idle gate's stdin, it exits without running anything (a hook running now goes on).
    stop.addEventListener('abort', () => this.#warm.close(), { once: true });
  }

  async run(): Promise<AgentExit> {
    const c = this.config;
    this.log.info('agent starting', {
      server: c.server,
      hooks: c.hooks,
      journal: this.journal.file,
      wait: c.wait,
      once: c.once,
      heartbeatSeconds: c.heartbeatSeconds,
    });
    await this.#recover();
    this.#sender.start();
    // Before the first command arrives, so that one too starts without a fork on its path.
    if (!this.#stop.aborted) this.#warm.fill();
    const exit = c.once ? await this.#runOnce() : await this.#runForever();
    return this.#shutdown(exit);
  }

  close(): void {
    this.#warm.close();
    this.#transport.close();
    this.#sender.stop();
    this.#http.close();
    this.journal.close();
  }

  /** After our own crash: never re-run what was started; report it, and re-send what was not delivered. */
  async #recover(): Promise<void> {
    for (const e of this.journal.interrupted()) {
      const leftovers = e.spawn ? await killLeftoverGroup(e.spawn, this.config.killGraceSeconds * 1000) : false;
      const output =
        `interrupted: agent restarted while the hook ran (started ${e.startedAt}); not run again` +
        (leftovers ? `; killed the hook's leftover process group ${e.spawn!.pid}` : '');
      this.journal.finished(e.id, 'failed', output);
      this.log.warn('command interrupted by an agent restart; reporting it failed', {
        command: e.id,
        type: e.type,
        leftoversKilled: leftovers,
      });
    }
    const pending = this.journal.undelivered();
    if (pending.length) this.log.info('results from before the restart to deliver', { count: pending.length });
    for (const e of pending) this.#sender.enqueue(e.id);
  }

  async #runForever(): Promise<AgentExit> {
    const pollBackoff = this.#backoff();
    const idleBackoff = this.#backoff();
    // Equal jitter: never a quick retry, yet a fleet imaged with the same wrong id does not ask in step.
    const unknownBackoff = createBackoff(UNKNOWN_AGENT_RETRY.initialMs, UNKNOWN_AGENT_RETRY.maxMs, () => 0.5 + Math.random() / 2);
    while (!this.#stop.aborted && !this.#fatal) {
      const next = this.#queue.shift();
      if (next) {
        await this.#execute(next);
        continue;
      }
      // Idle now (waiting for the server): fork the next hook's gate shell, off any command's path.
      this.#fillGateSoon();
      // Deliver before asking for more: the server hands back every command without a result.
      if (this.#sender.pending && !this.#sender.backingOff) await this.#sender.drain(this.config.requestTimeoutSeconds * 1000);
      const res = await this.#poll(await this.#transport.beforePoll(this.config.wait, this.#stop));
      if (res.kind === 'stopped') break;
      if (res.kind === 'auth') return this.authRefused(res.status, res.message, 'polling for commands');
      if (res.kind === 'error') {
        this.#link.fail(res.reason);
        await sleep(pollBackoff.next(), this.#stop);
        continue;
      }
      if (res.kind === 'unknown') {
        const wait = unknownBackoff.next();
        const retryInSeconds = Math.round(wait / 1000);
        this.log.error(`${res.reason}; fix --agent (REBOOT_AGENT_ID) or the inventory; trying again in ${retryInSeconds} s`, {
          retryInSeconds,
          attempts: unknownBackoff.attempts,
        });
        await sleep(wait, this.#stop);
        continue;
      }
      if (unknownBackoff.attempts > 0) {
        this.log.info(`the server knows agent ${this.config.agent} now`, { attempts: unknownBackoff.attempts });
        unknownBackoff.reset();
      }
      pollBackoff.reset();
      if (this.#link.ok()) this.#sender.nudge();
      const fresh = this.#dispatch(res.items, true);
      // Only commands we already handled came back (their results are still on the way): without
      // a pause the long poll would return at once, again and again.
      if (fresh === 0 && res.items.length > 0) await sleep(idleBackoff.next(), this.#stop);
      else idleBackoff.reset();
    }
    if (this.#fatal) return this.#fatal;
    if (this.#queue.length)
      this.log.info('agent stopping: commands not started are left to the server to deliver again', { count: this.#queue.length });
    return { code: EXIT_CODES.ok, reason: 'stopped' };
  }

  async #runOnce(): Promise<AgentExit> {
    const res = await this.#poll(this.config.wait);
    if (res.kind === 'auth') return this.authRefused(res.status, res.message, 'polling for commands');
    if (res.kind === 'error') {
      this.log.error('poll failed', { reason: res.reason });
      return { code: EXIT_CODES.failure, reason: `poll failed: ${res.reason}` };
    }
    if (res.kind === 'unknown') {
      this.log.error(`${res.reason}; fix --agent (REBOOT_AGENT_ID) or the inventory`);
      return { code: EXIT_CODES.unknownAgent, reason: res.reason };
    }
    if (res.kind === 'ok') {
      this.#dispatch(res.items, true);
      while (!this.#stop.aborted && !this.#fatal) {
        const next = this.#queue.shift();
        if (!next) break;
        await this.#execute(next);
      }
    }
    if (this.#fatal) return this.#fatal;
    return { code: EXIT_CODES.ok, reason: 'once' };
  }

  async #shutdown(exit: AgentExit): Promise<AgentExit> {
    if (exit.code === EXIT_CODES.auth) return exit; // the server refuses us; the journal keeps the results
    this.#sender.nudge(); // one more attempt now, not at the end of a long backoff
    const delivered = await this.#sender.drain(this.config.deliverTimeoutSeconds * 1000);
    if (!delivered) {
      const count = this.#sender.pending;
      this.log.warn('results not delivered before exit; they stay journalled and are sent at the next start', { count });
      if (this.config.once && exit.code === EXIT_CODES.ok) return { code: EXIT_CODES.failure, reason: `${count} result(s) not delivered` };
    }
    if (this.#fatal) return this.#fatal;
    this.log.info('agent stopped', { reason: exit.reason });
    return exit;
  }

  /** Sorts what the server sent: new commands queue in order; known ones are not run again. */
  #dispatch(items: unknown[], acceptNew: boolean): number {
    let fresh = 0;
    for (const raw of items) {
      if (typeof raw !== 'object' || raw === null || typeof (raw as { id?: unknown }).id !== 'string' || !(raw as { id: string }).id) {
        this.log.warn('ignored a command without an id (it cannot be reported)', { command: JSON.stringify(raw)?.slice(0, 200) });
        continue;
      }
      // The id names journal entries, the result's URL and COMMAND_ID: one that could be a path or
      // an option is not even reported (its result would go to a URL we do not control).
      if (!isSafeId((raw as { id: string }).id)) {
        this.#warnOnce('unsafe-id', 'ignored a command whose id is not a plain id', {
          command: JSON.stringify((raw as { id: string }).id).slice(0, 100),
        });
        continue;
      }
      const item = raw as Record<string, unknown> & { id: string };
      const id = item.id;
      const current = this.#current;
      if (current?.id === id) {
        const moved = typeof item.deadline === 'string' ? new Date(item.deadline) : null;
        if (moved && !Number.isNaN(moved.getTime()) && moved.getTime() !== current.deadline.getTime()) {
          this.log.info('deadline moved', { command: id, from: isoTime(current.deadline), to: isoTime(moved) });
          current.deadline = moved;
          current.run.setDeadline(this.#clock.local(moved));
        }
        continue;
      }
      const known = this.journal.get(id);
      if (known) {
        if (known.deliveredAt && known.status) this.#sender.repost(id, known.status);
        else if (known.status) this.#sender.enqueue(id);
        continue;
      }
      const queued = this.#queue.findIndex((q) => q.id === id);
      if (queued >= 0) {
        this.#queue[queued] = item; // a redelivery may carry a moved deadline
        continue;
      }
      if (!acceptNew) continue;
      // Bounded: a server that floods us is told nothing new is taken (it delivers again later) until
      // the queue and the undelivered results shrink.
      if (this.#queue.length >= MAX_QUEUED || this.#sender.pending >= MAX_BACKLOG) {
        this.#warnOnce('full', 'command queue or result backlog full; leaving new commands to the server to deliver again', {
          queued: this.#queue.length,
          undelivered: this.#sender.pending,
        });
        continue;
      }
      this.#queue.push(item);
      fresh++;
    }
    return fresh;
  }

  async #execute(raw: Record<string, unknown>): Promise<void> {
    const id = raw.id as string;
    if (this.journal.get(id)) return;
    const parsed = parseCommand(raw);
    if (!parsed.ok) return this.#finishUnrun(id, 'failed', parsed.problem, { type: raw.type });
    const cmd = parsed.cmd;
    const log = this.log.child({ command: id, type: cmd.type, reboot: cmd.rebootId });
    // When the hook is killed: the deadline on this machine's clock (the server's clock dates it).
    const killAt = this.#clock.local(cmd.deadline);
    if (killAt.getTime() <= Date.now()) {
      return this.#finishUnrun(id, 'failed', `deadline exceeded before the hook started (deadline ${isoTime(cmd.deadline)}); not run`, {
        type: cmd.type,
      });
    }
    const required = isRequiredHook(this.config.agent, cmd.type);
    const hook = findHook(this.config.hooks, cmd.type);
    if (hook.kind === 'missing') {
      // A required hook reported `skipped` would count as done: the reboot would go on unprepared.
      if (required) {
        return this.#finishUnrun(
          id,
          'failed',
          `required hook missing: ${cmd.type} must exist for this agent's role: ${hook.path} (${hook.reason})`,
          { type: cmd.type },
        );
      }
      return this.#finishUnrun(id, 'skipped', `no hook for ${cmd.type}: ${hook.path} (${hook.reason})`, { type: cmd.type });
    }

    // The record reaches the disk before the hook starts (with the spawn record's fsync, before the
    // hook's gate opens): after a crash from here on, the command is reported as interrupted rather
    // than run a second time.
    this.journal.started({ id, type: cmd.type, rebootId: cmd.rebootId, deadline: isoTime(cmd.deadline) });
    const run = startHook({
      path: hook.path,
      stdin: JSON.stringify(cmd.raw) + '\n',
      env: this.#hookBaseEnv,
      commandEnv: commandEnv(cmd),
      cwd: this.config.hooks,
      deadline: killAt,
      maxOutputBytes: this.config.maxOutputBytes,
      killGraceMs: this.config.killGraceSeconds * 1000,
      onSpawn: (identity) => this.journal.spawned(id, identity),
      warm: this.#warm,
      serverAheadMs: cmd.deadline.getTime() - killAt.getTime(),
    });
    this.#current = { id, run, deadline: cmd.deadline };
    log.info('hook started', { pid: run.pid, deadline: isoTime(cmd.deadline), gate: run.warm ? 'warm' : 'cold' });

    const onStop = () => {
      log.info('agent stopping: letting the hook finish within the grace period', { graceSeconds: this.config.stopGraceSeconds });
      run.stop(this.config.stopGraceSeconds * 1000);
    };
    if (this.#stop.aborted) onStop();
    else this.#stop.addEventListener('abort', onStop, { once: true });

    let ticking = false;
    const tick = async () => {
      this.#fillGateSoon(); // the hook runs on: a command queued meanwhile need not wait for a fork either
      if (ticking) return;
      ticking = true;
      try {
        await this.#heartbeat(id, log);
        if (!this.#stop.aborted) await this.#refresh();
      } finally {
        ticking = false;
      }
    };
    // The first heartbeat waits a moment: most hooks end within it, and their result alone says
    // everything a `running` would (it saves a POST, a poll and two writes per command at the
    // coordinator). A hook that runs on is reported running well inside any heartbeat policy.
    const first = setTimeout(() => void tick(), Math.min(FIRST_HEARTBEAT_MS, this.config.heartbeatSeconds * 1000));
    const ticker = setInterval(() => void tick(), this.config.heartbeatSeconds * 1000);

    const outcome = dryRunOutcome(await run.done, this.#env[DRY_RUN_ENV] === '1', required);
    clearTimeout(first);
    clearInterval(ticker);
    this.#stop.removeEventListener('abort', onStop);
    this.#current = null;
    this.journal.finished(id, outcome.status, outcome.output);
    log.info('hook finished', {
      status: outcome.status,
      exitCode: outcome.exitCode,
      signal: outcome.signal,
      killed: outcome.killed,
      durationMs: outcome.durationMs,
    });
    this.#sender.enqueue(id);
  }

  /**
   * Forks the next gate shell after the current macrotask (a request just started goes on the wire first),
   * and never right after a hook's gate opened: a fork of the agent then competes with the hook's start
   * (+1.5 ms p50 to the hook's first instruction, bench/probe-warm-gate.ts). So: when the agent turns to
   * the server (delivering, polling) and when a hook has run for a while (its first heartbeat tick).
   */
  #fillGateSoon(): void {
    setImmediate(() => {
      if (!this.#stop.aborted) this.#warm.fill();
    });
  }

  #warned = new Map<string, number>();
  /** One warning per kind and minute: a misbehaving server must not flood the journal. */
  #warnOnce(kind: string, msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - (this.#warned.get(kind) ?? 0) < 60_000) return;
    this.#warned.set(kind, now);
    this.log.warn(msg, fields);
  }

  #finishUnrun(id: string, status: FinalStatus, output: string, fields: Record<string, unknown>): void {
    this.journal.finished(id, status, output);
    this.log[status === 'skipped' ? 'info' : 'warn'](`command ${status} without running a hook`, { command: id, ...fields, output });
    this.#sender.enqueue(id);
  }

  #baseEnv(): NodeJS.ProcessEnv {
    // Never the token itself: a hook's environment is readable in /proc by its user and is copied
    // into everything it starts. A hook that calls the API reads REBOOT_AGENT_TOKEN_FILE (opt-in).
    // NOTIFY_SOCKET & co. belong to the agent: a hook must not speak for the service to systemd.
    const {
      [TOKEN_ENV]: _token,
      [TOKEN_FILE_ENV]: _file,
      NOTIFY_SOCKET: _n,
      WATCHDOG_USEC: _w,
      WATCHDOG_PID: _p,
      ...inherited
    } = this.#env;
    return {
      ...inherited,
      // So a hook can call the API itself (e.g. ask for an extension) with the agent's own credentials.
      REBOOT_AGENT_SERVER: this.config.server,
      REBOOT_AGENT_ID: this.config.agent,
      ...(this.config.tokenFile ? { [TOKEN_FILE_ENV]: this.config.tokenFile } : {}),
    };
  }

  async #heartbeat(id: string, log: Logger): Promise<void> {
    const res = await this.#request(
      'POST',
      `${this.#base}/${encodeURIComponent(id)}`,
      { status: 'running' },
      this.config.requestTimeoutSeconds,
    );
    if ('error' in res) return this.#link.fail(res.error);
    if (res.status >= 200 && res.status < 300) {
      if (this.#link.ok()) this.#sender.nudge();
    } else if (res.status === 401 || res.status === 403) {
      // Let the hook finish; the main loop stops once it has.
      this.authRefused(res.status, serverMessage(res), 'sending a heartbeat');
    } else if (res.status >= 500 || res.status === 408 || res.status === 429) {
      this.#link.fail(`heartbeat: HTTP ${res.status}`);
    } else {
      log.debug('heartbeat refused', { status: res.status, message: serverMessage(res) });
    }
  }

  /** While a hook runs: pick up a moved deadline and queue what arrived meanwhile (no long poll). */
  async #refresh(): Promise<void> {
    const res = await this.#poll(0);
    if (res.kind === 'ok') this.#dispatch(res.items, !this.config.once);
  }

  async #poll(wait: number): Promise<PollResult> {
    const res = await this.#request('GET', `${this.#base}?wait=${wait}`, undefined, wait + this.config.requestTimeoutSeconds);
    if ('error' in res) return this.#stop.aborted ? { kind: 'stopped' } : { kind: 'error', reason: res.error };
    if (res.status === 401 || res.status === 403) return { kind: 'auth', status: res.status, message: serverMessage(res) };
    if (res.status === 404) return { kind: 'unknown', reason: unknownAgentReason(this.config.agent, this.config.server, res) };
    if (res.status !== 200) return { kind: 'error', reason: `HTTP ${res.status}: ${serverMessage(res)}` };
    try {
      const items: unknown = JSON.parse(res.body);
      if (!Array.isArray(items)) return { kind: 'error', reason: 'the server answered with something other than a JSON array of commands' };
      return { kind: 'ok', items };
    } catch {
      return { kind: 'error', reason: 'the server answered with invalid JSON' };
    }
  }

  /** One attempt to post a result; the Sender decides about retries. */
  async postResult(id: string, body: { status: FinalStatus; output: string }): Promise<PostOutcome> {
    let payload = body;
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await this.#request('POST', `${this.#base}/${encodeURIComponent(id)}`, payload, this.config.requestTimeoutSeconds);
      if ('error' in res) {
        this.#link.fail(res.error);
        return { kind: 'retry', reason: res.error };
      }
      if (res.status >= 200 && res.status < 300) {
        if (this.#link.ok()) this.#sender.nudge();
        return { kind: 'ok' };
      }
      if (res.status === 401 || res.status === 403) return { kind: 'auth', status: res.status, message: serverMessage(res) };
      if (res.status === 404) return { kind: 'drop', reason: `the server does not know command ${id} (404)` };
      if (res.status === 413 && attempt === 0) {
        // Binary output escaped as JSON can outgrow the API's limit; the tail is what matters.
        payload = {
          status: body.status,
          output: '[output cut to its last 4 KiB: the server refused it as too large]\n' + utf8Tail(Buffer.from(body.output), 4096),
        };
        continue;
      }
      if (res.status >= 500 || res.status === 408 || res.status === 429) {
        const reason = `HTTP ${res.status} for a result: ${serverMessage(res)}`;
        this.#link.fail(reason);
        return { kind: 'retry', reason };
      }
      // Any other 4xx (400, 409, 413...) will be the same next time.
      return { kind: 'drop', reason: `the server refused the result (HTTP ${res.status}): ${serverMessage(res)}` };
    }
    return { kind: 'drop', reason: 'unreachable' };
  }

  /** A wrong or revoked token does not fix itself: say so loudly and stop. */
  authRefused(status: number, message: string, during: string): AgentExit {
    if (this.#fatal) return this.#fatal;
    const what =
      status === 401
        ? 'did not accept the agent token'
        : `refused agent ${this.config.agent} (the token belongs to another node, or this agent id is not allowed)`;
    const reason = `server ${what}: HTTP ${status} while ${during}${message ? `: ${message}` : ''}. Check the token (--token-file, --token or REBOOT_AGENT_TOKEN) and --agent; exiting`;
    this.log.error(reason, { status });
    this.#fatal = { code: EXIT_CODES.auth, reason };
    return this.#fatal;
  }

  async #request(method: 'GET' | 'POST', path: string, body: unknown, timeoutSeconds: number): Promise<HttpResponse | { error: string }> {
    try {
      const res = await this.#http.request(method, path, {
        body,
        timeoutMs: timeoutSeconds * 1000,
        signal: method === 'GET' ? this.#stop : undefined,
      });
      this.#clock.observe(res.serverAheadMs);
      return res;
    } catch (err) {
      return { error: describeError(err) };
    }
  }

  #backoff(): Backoff {
    return createBackoff(this.config.backoffInitialSeconds * 1000, this.config.backoffMaxSeconds * 1000);
  }
}

/** The hook's variables that differ per command (on top of the agent's #baseEnv). */
function commandEnv(cmd: ValidCommand): Record<string, string> {
  return {
    REBOOT_ID: cmd.rebootId,
    COMMAND_ID: cmd.id,
    COMMAND_TYPE: cmd.type,
    NODE_ID: cmd.node,
    XPU_ID: cmd.xpu ?? '',
    DEADLINE: isoTime(cmd.deadline),
  };
}

/**
 * A dry run changed nothing, so it never reports `succeeded`: the coordinator would take the
 * host as prepared. A required hook's dry run is `failed` (the reboot must not go on as if the
 * host were protected); any other is `skipped`.
 */
function dryRunOutcome(outcome: HookOutcome, dryRun: boolean, required: boolean): HookOutcome {
  if (!dryRun || outcome.status !== 'succeeded') return outcome;
  const status = required ? 'failed' : 'skipped';
  const why = required ? 'a required hook that changed nothing has not prepared anything' : 'nothing was changed';
  return { ...outcome, status, output: `dry run (${DRY_RUN_ENV}=1): the hook exited 0, reported ${status}: ${why}\n${outcome.output}` };
}

function serverMessage(res: HttpResponse): string {
  try {
    const body = JSON.parse(res.body) as { error?: unknown; message?: unknown };
    return [body.error, body.message].filter((x) => typeof x === 'string' && x).join(': ');
  } catch {
    return res.body.slice(0, 200);
  }
}
