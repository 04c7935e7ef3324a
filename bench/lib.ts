// Shared helpers of the bench: clocks, statistics, /proc sampling, child processes with a small IPC protocol, HTTP.
import { fork, spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  writeFileSync,
  chmodSync,
  mkdirSync,
  fstatSync,
} from 'node:fs';
import http from 'node:http';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

export const ROOT = resolve(import.meta.dirname, '..');
export const BENCH_DIR = join(ROOT, 'bench');

/**
 * Wall-clock time in ms with sub-ms resolution: CLOCK_MONOTONIC plus the realtime origin of the process.
 * Both clocks get the same NTP frequency corrections, so values from different processes compare (and
 * compare with a hook's $EPOCHREALTIME) unless the clock is stepped during the run.
 */
export const now = (): number => performance.timeOrigin + performance.now();

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Stats {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  // Nearest rank: the value below which p% of the samples fall (no interpolation).
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function stats(values: number[]): Stats {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return {
    n: s.length,
    min: round(s[0]),
    p50: round(percentile(s, 50)),
    p90: round(percentile(s, 90)),
    p95: round(percentile(s, 95)),
    p99: round(percentile(s, 99)),
    max: round(s[s.length - 1]),
    mean: round(mean),
  };
}

export function round(v: number, digits = 2): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

// --- /proc ----------------------------------------------------------------------------------------

/** VmRSS, VmHWM (peak) and the anonymous / file-backed parts of RSS of a process, in MiB; undefined once it is gone. */
export function procMemory(pid: number): { rssMb: number; hwmMb: number; anonMb: number; fileMb: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024, anonMb: kb('RssAnon') / 1024, fileMb: kb('RssFile') / 1024 };
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds a process has run so far, with ns resolution: the sum of its threads' on-CPU time from
 * /proc/PID/task/TID/schedstat (utime+stime in /proc/PID/stat tick at 10 ms, too coarse for an idle agent).
 */
export function procCpuSeconds(pid: number): number | undefined {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // the thread ended meanwhile
      }
    }
    return ns / 1e9;
  } catch {
    return undefined;
  }
}

/** A process and all its descendants (the local stack runs dynalite as a child). */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The command may contain spaces and parentheses: the ppid is the 2nd field after the last ')'.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!parents.has(ppid)) parents.set(ppid, []);
      parents.get(ppid)!.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(parents.get(out[i]) ?? []));
  return out;
}

/** Proportional set size (shared pages split among the processes sharing them) and its anonymous / file-backed parts, in MiB. */
export function procPss(pid: number): { pssMb: number; anonMb: number; fileMb: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
    return { pssMb: kb('Pss') / 1024, anonMb: kb('Pss_Anon') / 1024, fileMb: kb('Pss_File') / 1024 };
  } catch {
    return undefined;
  }
}

/** A short name for one of the stack's processes: its script's file name (stack-child, dynamo-server, sqs-server). */
function procName(pid: number): string {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const script = args.find((a) => /\.(ts|js|mjs)$/.test(a));
    return script ? basename(script).replace(/\.(ts|js|mjs)$/, '') : (args[0] ?? String(pid));
  } catch {
    return String(pid);
  }
}

/** CPU seconds used so far by each process of a tree, by name (GC settings trade memory for CPU: the bench shows both). */
export function treeCpuSeconds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of processTree(pid)) {
    const cpu = procCpuSeconds(p);
    if (cpu !== undefined) out[procName(p)] = (out[procName(p)] ?? 0) + cpu;
  }
  return out;
}

export interface ProcessPss {
  name: string;
  pssMb: number;
  anonMb: number;
  fileMb: number;
}

/**
 * Memory of a whole process tree. RSS summed counts pages the processes share (the node binary,
 * libraries) once per process, so `pssMb`, which counts each page once, is the tree's real
 * footprint; VmHWM summed is only an upper bound of its peak (the processes peak at different times).
 */
export function treeMemory(
  pid: number,
): (NonNullable<ReturnType<typeof procMemory>> & { pssMb: number; processes: ProcessPss[] }) | undefined {
  const pids = processTree(pid);
  const parts = pids.map(procMemory).filter((m) => m !== undefined);
  if (parts.length === 0) return undefined;
  const sum = (k: 'rssMb' | 'hwmMb' | 'anonMb' | 'fileMb') => parts.reduce((a, m) => a + m[k], 0);
  const processes: ProcessPss[] = [];
  for (const p of pids) {
    const m = procPss(p);
    if (m) processes.push({ name: procName(p), ...m });
  }
  const pssMb = processes.reduce((a, m) => a + m.pssMb, 0);
  return { rssMb: sum('rssMb'), hwmMb: sum('hwmMb'), anonMb: sum('anonMb'), fileMb: sum('fileMb'), pssMb, processes };
}

/**
 * Samples a process tree's memory every `everyMs`: the peak of its summed PSS (the footprint, each
 * shared page once) with each process's share at that moment, the peak of its summed RSS, and its
 * summed VmHWM (an upper bound).
 */
export function memorySampler(pid: number, everyMs = 200) {
  let peakRss = 0;
  let peakPss = 0;
  let hwm = 0;
  let last = { rssMb: 0, pssMb: 0 };
  let atPeak = { anonMb: 0, fileMb: 0, processes: [] as ProcessPss[] };
  const tick = () => {
    const m = treeMemory(pid);
    if (!m) return;
    last = { rssMb: m.rssMb, pssMb: m.pssMb };
    if (m.pssMb > peakPss) {
      atPeak = {
        anonMb: round(m.anonMb, 1),
        fileMb: round(m.fileMb, 1),
        processes: m.processes.map((p) => ({
          name: p.name,
          pssMb: round(p.pssMb, 1),
          anonMb: round(p.anonMb, 1),
          fileMb: round(p.fileMb, 1),
        })),
      };
    }
    peakPss = Math.max(peakPss, m.pssMb);
    peakRss = Math.max(peakRss, m.rssMb);
    hwm = Math.max(hwm, m.hwmMb);
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    /** Summed RSS and PSS now. */
    get current() {
      tick();
      return { rssMb: round(last.rssMb, 1), pssMb: round(last.pssMb, 1) };
    },
    stop() {
      tick();
      clearInterval(timer);
      return { peakPssMb: round(peakPss, 1), peakRssMb: round(peakRss, 1), hwmMb: round(hwm, 1), lastRssMb: round(last.rssMb, 1), atPeak };
    },
  };
}

// --- child processes ------------------------------------------------------------------------------

const children = new Set<ChildProcess>();

/** Kills what the bench started if it dies half-way (each by its own pid). */
export function killChildren(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(ROOT, 'node_modules/.bin')}:${process.env.PATH}`, LC_ALL: 'C' };
  for (const k of Object.keys(env)) if (k.startsWith('AWS_') || k.startsWith('VITEST') || k.startsWith('REBOOT_AGENT_')) delete env[k];
  return { ...env, ...extra };
}

/** A forked Node child speaking request/response over IPC: call(op, args) → its answer. */
export class IpcChild {
  readonly proc: ChildProcess;
  readonly name: string;
  #next = 1;
  readonly #pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  readonly #events = new Map<string, (msg: any) => void>();
  readonly exited: Promise<number | null>;

  constructor(name: string, script: string, opts: { env?: Record<string, string>; log: string; execArgv?: string[] }) {
    this.name = name;
    const fd = openSync(opts.log, 'a');
    this.proc = fork(script, [], {
      cwd: ROOT,
      env: childEnv(opts.env),
      execArgv: opts.execArgv ?? [],
      stdio: ['ignore', fd, fd, 'ipc'],
    });
    closeSync(fd);
    children.add(this.proc);
    this.exited = new Promise((r) =>
      this.proc.once('exit', (code) => {
        children.delete(this.proc);
        for (const p of this.#pending.values()) p.reject(new Error(`${name} exited (code ${code}); see ${opts.log}`));
        this.#pending.clear();
        r(code);
      }),
    );
    this.proc.on('message', (msg: any) => {
      if (msg && typeof msg.id === 'number' && this.#pending.has(msg.id)) {
        const p = this.#pending.get(msg.id)!;
        this.#pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`${name}: ${msg.error}`));
        else p.resolve(msg.result);
      } else if (msg && typeof msg.event === 'string') {
        this.#events.get(msg.event)?.(msg);
      }
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  waitEvent(event: string, timeoutMs: number): Promise<any> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no '${event}' within ${timeoutMs} ms`)), timeoutMs);
      this.#events.set(event, (msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (code ${code}) before '${event}'`));
      });
    });
  }

  call<T = any>(op: string, args: unknown = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.proc.send({ id, op, args });
    });
  }

  /** SIGTERM, then SIGKILL after timeoutMs; resolves to the exit code (null: killed by a signal). */
  async stop(timeoutMs = 20_000): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** The child side of IpcChild: answers {id, op, args} with {id, result} or {id, error}. */
export function serveIpc(handlers: Record<string, (args: any) => unknown>): void {
  process.on('message', async (msg: any) => {
    if (!msg || typeof msg.id !== 'number') return;
    const h = handlers[msg.op];
    try {
      if (!h) throw new Error(`unknown op ${msg.op}`);
      const result = await h(msg.args ?? {});
      process.send!({ id: msg.id, result });
    } catch (err) {
      process.send!({ id: msg.id, error: (err as Error).stack ?? String(err) });
    }
  });
}

/** A real `rebootctl agent` process (the CLI re-executes itself as the lean daemon, same pid). */
export function spawnRealAgent(opts: {
  url: string;
  agent: string;
  token: string;
  hooks: string;
  state: string;
  log: string;
  wait?: number;
}) {
  const fd = openSync(opts.log, 'a');
  const args = [
    join(ROOT, 'cli/rebootctl.js'),
    'agent',
    '--server',
    opts.url,
    '--agent',
    opts.agent,
    '--hooks',
    opts.hooks,
    '--state',
    opts.state,
  ];
  if (opts.wait !== undefined) args.push('--wait', String(opts.wait));
  const proc = spawn(process.execPath, args, {
    cwd: ROOT,
    env: childEnv({ REBOOT_AGENT_TOKEN: opts.token }),
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  children.add(proc);
  const exited = new Promise<void>((r) =>
    proc.once('exit', () => {
      children.delete(proc);
      r();
    }),
  );
  return {
    proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

// --- hooks ----------------------------------------------------------------------------------------

/**
 * Hooks that append "$EPOCHREALTIME type node command" to one log and exit 0. $EPOCHREALTIME is a
 * bash builtin (no fork of `date`), so the timestamp is taken as soon as bash runs the script.
 */
export function writeTimestampHooks(dir: string, log: string, types: string[]): string {
  mkdirSync(dir, { recursive: true });
  for (const t of types) {
    const file = join(dir, t);
    writeFileSync(file, `#!/bin/bash\necho "$EPOCHREALTIME ${t} $NODE_ID $COMMAND_ID" >> '${log}'\n`);
    chmodSync(file, 0o755);
  }
  return dir;
}

/** Tails a hook log: resolves waits for "<node>|<type>" with the hook's start time (ms). */
export class HookLog {
  readonly file: string;
  readonly times = new Map<string, number>();
  /** Every run of each key, with the line number it was logged at. */
  readonly #all = new Map<string, Array<{ n: number; t: number }>>();
  #lines = 0;
  #offset = 0;
  #rest = '';
  readonly #waiters = new Map<string, Array<(t: number) => void>>();
  #timer: NodeJS.Timeout | undefined;

  constructor(file: string) {
    this.file = file;
    if (!existsSync(file)) writeFileSync(file, '');
  }

  read(): void {
    const fd = openSync(this.file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size <= this.#offset) return;
      const buf = Buffer.alloc(size - this.#offset);
      readSync(fd, buf, 0, buf.length, this.#offset);
      this.#offset = size;
      const text = this.#rest + buf.toString('utf8');
      const lines = text.split('\n');
      this.#rest = lines.pop() ?? '';
      for (const line of lines) {
        const [epoch, type, node] = line.trim().split(/\s+/);
        if (!epoch || !type || !node) continue;
        const key = `${node}|${type}`;
        const t = Number(epoch.replace(',', '.')) * 1000;
        if (!this.times.has(key)) this.times.set(key, t);
        const runs = this.#all.get(key) ?? [];
        runs.push({ n: this.#lines++, t });
        this.#all.set(key, runs);
        const ws = this.#waiters.get(key);
        if (ws) {
          this.#waiters.delete(key);
          for (const w of ws) w(t);
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Lines logged so far (a mark for waitForNext). */
  get lineCount(): number {
    this.read();
    return this.#lines;
  }

  /** Like waitFor, for a key that may have run before: a line for it logged after `after` lines. */
  async waitForNext(key: string, after: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.read();
      const t = this.#all.get(key)?.find((x) => x.n >= after);
      if (t) return t.t;
      if (Date.now() > deadline) throw new Error(`hook ${key} did not run (again) within ${timeoutMs} ms`);
      // Only pacing depends on this: the time measured is the hook's own stamp.
      await sleep(5);
    }
  }

  waitFor(key: string, timeoutMs: number): Promise<number> {
    this.read();
    const t = this.times.get(key);
    if (t !== undefined) return Promise.resolve(t);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`hook ${key} did not run within ${timeoutMs} ms`)), timeoutMs);
      const list = this.#waiters.get(key) ?? [];
      list.push((v) => {
        clearTimeout(timer);
        resolve(v);
      });
      this.#waiters.set(key, list);
      this.#timer ??= setInterval(() => {
        this.read();
        if (this.#waiters.size === 0) {
          clearInterval(this.#timer);
          this.#timer = undefined;
        }
      }, 5);
    });
  }
}

// --- HTTP -----------------------------------------------------------------------------------------

export interface HttpResult {
  status: number;
  body: string;
  json?: any;
}

/** Keep-alive HTTP/1.1 client on node:http with at most `connections` sockets. */
export function httpClient(base: string, connections = 8) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const url = new URL(base);
  function request(
    method: string,
    path: string,
    opts: { token?: string; body?: unknown; raw?: string; timeoutMs?: number } = {},
  ): Promise<HttpResult> {
    const payload = opts.raw ?? (opts.body !== undefined ? JSON.stringify(opts.body) : undefined);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          path,
          method,
          agent,
          headers: {
            ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
            ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = body ? JSON.parse(body) : undefined;
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body, json });
          });
        },
      );
      req.setTimeout(opts.timeoutMs ?? 60_000, () => req.destroy(new Error(`${method} ${path}: no response in time`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive socket the server closed (its keep-alive timeout) just as we reused it: the request never
        // reached the server, so send it again on a fresh socket (the pattern of Node's http docs, `reusedSocket`).
        if (req.reusedSocket && err.code === 'ECONNRESET') request(method, path, opts).then(resolve, reject);
        else reject(err);
      });
      req.end(payload);
    });
  }
  return {
    request,
    close: () => agent.destroy(),
  };
}

export type HttpClient = ReturnType<typeof httpClient>;

/** Runs fn over items with at most `concurrency` at a time. */
export async function pool<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      await fn(items[i], i);
    }
  });
  await Promise.all(workers);
}

export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs: number,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// --- inventory ------------------------------------------------------------------------------------

export interface BenchNode {
  id: string;
  bmcToken: string;
  agentToken: string;
  xpus: string[];
}

/** Writes an inventory (JSON is YAML) with `count` nodes of `xpus` xPUs each. */
export function writeInventory(file: string, prefix: string, count: number, xpus = 1, persistentPower = false): BenchNode[] {
  const nodes: BenchNode[] = [];
  const defs = [];
  for (let i = 0; i < count; i++) {
    const id = `${prefix}${String(i).padStart(5, '0')}`;
    const x = Array.from({ length: xpus }, (_, j) => `dpu${j}`);
    const node = { id, bmcToken: `bmc-${id}-token`, agentToken: `agent-${id}-token`, xpus: x };
    nodes.push(node);
    defs.push({
      id,
      rack: `r${i % 40}`,
      zone: `z${i % 4}`,
      tenant: 't1',
      trusted: true,
      bmcToken: node.bmcToken,
      agentToken: node.agentToken,
      xpus: x.map((xid) => ({ id: xid, persistentPower })),
    });
  }
  const inventory = {
    // Long notice and heartbeat bounds: workflows parked by the bench (scale, burst) must not time out while parked.
    policy: {
      xpuReboot: { noticeSeconds: 900, maxExtensionSeconds: 1800, maxExtensions: 3, heartbeatSeconds: 3600 },
      hostReboot: { denyWhile: ['xpu-rebooting'], heartbeatSeconds: 3600 },
    },
    nodes: defs,
  };
  writeFileSync(file, JSON.stringify(inventory));
  return nodes;
}
