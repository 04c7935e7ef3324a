// `npm run bench` (issue 10): latency, floor, burst, scale, cost and agent figures on the local stack, real
// processes, loopback. Prints the results as JSON on stdout and writes them to bench/results.json
// (`--quick`: tiny sizes, written to bench/out/results.quick.json unless --out says otherwise).
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { COMMAND_TYPES } from '../lambdas/core/types.ts';
import {
  BENCH_DIR,
  ROOT,
  HookLog,
  IpcChild,
  killChildren,
  memorySampler,
  now,
  pool,
  procCpuSeconds,
  treeCpuSeconds,
  procMemory,
  round,
  sleep,
  spawnRealAgent,
  stats,
  until,
  writeInventory,
  writeTimestampHooks,
  httpClient,
  type BenchNode,
  type Stats,
} from './lib.ts';
import { PRICES, idleAgentMonthlyUsd, priceReboot, type RebootCounts } from './cost.ts';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const KEEP = argv.includes('--keep');
const ONLY = argv
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',');
const OUT =
  argv.find((a) => a.startsWith('--out='))?.slice(6) ??
  (QUICK ? join(BENCH_DIR, 'out/results.quick.json') : join(BENCH_DIR, 'results.json'));

const SIZES = QUICK
  ? {
      latency: 20,
      warmup: 5,
      realCheck: 3,
      floor: 20,
      probes: 10,
      burstEvents: 500,
      burstNodes: 50,
      scale: 50,
      costXpu: 3,
      costHost: 3,
      idleSeconds: 5,
      agentHosts: 1,
      staggerSeconds: 1,
    }
  : {
      latency: 500,
      warmup: 20,
      realCheck: 12,
      floor: 150,
      probes: 100,
      burstEvents: 10_000,
      burstNodes: 1_000,
      scale: 1_000,
      costXpu: 10,
      costHost: 10,
      idleSeconds: 25,
      agentHosts: 2,
      staggerSeconds: 10,
    };

// --set=burstEvents=2000,burstNodes=200: other sizes, for looking into one phase (results are then not comparable).
for (const kv of (argv.find((a) => a.startsWith('--set='))?.slice(6) ?? '').split(',').filter(Boolean)) {
  const [k, v] = kv.split('=');
  if (!(k in SIZES)) throw new Error(`--set: unknown size ${k} (one of ${Object.keys(SIZES).join(', ')})`);
  (SIZES as Record<string, number>)[k] = Number(v);
}

// Round 2 targets (issue 19); round 1 was p50 30 / p99 150 ms, 1,000/s, 1,024 MiB, $0.001, 60 MB.
const TARGETS = {
  latencyP50Ms: 12,
  latencyP99Ms: 40,
  floorRatio: 2.0,
  burstEventsPerSecond: 2_500,
  burstAllRebootsStartedSeconds: 15,
  lostEvents: 0,
  duplicatesSuppressedPct: 100,
  malformedRejectedPct: 100,
  // Issue 19: the stack's footprint (PSS of its process tree) with 1,000 workflows parked and driven to completion.
  scalePeakPssMb: 512,
  costUsdPerReboot: 0.0003,
  agentIdleRssMb: 45,
};

const RUN_DIR = join(BENCH_DIR, 'out', `run-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
mkdirSync(RUN_DIR, { recursive: true });
const started = Date.now();

function log(msg: string) {
  process.stderr.write(`[bench +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
}

const HOST_AND_XPU_HOOKS = [...COMMAND_TYPES];

// ---- the stack ---------------------------------------------------------------------------------------------------

interface BenchStack {
  child: IpcChild;
  url: string;
  operatorToken: string;
  stats(): Promise<any>;
  stop(): Promise<number | null>;
}

/** Exit code of each phase's stack on SIGTERM (0: stopped cleanly). */
const stackExits: Record<string, number | null> = {};

/**
 * The Node flags `npm start` runs the stack with (package.json: `node FLAGS local/main.ts`), so the bench measures
 * what users run; BENCH_STACK_FLAGS adds flags to look into one (V8 flags NODE_OPTIONS refuses, e.g. --heap-growing-percent).
 */
const STACK_FLAGS = [
  ...(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.start as string).split(/\s+/).filter((a) => a.startsWith('--')),
  ...(process.env.BENCH_STACK_FLAGS?.split(/\s+/).filter(Boolean) ?? []),
];

async function startStack(dir: string, nodesFile: string): Promise<BenchStack> {
  mkdirSync(dir, { recursive: true });
  const child = new IpcChild('stack', join(BENCH_DIR, 'stack-child.ts'), {
    log: join(dir, 'stack.log'),
    execArgv: STACK_FLAGS,
    env: {
      HOST: '127.0.0.1',
      PORT: '0',
      DATA_DIR: join(dir, 'data'),
      NODES_FILE: nodesFile,
      OPERATOR_TOKEN: 'operator-token-for-bench',
      LOG_LEVEL: 'warn',
      // e.g. BENCH_STACK_NODE_OPTIONS=--cpu-prof to profile the stack process of each phase
      ...(process.env.BENCH_STACK_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_STACK_NODE_OPTIONS } : {}),
      ...(process.env.BENCH_NO_COUNTERS ? { BENCH_NO_COUNTERS: '1' } : {}),
    },
  });
  const ready = await child.waitEvent('ready', 60_000);
  return {
    child,
    url: ready.url,
    operatorToken: ready.operatorToken,
    stats: () => child.call('stats'),
    stop: async () => {
      const code = await child.stop();
      stackExits[dir.split('/').pop()!] = code;
      return code;
    },
  };
}

async function startAgentHosts(count: number, dir: string): Promise<IpcChild[]> {
  const hosts = Array.from(
    { length: count },
    (_, i) => new IpcChild(`agents-${i}`, join(BENCH_DIR, 'agent-host.ts'), { log: join(dir, `agents-${i}.log`) }),
  );
  await Promise.all(hosts.map((h) => h.waitEvent('ready', 60_000)));
  return hosts;
}

async function runAgentsIn(
  hosts: IpcChild[],
  stack: BenchStack,
  agents: Array<{ id: string; token: string }>,
  hooks: string,
  state: string,
  staggerMs = 0,
) {
  await Promise.all(
    hosts.map((h, i) =>
      h.call('start', { server: stack.url, agents: agents.filter((_, j) => j % hosts.length === i), hooks, state, wait: 20, staggerMs }),
    ),
  );
  const ids = agents.map((a) => a.id);
  await until(
    'every agent to hold a long poll',
    async () => (await stack.child.call('polling', { agents: ids })) === ids.length,
    90_000,
    100,
  );
}

const dedupKey = (node: string, id: string) => `native:${node}:${id}`;

// ---- 1, 2, 6: latency, floor, agent idle -------------------------------------------------------------------------

async function latencyPhase() {
  const dir = join(RUN_DIR, 'latency');
  mkdirSync(dir, { recursive: true });
  const { latency: N, warmup: W, realCheck: R } = SIZES;
  // Two xPUs per node: a real agent's first reboot (dpu0) runs cold, its second (dpu1) warm.
  const nodes = writeInventory(join(dir, 'nodes.json'), 'lat', W + N + R + 1, 2);
  const hookLogFile = join(dir, 'hooks.log');
  const hooks = writeTimestampHooks(join(dir, 'hooks'), hookLogFile, HOST_AND_XPU_HOOKS);
  const hookLog = new HookLog(hookLogFile);
  const stack = await startStack(dir, join(dir, 'nodes.json'));
  log(`latency: stack up at ${stack.url}; starting ${W + N} in-process agents in ${SIZES.agentHosts} process(es)`);
  const hosts = await startAgentHosts(SIZES.agentHosts, dir);
  const inProcess = nodes.slice(0, W + N);
  // Started over one poll period, as a fleet's agents would have: their long polls are not synchronised.
  await runAgentsIn(
    hosts,
    stack,
    inProcess.map((n) => ({ id: n.id, token: n.agentToken })),
    hooks,
    join(dir, 'state'),
    SIZES.staggerSeconds * 1000,
  );

  // 6. One real `rebootctl agent`, idle, for the whole phase (it serves a node no event is sent to).
  const idleNode = nodes[W + N + R];
  const idleAgent = spawnRealAgent({
    url: stack.url,
    agent: idleNode.id,
    token: idleNode.agentToken,
    hooks,
    state: join(dir, 'idle-state'),
    log: join(dir, 'idle-agent.log'),
  });
  const idleWatch = watchIdleAgent(idleAgent.proc.pid!, QUICK ? 3_000 : 5_000);

  const client = httpClient(stack.url, 4);
  const sample = async (node: BenchNode, id: string, xpu = 'dpu0') => {
    const before = hookLog.lineCount;
    const t0 = now();
    const res = await client.request('POST', '/v1/events', {
      token: node.bmcToken,
      body: { id, type: 'xpu.reboot.pending', node: node.id, xpu, data: { reason: 'bench latency' } },
    });
    const tAck = now();
    if (res.status !== 202) throw new Error(`POST /v1/events answered ${res.status}: ${res.body}`);
    const tHook = await hookLog.waitForNext(`${node.id}|migrate-workloads`, before, 20_000);
    // The agent runs protect-pcie next and posts both results: let that settle before the next sample.
    await hookLog.waitForNext(`${node.id}|protect-pcie`, before, 20_000);
    await sleep(15);
    return { node: node.id, id, t0, tAck, tHook, ms: tHook - t0 };
  };

  log(`latency: ${W} warm-up + ${N} samples, one reboot at a time, each on its own node`);
  const samples: Array<Awaited<ReturnType<typeof sample>>> = [];
  let before: any;
  for (let k = 0; k < W + N; k++) {
    if (k === W) before = await stack.stats();
    const s = await sample(nodes[k], `lat-${k}`);
    if (k >= W) samples.push(s);
  }
  const during = diffStats(before, await stack.stats());
  const perCall = (t: Record<string, { n: number; ms: number }>) =>
    Object.fromEntries(
      Object.entries(t)
        .filter(([, v]) => v.n > 0)
        .map(([k, v]) => [k, { calls: v.n, meanMs: round(v.ms / v.n) }]),
    );
  const callLatency = { dynamoDb: perCall(during.ddbTime), sqs: perCall(during.sqsTime) };

  log(`latency: ${R} samples with one real 'rebootctl agent' process per node`);
  const realNodes = nodes.slice(W + N, W + N + R);
  const realAgents = realNodes.map((n) =>
    spawnRealAgent({
      url: stack.url,
      agent: n.id,
      token: n.agentToken,
      hooks,
      state: join(dir, 'real-state'),
      log: join(dir, `real-${n.id}.log`),
    }),
  );
  await until(
    'real agents to poll',
    async () => (await stack.child.call('polling', { agents: realNodes.map((n) => n.id) })) === R,
    90_000,
    100,
  );
  const realSamples = [];
  const realWarm = [];
  for (const [k, n] of realNodes.entries()) realSamples.push(await sample(n, `real-${k}`));
  for (const [k, n] of realNodes.entries()) realWarm.push(await sample(n, `real-warm-${k}`, 'dpu1'));
  const realRss = realAgents.map((a) => procMemory(a.proc.pid!)?.rssMb ?? NaN);
  await Promise.all(realAgents.map((a) => a.stop()));

  // 2. The floor, measured now, against the same background (the stack and every agent still running).
  log('floor: raw HTTP, fauxqs, Step Functions engine, hook spawn');
  const floorChild = new IpcChild('floor', join(BENCH_DIR, 'floor-child.ts'), {
    log: join(dir, 'floor.log'),
    env: { FLOOR_DATA_DIR: join(dir, 'floor-data') },
  });
  await floorChild.waitEvent('ready', 60_000);
  const floorPort = await floorChild.call<number>('port');
  const floorHttp = httpClient(`http://127.0.0.1:${floorPort}`, 1);
  const postOneWay: number[] = [];
  const longPoll: number[] = [];
  const eventBody = JSON.stringify({
    id: 'floor',
    type: 'xpu.reboot.pending',
    node: nodes[0].id,
    xpu: 'dpu0',
    data: { reason: 'bench latency' },
  });
  for (let i = 0; i < SIZES.floor; i++) {
    const r = await floorPostOneWay(floorPort, eventBody);
    postOneWay.push(r);
    const p = await floorHttp.request('GET', '/poll?wait=20');
    longPoll.push(now() - p.json[0].t);
  }
  floorHttp.close();
  floorAgent.destroy();
  const sqsRtt: number[] = await floorChild.call('sqs', { n: SIZES.floor });
  const sfnStart: number[] = await floorChild.call('sfn', { n: SIZES.floor });
  await floorChild.stop();
  const probeHooks = writeTimestampHooks(join(dir, 'probe-hooks'), join(dir, 'probe.log'), ['migrate-workloads']);
  writeFileSync(join(dir, 'probe.log'), '');
  // The floor's hook start is the agent's own (a warm gate: agent/warm-gate.ts); a fork then is kept for reference.
  const spawnMs: number[] = await hosts[0].call('probeSpawn', {
    hook: join(probeHooks, 'migrate-workloads'),
    log: join(dir, 'probe.log'),
    n: SIZES.probes,
    warm: true,
  });
  const coldSpawnMs: number[] = await hosts[0].call('probeSpawn', {
    hook: join(probeHooks, 'migrate-workloads'),
    log: join(dir, 'probe.log'),
    n: SIZES.probes,
  });
  const fsyncMs: number[] = await hosts[0].call('probeFsync', { dir: join(dir, 'probe-journal'), n: SIZES.probes });

  // Where the time goes: timestamps from the stack, the agents and the hooks, per sample.
  // Reboot ids are ULIDs (not derivable from the event): the stack child remembers which key got which.
  const itemsOf = async (list: Array<{ node: string; id: string }>) => {
    const keys = list.map((s) => dedupKey(s.node, s.id));
    const ids: Array<string | null> = await stack.child.call('rebootIds', { keys });
    return list.map((s, i) => ({ dedupKey: keys[i], rebootId: ids[i] ?? '', agent: s.node }));
  };
  const items = await itemsOf(samples);
  const marks: any[] = await stack.child.call('marks', { items });
  const realMarks: any[] = await stack.child.call('marks', { items: await itemsOf(realSamples) });
  const realAgentSide = stats(realSamples.map((s, i) => s.tHook - realMarks[i].delivered));
  const realStackSide = stats(realSamples.map((s, i) => realMarks[i].delivered - s.t0));
  const hookStarted: Record<string, number> = Object.assign({}, ...(await Promise.all(hosts.map((h) => h.call('hookStarted')))));
  const seg: Record<string, number[]> = {};
  // Each sample's own segments too: the slowest samples say where the tail (p99) goes.
  const bySample: Array<Record<string, number>> = samples.map(() => ({}));
  let current: Record<string, number> = {};
  const add = (k: string, v: number | undefined) => {
    if (v === undefined || !Number.isFinite(v)) return;
    (seg[k] ??= []).push(v);
    current[k] = v;
  };
  samples.forEach((s, i) => {
    const m = marks[i];
    current = bySample[i];
    add('1 client → API handler (HTTP, auth, validation)', m.sendStart - s.t0);
    add('2 API: SendMessageBatch to fauxqs', m.sendEnd - m.sendStart);
    add('3 fauxqs → ingest poller wakes', m.ingestStart - m.sendEnd);
    add('4 ingest: dedup check, claim, reboot record', m.wfCall - m.ingestStart);
    add('5 StartExecution (SDK client → engine, in process)', m.wfDone - m.wfCall);
    add('6 engine: Choice → PrepareHost Task scheduled', m.taskScheduled - m.wfCall);
    add('7 await Lambda: load, plan, first command written', m.firstPut - m.taskScheduled);
    add('8 commands written, agent long poll handed them (or woken)', m.notify - m.firstPut);
    add('9 long poll wakes → response sent', m.delivered - m.notify);
    add('10 agent: response → hook running (parse, fsync, spawn)', s.tHook - m.delivered);
    const logged = hookStarted[`${s.node}|migrate-workloads|${items[i].rebootId}`];
    add('(info) agent logs "hook started" (after spawn, identify, 2nd fsync) minus hook running', logged - s.tHook);
  });
  // With BENCH_SAMPLES_OUT=FILE, every sample's start (epoch ms), total and segments, to look into the tail.
  if (process.env.BENCH_SAMPLES_OUT)
    writeFileSync(
      process.env.BENCH_SAMPLES_OUT,
      JSON.stringify(samples.map((s, i) => ({ t0: s.t0, ms: s.ms, node: s.node, ...bySample[i] }))),
    );
  // The slowest 1 % of the samples (at least 5): each segment's mean over them.
  const slowest = samples
    .map((s, i) => ({ ms: s.ms, segs: bySample[i] }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, Math.max(5, Math.ceil(samples.length / 100)));
  const tailMean = (k: string) => {
    const v = slowest.map((s) => s.segs[k]).filter((x) => x !== undefined);
    return v.length ? stats(v).mean : NaN;
  };
  const breakdown = Object.fromEntries(
    Object.entries(seg).map(([k, v]) => [k, { p50: stats(v).p50, mean: stats(v).mean, p95: stats(v).p95, slowestMean: tailMean(k) }]),
  );

  // 6. The idle agent: RSS and CPU from the end of its start-up to now (at least idleSeconds).
  const idle = await idleWatch.finish(SIZES.idleSeconds);
  await idleAgent.stop();

  const idleStats = await stack.stats();
  await Promise.all(hosts.map((h) => h.call('stop').catch(() => undefined)));
  await Promise.all(hosts.map((h) => h.stop()));
  client.close();
  await stack.stop();

  const lat = stats(samples.map((s) => s.ms));
  const spawnStats = stats(spawnMs);
  const floor = {
    httpPostOneWayMs: stats(postOneWay),
    sqsSendToReceiveMs: stats(sqsRtt),
    sfnStartToFirstTaskMs: stats(sfnStart),
    httpLongPollWakeMs: stats(longPoll),
    hookSpawnMs: spawnStats,
    coldHookSpawnMs: stats(coldSpawnMs),
  };
  const floorMs = round(
    floor.httpPostOneWayMs.p50 +
      floor.sqsSendToReceiveMs.p50 +
      floor.sfnStartToFirstTaskMs.p50 +
      floor.httpLongPollWakeMs.p50 +
      spawnStats.p50,
  );
  return {
    latency: lat,
    realCheck: stats(realSamples.map((s) => s.ms)),
    realWarm: stats(realWarm.map((s) => s.ms)),
    realAgentSide,
    realStackSide,
    realRss: stats(realRss),
    ackMs: stats(samples.map((s) => s.tAck - s.t0)),
    breakdown,
    callLatency,
    floor,
    floorMs,
    spawn: spawnStats,
    fsync: stats(fsyncMs),
    idle: {
      ...idle,
      pollWaitSeconds: 20,
      stackSidePerIdlePoll: {
        polls: idleStats.idle.polls,
        dynamoOps: round(idleStats.idle.ddbOps / (idleStats.idle.polls || 1), 2),
        dynamoRru: round(idleStats.idle.rru / (idleStats.idle.polls || 1), 2),
      },
    },
  };
}

const floorAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** A raw POST to the floor process; it answers how long after `x-t0` it had read the body. */
/** Samples an idle agent process from `warmupMs` after now: RSS every second, CPU (all threads) over the window. */
function watchIdleAgent(pid: number, warmupMs: number) {
  const rss: number[] = [];
  let cpu0: number | undefined;
  let t0 = 0;
  let timer: NodeJS.Timeout | undefined;
  const begin = setTimeout(() => {
    cpu0 = procCpuSeconds(pid);
    t0 = Date.now();
    const tick = () => {
      const m = procMemory(pid);
      if (m) rss.push(m.rssMb);
    };
    tick();
    timer = setInterval(tick, 1000);
  }, warmupMs);
  return {
    async finish(minSeconds: number) {
      while (!t0 || Date.now() - t0 < minSeconds * 1000) await sleep(100);
      clearTimeout(begin);
      clearInterval(timer);
      const cpu1 = procCpuSeconds(pid)!;
      const windowS = (Date.now() - t0) / 1000;
      const mem = procMemory(pid)!;
      return {
        rssMb: round(stats(rss).p50, 1),
        peakRssMb: round(mem.hwmMb, 1),
        cpuSecondsPerHour: round(((cpu1 - cpu0!) / windowS) * 3600, 3),
        windowSeconds: round(windowS, 1),
      };
    },
  };
}

function floorPostOneWay(port: number, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/event',
        method: 'POST',
        agent: floorAgent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-t0': String(now()) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()).oneWay));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

type MemoryUsage = Record<'rss' | 'heapTotal' | 'heapUsed' | 'external' | 'arrayBuffers', number>;

/**
 * Polls process.memoryUsage() of the stack and of each emulator child and keeps the sample with the
 * largest summed RSS: V8 heap (total, used) vs native memory of each process at the peak.
 */
function heapSampler(stack: BenchStack, everyMs = 500) {
  let peak: { total: number; byProcess: Record<string, MemoryUsage> } = { total: 0, byProcess: {} };
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      const { children, ...own } = await stack.child.call<MemoryUsage & { children: Record<string, MemoryUsage> }>('memory');
      const byProcess = { 'stack-child': own, ...children };
      const total = Object.values(byProcess).reduce((a, m) => a + m.rss, 0);
      if (total > peak.total) peak = { total, byProcess };
    } catch {
      // the stack is stopping
    } finally {
      busy = false;
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const mb = (v: number) => round(v / 2 ** 20, 1);
      const shape = (m: MemoryUsage) => ({
        rssMb: mb(m.rss),
        heapTotalMb: mb(m.heapTotal),
        heapUsedMb: mb(m.heapUsed),
        externalMb: mb(m.external),
        arrayBuffersMb: mb(m.arrayBuffers),
      });
      return Object.fromEntries(Object.entries(peak.byProcess).map(([k, m]) => [k, shape(m)]));
    },
  };
}

// ---- 3: burst ----------------------------------------------------------------------------------------------------

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function burstPhase() {
  const dir = join(RUN_DIR, 'burst');
  mkdirSync(dir, { recursive: true });
  const total = SIZES.burstEvents;
  const distinct = Math.round(total * 0.75);
  const dups = Math.round(total * 0.2);
  const malformed = total - distinct - dups;
  const xpusPerNode = Math.ceil(distinct / SIZES.burstNodes);
  const nodes = writeInventory(join(dir, 'nodes.json'), 'burst', SIZES.burstNodes, xpusPerNode);
  const stack = await startStack(dir, join(dir, 'nodes.json'));
  const mem = memorySampler(stack.child.pid, 200);

  // Each distinct event is a reboot notice for its own xPU, so every one must start exactly one reboot.
  const random = rng(10);
  type Post = { kind: 'valid' | 'dup' | 'malformed'; token: string; raw: string; key: number; ref?: number };
  const originals: Post[] = [];
  const expectedKeys: string[] = [];
  for (let k = 0; k < distinct; k++) {
    const node = nodes[k % nodes.length];
    const ev = {
      id: `b-${k}`,
      type: 'xpu.reboot.pending',
      node: node.id,
      xpu: `dpu${Math.floor(k / nodes.length)}`,
      data: { reason: 'bench burst' },
    };
    originals.push({ kind: 'valid', token: node.bmcToken, raw: JSON.stringify(ev), key: 0, ref: k });
    expectedKeys.push(dedupKey(node.id, ev.id));
  }
  // Shuffle the originals, then put each duplicate somewhere after its original (a BMC retry comes later).
  const order = originals.map((_, i) => i).sort(() => random() - 0.5);
  for (const [pos, orig] of order.entries()) originals[orig].key = pos;
  const list: Post[] = [...originals];
  for (let d = 0; d < dups; d++) {
    const o = originals[Math.floor(random() * distinct)];
    list.push({ kind: 'dup', token: o.token, raw: o.raw, key: o.key + 0.5 + random() * (distinct - o.key) });
  }
  const shapes = [
    (n: BenchNode, i: number) => `{"id":"m-${i}","type":"xpu.reboot.pending","node":"${n.id}",`, // not JSON
    (n: BenchNode, i: number) => JSON.stringify({ id: `m-${i}`, node: n.id, xpu: 'dpu0' }), // no type
    (n: BenchNode, i: number) => JSON.stringify({ id: `m-${i}`, type: 'xpu.exploded', node: n.id, xpu: 'dpu0' }), // unknown type
    (n: BenchNode) => JSON.stringify({ type: 'xpu.reboot.pending', node: n.id, xpu: 'dpu0' }), // no id
    (n: BenchNode) => JSON.stringify({ id: 42, type: 'xpu.reboot.pending', node: n.id, xpu: 'dpu0' }), // id not a string
    (n: BenchNode, i: number) => JSON.stringify({ id: `m-${i}`, type: 'xpu.reboot.pending', node: n.id, xpu: 'dpu0', time: 'yesterday' }), // bad time
  ];
  for (let m = 0; m < malformed; m++) {
    const n = nodes[m % nodes.length];
    list.push({ kind: 'malformed', token: n.bmcToken, raw: shapes[m % shapes.length](n, m), key: random() * distinct });
  }
  list.sort((a, b) => a.key - b.key);

  const statuses = { valid: new Map<number, number>(), dup: new Map<number, number>(), malformed: new Map<number, number>() };
  const client = httpClient(stack.url, 32);
  log(
    `burst: posting ${total} events (${distinct} distinct, ${dups} duplicates, ${malformed} malformed) for ${nodes.length} nodes over 32 connections`,
  );
  const s0 = await stack.stats();
  const cpuAtStart = treeCpuSeconds(stack.child.pid);
  const tStart = now();
  let tLastAccepted = tStart;
  await pool(list, 32, async (p) => {
    let status = 0;
    try {
      status = (await client.request('POST', '/v1/events', { token: p.token, raw: p.raw })).status;
    } catch {
      status = -1;
    }
    if (status === 202) tLastAccepted = now();
    statuses[p.kind].set(status, (statuses[p.kind].get(status) ?? 0) + 1);
  });
  const tPosted = now();
  const accepted = (statuses.valid.get(202) ?? 0) + (statuses.dup.get(202) ?? 0);
  log(`burst: posted in ${((tPosted - tStart) / 1000).toFixed(1)} s; waiting for every reboot to start`);

  let tProcessed = NaN;
  let last: any;
  try {
    await until(
      'every accepted event processed and every reboot started',
      async () => {
        last = await stack.stats();
        const deleted = process.env.BENCH_NO_COUNTERS ? accepted : last.sqsMsgs.deleted - s0.sqsMsgs.deleted;
        if (Number.isNaN(tProcessed) && deleted >= accepted) tProcessed = now();
        return deleted >= accepted && last.firstCommands >= distinct;
      },
      QUICK ? 90_000 : 240_000,
      250,
    );
  } catch (err) {
    log(`burst: ${(err as Error).message}`);
  }
  last = await stack.stats();
  const cpuAtEnd = treeCpuSeconds(stack.child.pid);
  const expectedIds: Array<string | null> = await stack.child.call('rebootIds', { keys: expectedKeys });
  const expectedReboots = expectedIds.map((id, i) => id ?? `(no reboot for ${expectedKeys[i]})`);
  const missing: string[] = await stack.child.call('missingFirstCommand', { ids: expectedReboots });
  const executions: Record<string, number> = await stack.child.call('executionStatuses', { machine: 'xpu-reboot' });
  const executionCount = Object.values(executions).reduce((a, b) => a + b, 0);
  const memory = mem.stop();
  client.close();
  await stack.stop();

  const cpuSpent = Object.fromEntries(Object.entries(cpuAtEnd).map(([k, v]) => [k, round(v - (cpuAtStart[k] ?? 0), 2)]));
  const extraReboots = Math.max(0, last.rebootsCreated - distinct, executionCount - distinct);
  const dupAccepted = statuses.dup.get(202) ?? 0;
  const malformed400 = statuses.malformed.get(400) ?? 0;
  const postSeconds = (tPosted - tStart) / 1000;
  return {
    events: total,
    nodes: nodes.length,
    xpusPerNode,
    distinctEvents: distinct,
    duplicateEvents: dups,
    malformedEvents: malformed,
    connections: 32,
    statuses: Object.fromEntries(Object.entries(statuses).map(([k, m]) => [k, Object.fromEntries(m)])),
    accepted,
    eventsPerSecond: round(accepted / ((tLastAccepted - tStart) / 1000), 0),
    requestsPerSecond: round(total / postSeconds, 0),
    postingSeconds: round(postSeconds, 2),
    allProcessedSeconds: round((tProcessed - tStart) / 1000, 2),
    allRebootsStartedSeconds: last.firstCommands >= distinct ? round((last.lastFirstCommandAt - tStart) / 1000, 2) : null,
    rebootsStarted: last.firstCommands,
    rebootsCreated: last.rebootsCreated,
    executions: executionCount,
    lostEvents: missing.length,
    duplicatesSuppressedPct: dups === 0 ? 100 : round((100 * (dupAccepted - extraReboots)) / dupAccepted, 2),
    duplicatesCaughtByDedupKey: (last.metrics.DuplicatesSuppressed ?? 0) - (s0.metrics.DuplicatesSuppressed ?? 0),
    malformedRejectedPct: malformed === 0 ? 100 : round((100 * malformed400) / malformed, 2),
    validRejected: distinct + dups - accepted,
    // The tree's footprint at its peak (PSS: pages shared by the stack's processes counted once).
    stackPeakPssMb: memory.peakPssMb,
    stackPeakRssSumMb: memory.peakRssMb,
    stackHwmSumMb: memory.hwmMb,
    stackRssAtPeakMb: { anon: memory.atPeak.anonMb, file: memory.atPeak.fileMb },
    stackPssAtPeakByProcessMb: memory.atPeak.processes,
    ingestConcurrency: Number(process.env.INGEST_CONCURRENCY ?? 1),
    // CPU the stack's processes spent from the first POST until every reboot started: what throughput scales
    // with on a machine where the stack's one event loop is the limit, and less load-dependent than seconds.
    stackCpuSeconds: cpuSpent,
    stackCpuMsPerReboot: Object.fromEntries(Object.entries(cpuSpent).map(([k, v]) => [k, round((1000 * v) / distinct, 2)])),
  };
}

// ---- 4: scale ----------------------------------------------------------------------------------------------------

async function scalePhase() {
  const dir = join(RUN_DIR, 'scale');
  mkdirSync(dir, { recursive: true });
  const S = SIZES.scale;
  const nodes = writeInventory(join(dir, 'nodes.json'), 'scale', S, 1);
  const stack = await startStack(dir, join(dir, 'nodes.json'));
  const mem = memorySampler(stack.child.pid, 200);
  const heap = heapSampler(stack);
  const atStart = mem.current;
  const cpuAtStart = treeCpuSeconds(stack.child.pid);
  const client = httpClient(stack.url, 64);
  log(`scale: starting ${S} reboots and parking them in the notice phase`);
  const t0 = now();
  await pool(nodes, 16, async (n, i) => {
    const r = await client.request('POST', '/v1/events', {
      token: n.bmcToken,
      body: { id: `s-${i}`, type: 'xpu.reboot.pending', node: n.id, xpu: 'dpu0' },
    });
    if (r.status !== 202) throw new Error(`scale: POST answered ${r.status}`);
  });
  await until('every reboot parked with its commands written', async () => (await stack.stats()).firstCommands >= S, 180_000, 200);
  const parkedSeconds = (now() - t0) / 1000;
  await sleep(500);
  const parked: Record<string, number> = await stack.child.call('executionStatuses', { machine: 'xpu-reboot' });
  const memParked = mem.current;

  log(`scale: ${parked.RUNNING ?? 0} workflows in flight; answering their commands and posting xpu.ready`);
  const t1 = now();
  // Each node is driven like its two agents would: a long poll is parked before the step that fills it.
  const PARK_MS = 30;
  const pollFor = async (n: BenchNode, agent: string, types: string[]) => {
    const got = new Map<string, { id: string; type: string }>();
    const deadline = Date.now() + 120_000;
    while (types.some((t) => !got.has(t))) {
      if (Date.now() > deadline) throw new Error(`scale: ${agent} never got ${types.join(', ')}`);
      const r = await client.request('GET', `/v1/agents/${agent}/commands?wait=20`, { token: n.agentToken });
      for (const c of r.json ?? []) if (types.includes(c.type)) got.set(c.type, c);
    }
    return [...got.values()];
  };
  const ack = (n: BenchNode, agent: string, cmds: Array<{ id: string }>) =>
    Promise.all(
      cmds.map(async (c) => {
        const p = await client.request('POST', `/v1/agents/${agent}/commands/${c.id}`, {
          token: n.agentToken,
          body: { status: 'succeeded', output: 'ok' },
        });
        if (p.status !== 200) throw new Error(`scale: result for ${c.id} answered ${p.status}`);
      }),
    );
  await pool(nodes, 32, async (n, i) => {
    const xpuAgent = `${n.id}.dpu0`;
    const prepare = await pollFor(n, n.id, ['migrate-workloads', 'protect-pcie']);
    const proceed = pollFor(n, xpuAgent, ['proceed-reboot']);
    await sleep(PARK_MS);
    await ack(n, n.id, prepare);
    await ack(n, xpuAgent, await proceed);
    const restore = pollFor(n, n.id, ['restore-pcie']);
    await sleep(PARK_MS);
    for (const type of ['xpu.down', 'xpu.ready']) {
      const r = await client.request('POST', '/v1/events', {
        token: n.bmcToken,
        body: { id: `s-${type}-${i}`, type, node: n.id, xpu: 'dpu0' },
      });
      if (r.status !== 202) throw new Error(`scale: ${type} answered ${r.status}`);
    }
    // Contract 7.1: resume-workloads is sent only once restore-pcie succeeded. One poll at a time:
    // a second concurrent poll of the host would take restore-pcie and drop it.
    await ack(n, n.id, await restore);
    await ack(n, n.id, await pollFor(n, n.id, ['resume-workloads']));
  });
  let done: Record<string, number> = {};
  try {
    await until(
      'every workflow completed',
      async () => {
        done = await stack.child.call('executionStatuses', { machine: 'xpu-reboot' });
        return (done.SUCCEEDED ?? 0) >= S;
      },
      120_000,
      250,
    );
  } catch (err) {
    log(`scale: ${(err as Error).message}`);
  }
  const driveSeconds = (now() - t1) / 1000;
  let completedViaApi = 0;
  let cursor: string | null = null;
  do {
    const r = await client.request(
      'GET',
      `/v1/reboots?status=completed&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      { token: stack.operatorToken },
    );
    completedViaApi += r.json?.items?.length ?? 0;
    cursor = r.json?.next ?? null;
  } while (cursor);
  const memory = mem.stop();
  const atPeak = heap.stop();
  const cpuAtEnd = treeCpuSeconds(stack.child.pid);
  const missed = (await stack.stats()).missedWakeups;
  client.close();
  await stack.stop();
  return {
    workflows: S,
    missedWakeups: missed,
    inFlight: parked.RUNNING ?? 0,
    parkSeconds: round(parkedSeconds, 2),
    driveToCompletedSeconds: round(driveSeconds, 2),
    completed: done.SUCCEEDED ?? 0,
    completedViaApi,
    executionStatuses: done,
    // The figure: the tree's footprint at its peak, parking and driving (PSS, /proc/PID/smaps_rollup summed over
    // the stack and its dynalite and fauxqs children: a page they share counted once). RSS summed for reference.
    stackPeakPssMb: memory.peakPssMb,
    stackPssAtStartMb: atStart.pssMb,
    stackPssParkedMb: memParked.pssMb,
    stackPssAtPeakByProcessMb: memory.atPeak.processes,
    stackRssAtStartMb: atStart.rssMb,
    stackRssParkedMb: memParked.rssMb,
    stackPeakRssSumMb: memory.peakRssMb,
    stackHwmSumMb: memory.hwmMb,
    stackRssAtPeakMb: { anon: memory.atPeak.anonMb, file: memory.atPeak.fileMb },
    // process.memoryUsage() of each process at the largest summed RSS sampled (every 500 ms).
    memoryUsageAtPeakMb: atPeak,
    // CPU seconds each process used over the phase (parking and driving): what a smaller heap costs in GC work.
    stackCpuSeconds: Object.fromEntries(Object.entries(cpuAtEnd).map(([k, v]) => [k, round(v - (cpuAtStart[k] ?? 0), 1)])),
  };
}

// ---- 5: cost -----------------------------------------------------------------------------------------------------

function diffStats(a: any, b: any): any {
  if (typeof a === 'number' && typeof b === 'number') return b - a;
  if (b && typeof b === 'object') {
    const out: any = {};
    for (const k of Object.keys(b)) out[k] = diffStats(a?.[k] ?? (typeof b[k] === 'number' ? 0 : {}), b[k]);
    return out;
  }
  return b;
}

async function costPhase() {
  const dir = join(RUN_DIR, 'cost');
  mkdirSync(dir, { recursive: true });
  const X = SIZES.costXpu;
  const H = SIZES.costHost;
  const nodes = writeInventory(join(dir, 'nodes.json'), 'cost', X + H, 1);
  const hookLogFile = join(dir, 'hooks.log');
  const hooks = writeTimestampHooks(join(dir, 'hooks'), hookLogFile, HOST_AND_XPU_HOOKS);
  const hookLog = new HookLog(hookLogFile);
  const stack = await startStack(dir, join(dir, 'nodes.json'));
  const hosts = await startAgentHosts(1, dir);
  const agents = nodes.flatMap((n) => [
    { id: n.id, token: n.agentToken },
    { id: `${n.id}.dpu0`, token: n.agentToken },
  ]);
  await runAgentsIn(hosts, stack, agents, hooks, join(dir, 'state'));
  const client = httpClient(stack.url, 8);
  const post = async (n: BenchNode, id: string, type: string) => {
    const r = await client.request('POST', '/v1/events', {
      token: n.bmcToken,
      body: { id, type, node: n.id, ...(type.startsWith('xpu.') ? { xpu: 'dpu0' } : {}) },
    });
    if (r.status !== 202) throw new Error(`cost: ${type} answered ${r.status}`);
  };
  const rebootIdOf = (key: string) =>
    until(
      `a reboot for ${key}`,
      async () => ((await stack.child.call('rebootIds', { keys: [key] })) as Array<string | null>)[0],
      30_000,
      25,
    );
  const waitDone = (machine: string, name: string) =>
    until(
      `${machine} ${name} to succeed`,
      async () => (await stack.child.call('executionStatus', { machine, names: [name] }))[0] === 'SUCCEEDED',
      60_000,
      25,
    );

  log(`cost: ${X} happy-path xPU reboots and ${H} host reboots with real agents (host + xPU agent per node)`);
  await sleep(300);
  const s0 = await stack.stats();
  const xNames: string[] = [];
  await pool(nodes.slice(0, X), 5, async (n, i) => {
    const id = `cx-${i}`;
    await post(n, id, 'xpu.reboot.pending');
    await hookLog.waitFor(`${n.id}|proceed-reboot`, 30_000);
    await sleep(50);
    await post(n, `${id}-down`, 'xpu.down');
    await post(n, `${id}-ready`, 'xpu.ready');
    const rebootId = await rebootIdOf(dedupKey(n.id, id));
    xNames.push(rebootId);
    await waitDone('xpu-reboot', rebootId);
  });
  await sleep(500);
  const s1 = await stack.stats();
  const hNames: string[] = [];
  await pool(nodes.slice(X), 5, async (n, i) => {
    const id = `ch-${i}`;
    await post(n, id, 'host.reboot.requested');
    await hookLog.waitFor(`${n.id}|free-host-context`, 30_000);
    await sleep(100);
    await post(n, `${id}-down`, 'host.down');
    await post(n, `${id}-up`, 'host.ready');
    await post(n, `${id}-xpu`, 'xpu.ready');
    const rebootId = await rebootIdOf(dedupKey(n.id, id));
    hNames.push(rebootId);
    await waitDone('host-reboot', rebootId);
  });
  await sleep(500);
  const s2 = await stack.stats();
  const xHist = await stack.child.call('histories', { machine: 'xpu-reboot', names: xNames });
  const hHist = await stack.child.call('histories', { machine: 'host-reboot', names: hNames });
  await Promise.all(hosts.map((h) => h.call('stop').catch(() => undefined)));
  await Promise.all(hosts.map((h) => h.stop()));
  client.close();
  await stack.stop();

  const xpu = countsPerReboot(diffStats(s0, s1), xHist, X);
  const host = countsPerReboot(diffStats(s1, s2), hHist, H);
  if (process.env.BENCH_DEBUG) log(JSON.stringify({ x: diffStats(s0, s1), h: diffStats(s1, s2) }));
  return { xpu: { counts: xpu, ...priceReboot(xpu) }, host: { counts: host, ...priceReboot(host) }, idleSample: diffStats(s0, s2).idle };
}

function countsPerReboot(d: any, histories: Array<{ events: Array<{ type: string; ts: number }> }>, n: number): RebootCounts {
  let transitions = 0;
  let tasks = 0;
  let taskMs = 0;
  for (const h of histories) {
    const open = new Map<string, number>();
    for (const e of h.events) {
      if (e.type.endsWith('StateEntered')) transitions++;
      if (e.type === 'TaskScheduled' || e.type === 'LambdaFunctionScheduled') {
        tasks++;
        open.set(e.type === 'TaskScheduled' ? 'task' : 'fn', e.ts);
      }
      if (e.type === 'TaskSubmitted' || e.type === 'TaskSucceeded' || e.type === 'TaskFailed') {
        const t = open.get('task');
        if (t !== undefined) taskMs += e.ts - t;
        open.delete('task');
      }
      if (e.type === 'LambdaFunctionSucceeded' || e.type === 'LambdaFunctionFailed') {
        const t = open.get('fn');
        if (t !== undefined) taskMs += e.ts - t;
        open.delete('fn');
      }
    }
  }
  const apiByRoute: Record<string, number> = {};
  let apiRequests = 0;
  for (const [k, v] of Object.entries(d.http as Record<string, number>)) {
    if (!k.startsWith('API ')) continue;
    let c = v;
    if (k === 'API GET poll') c -= d.idle.polls; // idle long polls are the agents' standing cost, not the reboot's
    if (c <= 0) continue;
    apiByRoute[k.slice(4)] = round(c / n, 2);
    apiRequests += c;
  }
  const apiMs = Object.values(d.apiTime as Record<string, { n: number; ms: number }>).reduce((a, t) => a + t.ms, 0);
  const sfnCalls: Record<string, number> = {};
  for (const [k, v] of Object.entries(d.http as Record<string, number>))
    if (k.startsWith('AWSStepFunctions.') && v > 0) sfnCalls[k.slice(17)] = round(v / n, 2);
  const sqs = d.sqsOps as Record<string, number>;
  const sqsRequests = (sqs.SendMessageBatch ?? 0) + (sqs.SendMessage ?? 0) + d.sqsMsgs.nonEmptyReceives + (sqs.DeleteMessageBatch ?? 0);
  return {
    reboots: n,
    stateTransitions: round(transitions / n, 2),
    taskLambdaInvocations: round(tasks / n, 2),
    taskLambdaSeconds: round(taskMs / 1000 / n, 4),
    apiRequests: round(apiRequests / n, 2),
    apiRequestsByRoute: apiByRoute,
    apiLambdaSeconds: round(apiMs / 1000 / n, 4),
    ingestBatches: round(d.sqsMsgs.nonEmptyReceives / n, 2),
    ingestLambdaSeconds: round(d.ingestBatch.ms / 1000 / n, 4),
    sqsRequests: round(sqsRequests / n, 2),
    dynamoRru: round(d.rebootDdb.rru / n, 2),
    dynamoWru: round(d.rebootDdb.wru / n, 2),
    dynamoOps: round(d.rebootDdb.ops / n, 2),
    dynamoBy: Object.fromEntries(
      Object.entries((d.ddbBy ?? {}) as Record<string, { ops: number; rru: number; wru: number }>)
        .filter(([, p]) => p.ops > 0 || p.wru > 0 || p.rru > 0)
        .sort(([, a], [, b]) => b.wru - a.wru || b.rru - a.rru)
        .map(([k, p]) => [k, { ops: round(p.ops / n, 2), rru: round(p.rru / n, 2), wru: round(p.wru / n, 2) }]),
    ),
    stepFunctionsApiCalls: sfnCalls,
  };
}

// ---- results -----------------------------------------------------------------------------------------------------

function check(figure: string, value: number | null, target: string, pass: boolean | null) {
  return { figure, value, target, pass };
}

async function main() {
  const git = (args: string[]) => {
    try {
      // trimEnd: `status --porcelain` lines start with a space (" M file"), the first one too.
      return execFileSync('git', args, { cwd: BENCH_DIR, encoding: 'utf8' }).trimEnd();
    } catch {
      return '';
    }
  };
  // What was measured: the commit, and whether code outside bench/ differed from it (a shared working tree).
  const source = {
    commit: git(['rev-parse', 'HEAD']),
    uncommittedChangesOutsideBench: git(['status', '--porcelain', '--untracked-files=no'])
      .split('\n')
      .map((l) => l.slice(3))
      .filter((f) => f && !f.startsWith('bench/')),
  };
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memGiB: round(totalmem() / 2 ** 30, 1),
    freeMemGiBAtStart: round(freemem() / 2 ** 30, 1),
    loadAverageAtStart: loadavg().map((l) => round(l, 2)),
    node: process.version,
  };
  const want = (p: string) => !ONLY || ONLY.includes(p);
  let lat: Awaited<ReturnType<typeof latencyPhase>> | undefined;
  let burst: Awaited<ReturnType<typeof burstPhase>> | undefined;
  let scale: Awaited<ReturnType<typeof scalePhase>> | undefined;
  let cost: Awaited<ReturnType<typeof costPhase>> | undefined;
  if (want('latency')) lat = await latencyPhase();
  if (want('burst')) burst = await burstPhase();
  if (want('scale')) scale = await scalePhase();
  if (want('cost')) cost = await costPhase();

  const costUsdPerReboot = cost ? Math.max(cost.xpu.usd, cost.host.usd) : null;
  const floorRatio = lat ? round(lat.latency.p50 / lat.floorMs, 2) : null;
  const results = {
    schemaVersion: 1,
    generatedAt: new Date().toISOString(),
    mode: QUICK ? 'quick' : 'full',
    command: QUICK ? 'node bench/run.ts --quick' : 'npm run bench',
    durationSeconds: round((Date.now() - started) / 1000, 1),
    machine,
    stackNodeFlags: STACK_FLAGS,
    source,
    sizes: SIZES,
    eventToFirstHookMs: lat
      ? {
          p50: lat.latency.p50,
          p95: lat.latency.p95,
          p99: lat.latency.p99,
          target: { p50: TARGETS.latencyP50Ms, p99: TARGETS.latencyP99Ms },
          pass: lat.latency.p50 <= TARGETS.latencyP50Ms && lat.latency.p99 <= TARGETS.latencyP99Ms,
          stats: lat.latency,
          samples: lat.latency.n,
          warmupSamples: SIZES.warmup,
          hookSpawnMs: { p50: lat.spawn.p50, p95: lat.spawn.p95, note: 'part of every sample; subtract it for the coordinator alone' },
          p50MinusHookSpawn: round(lat.latency.p50 - lat.spawn.p50),
          agentJournalFsyncMs: { p50: lat.fsync.p50, p95: lat.fsync.p95 },
          agents: `${SIZES.latency + SIZES.warmup} real agents (runAgent: the agent's own loop, HTTP client, fsynced journal and hook runner) in ${SIZES.agentHosts} process(es), all long-polling the stack; samples one at a time, each on its own node`,
          realProcessCheck: {
            ...lat.realCheck,
            secondRebootSameAgent: lat.realWarm,
            stackSideP50Ms: lat.realStackSide.p50,
            agentSideP50Ms: lat.realAgentSide.p50,
            agentRssMb: lat.realRss.p50,
            note: 'same path, one `rebootctl agent` process per node: its first command ever (cold), then secondRebootSameAgent (a reboot of the other xPU of the node: warm)',
          },
          postAcknowledgedMs: lat.ackMs,
          breakdownMs: lat.breakdown,
          callLatencyDuringSamples: lat.callLatency,
        }
      : null,
    floorMs: lat?.floorMs ?? null,
    floorRatio,
    floorRatioTarget: TARGETS.floorRatio,
    floor: lat ? { ...lat.floor, sumOfP50sMs: lat.floorMs } : null,
    burst: burst
      ? {
          ...burst,
          eventsPerSecondTarget: TARGETS.burstEventsPerSecond,
          eventsPerSecondPass: burst.eventsPerSecond >= TARGETS.burstEventsPerSecond,
          lostEventsTarget: TARGETS.lostEvents,
          lostEventsPass: burst.lostEvents === 0,
          duplicatesSuppressedPctTarget: TARGETS.duplicatesSuppressedPct,
          duplicatesSuppressedPctPass: burst.duplicatesSuppressedPct === 100,
          malformedRejectedPctTarget: TARGETS.malformedRejectedPct,
          malformedRejectedPctPass: burst.malformedRejectedPct === 100,
        }
      : null,
    scale: scale
      ? {
          ...scale,
          stackPeakPssMbTarget: TARGETS.scalePeakPssMb,
          stackPeakPssMbPass: scale.stackPeakPssMb <= TARGETS.scalePeakPssMb,
          allCompletedPass: scale.completed === scale.workflows && scale.completedViaApi === scale.workflows,
        }
      : null,
    costUsdPerReboot: costUsdPerReboot === null ? null : round(costUsdPerReboot, 7),
    costUsdPerRebootTarget: TARGETS.costUsdPerReboot,
    costUsdPerRebootPass: costUsdPerReboot === null ? null : costUsdPerReboot <= TARGETS.costUsdPerReboot,
    cost: cost
      ? {
          note: 'costUsdPerReboot is the dearer of the two kinds; counted from real executions, priced at the list prices below',
          xpuReboot: cost.xpu,
          hostReboot: cost.host,
          prices: PRICES,
          idleAgentUsdPerMonth: idleAgentMonthlyUsd(20),
        }
      : null,
    agentIdleRssMb: lat?.idle.rssMb ?? null,
    agentIdleRssMbTarget: TARGETS.agentIdleRssMb,
    agentIdleRssMbPass: lat ? lat.idle.rssMb <= TARGETS.agentIdleRssMb : null,
    agentIdle: lat?.idle ?? null,
    stackExitCodesOnSigterm: stackExits,
    checks: [] as Array<ReturnType<typeof check>>,
  };
  const c = results.checks;
  if (lat) {
    c.push(check('eventToFirstHookMs.p50', lat.latency.p50, `<= ${TARGETS.latencyP50Ms}`, lat.latency.p50 <= TARGETS.latencyP50Ms));
    c.push(check('eventToFirstHookMs.p99', lat.latency.p99, `<= ${TARGETS.latencyP99Ms}`, lat.latency.p99 <= TARGETS.latencyP99Ms));
    c.push(check('floorRatio', floorRatio, `<= ${TARGETS.floorRatio}`, floorRatio !== null && floorRatio <= TARGETS.floorRatio));
    c.push(check('agentIdleRssMb', lat.idle.rssMb, `<= ${TARGETS.agentIdleRssMb}`, lat.idle.rssMb <= TARGETS.agentIdleRssMb));
  }
  if (burst) {
    c.push(
      check(
        'burst.eventsPerSecond',
        burst.eventsPerSecond,
        `>= ${TARGETS.burstEventsPerSecond}`,
        burst.eventsPerSecond >= TARGETS.burstEventsPerSecond,
      ),
    );
    c.push(
      check(
        'burst.allRebootsStartedSeconds',
        burst.allRebootsStartedSeconds,
        `<= ${TARGETS.burstAllRebootsStartedSeconds}`,
        burst.allRebootsStartedSeconds !== null && burst.allRebootsStartedSeconds <= TARGETS.burstAllRebootsStartedSeconds,
      ),
    );
    c.push(check('burst.lostEvents', burst.lostEvents, '= 0', burst.lostEvents === 0));
    c.push(check('burst.duplicatesSuppressedPct', burst.duplicatesSuppressedPct, '= 100', burst.duplicatesSuppressedPct === 100));
    c.push(check('burst.malformedRejectedPct', burst.malformedRejectedPct, '= 100', burst.malformedRejectedPct === 100));
  }
  if (scale) {
    c.push(
      check('scale.stackPeakPssMb', scale.stackPeakPssMb, `<= ${TARGETS.scalePeakPssMb}`, scale.stackPeakPssMb <= TARGETS.scalePeakPssMb),
    );
    c.push(
      check(
        'scale.completed',
        scale.completed,
        `= ${scale.workflows}`,
        scale.completed === scale.workflows && scale.completedViaApi === scale.workflows,
      ),
    );
  }
  if (costUsdPerReboot !== null)
    c.push(
      check('costUsdPerReboot', round(costUsdPerReboot, 7), `<= ${TARGETS.costUsdPerReboot}`, costUsdPerReboot <= TARGETS.costUsdPerReboot),
    );
  results.durationSeconds = round((Date.now() - started) / 1000, 1);

  const json = JSON.stringify(results, null, 2);
  mkdirSync(join(OUT, '..'), { recursive: true });
  writeFileSync(OUT, json + '\n');
  if (!QUICK && !ONLY && !argv.some((a) => a.startsWith('--set=')) && OUT === join(BENCH_DIR, 'results.json')) updateReadme(results);
  process.stdout.write(json + '\n');
  log(`done in ${results.durationSeconds} s; ${c.filter((x) => x.pass === false).length} check(s) missed their target; written to ${OUT}`);
}

/** Rewrites the "Last results" table of bench/README.md between its markers. */
function updateReadme(r: any) {
  const file = join(BENCH_DIR, 'README.md');
  if (!existsSync(file)) return;
  const text = readFileSync(file, 'utf8');
  const start = '<!-- results:start -->';
  const end = '<!-- results:end -->';
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) return;
  const fmt = (v: unknown) => (v === null || v === undefined ? '—' : typeof v === 'number' ? String(v) : String(v));
  const rows = r.checks.map(
    (x: any) => `| \`${x.figure}\` | ${fmt(x.value)} | ${x.target} | ${x.pass === null ? '—' : x.pass ? 'pass' : '**miss**'} |`,
  );
  const l = r.eventToFirstHookMs;
  const extra: string[] = [
    '',
    `Run ${r.generatedAt} (\`${r.command}\`, ${r.durationSeconds} s, ${r.machine.cpus} × ${r.machine.cpuModel}, load average at start ${r.machine.loadAverageAtStart.join(' / ')}; a shared machine, so one noisy run), commit ${String(r.source?.commit ?? '').slice(0, 7)}${r.source?.uncommittedChangesOutsideBench?.length ? ` plus uncommitted changes to ${r.source.uncommittedChangesOutsideBench.join(', ')}` : ''}.`,
    '',
  ];
  if (l) {
    extra.push(
      `**Latency** p50/p95/p99 ${l.p50}/${l.p95}/${l.p99} ms over ${l.samples} reboots; hook spawn p50 ${l.hookSpawnMs.p50} ms of it. Real \`rebootctl agent\` processes: p50 ${l.realProcessCheck.p50} ms on their first command, ${l.realProcessCheck.secondRebootSameAgent.p50} ms on their second (n = ${l.realProcessCheck.n}). Floor ${r.floorMs} ms (ratio ${r.floorRatio}): HTTP POST ${r.floor.httpPostOneWayMs.p50}, fauxqs ${r.floor.sqsSendToReceiveMs.p50}, Step Functions start → Task ${r.floor.sfnStartToFirstTaskMs.p50}, long-poll wake ${r.floor.httpLongPollWakeMs.p50}, hook start through a warm gate ${r.floor.hookSpawnMs.p50} ms (p50s; a fork of the agent host then, not in the floor: ${r.floor.coldHookSpawnMs?.p50} ms).`,
      '',
      '| segment of one sample (p50 of each; they do not add up exactly to the p50 of the whole) | p50 ms | p95 ms | slowest 1 % of samples: mean ms |',
      '| --- | --- | --- | --- |',
      ...Object.entries(l.breakdownMs as Record<string, { p50: number; p95: number; slowestMean?: number }>).map(
        ([k, v]) => `| ${k} | ${v.p50} | ${v.p95} | ${fmt(v.slowestMean)} |`,
      ),
      '',
      `Mean round trip per call during the samples (SDK + HTTP + emulator, in the stack's one event loop): ${Object.entries(
        l.callLatencyDuringSamples.dynamoDb as Record<string, { meanMs: number }>,
      )
        .map(([k, v]) => `DynamoDB ${k} ${v.meanMs} ms`)
        .join(', ')}, ${Object.entries(l.callLatencyDuringSamples.sqs as Record<string, { meanMs: number }>)
        .map(([k, v]) => `SQS ${k} ${v.meanMs} ms`)
        .join(', ')}.`,
      '',
    );
  }
  if (r.burst) {
    const b = r.burst;
    extra.push(
      `**Burst**: ${b.accepted} events accepted at ${b.eventsPerSecond}/s (posting took ${b.postingSeconds} s), every reboot started ${b.allRebootsStartedSeconds} s after the first POST, ${b.lostEvents} lost, ${b.duplicatesSuppressedPct} % of duplicates suppressed (${b.duplicatesCaughtByDedupKey} by the event key, the rest absorbed by derived ids), ${b.malformedRejectedPct} % of malformed rejected; ${b.executions} executions for ${b.distinctEvents} distinct events; stack peak PSS ${b.stackPeakPssMb ?? b.stackPeakRssMb} MiB with ${b.distinctEvents} workflows parked.`,
      '',
    );
  }
  if (r.scale) {
    const sc = r.scale;
    extra.push(
      sc.stackPeakPssMb === undefined
        ? `**Scale**: ${sc.inFlight} workflows in flight (parked after ${sc.parkSeconds} s, stack RSS ${sc.stackRssParkedMb} MiB), all ${sc.completed} completed ${sc.driveToCompletedSeconds} s later; peak PSS ${sc.stackPeakRssMb} MiB during that drive.`
        : `**Scale**: ${sc.inFlight} workflows in flight (parked after ${sc.parkSeconds} s, stack PSS ${sc.stackPssParkedMb} MiB, RSS summed ${sc.stackRssParkedMb}), all ${sc.completed} completed ${sc.driveToCompletedSeconds} s later; peak PSS ${sc.stackPeakPssMb} MiB (RSS summed ${sc.stackPeakRssSumMb}). PSS at the peak by process (anonymous + file-backed): ${(
            sc.stackPssAtPeakByProcessMb as Array<{ name: string; pssMb: number; anonMb: number; fileMb: number }>
          )
            .map((p) => `${p.name} ${p.pssMb} (${p.anonMb} + ${p.fileMb})`)
            .join(
              ', ',
            )}; V8 heap of the stack process ${sc.memoryUsageAtPeakMb['stack-child']?.heapTotalMb} MiB of which ${sc.memoryUsageAtPeakMb['stack-child']?.heapUsedMb} used.`,
      '',
    );
  }
  if (r.cost) {
    const row = (name: string, c: any) =>
      `| ${name} | ${c.counts.stateTransitions} | ${c.lambdaInvocations} (${c.counts.taskLambdaInvocations} Task, ${c.counts.ingestBatches} ingest, 2 × ${c.counts.apiRequests} API + authorizer) | ${c.counts.sqsRequests} | ${c.counts.dynamoRru} / ${c.counts.dynamoWru} | ${c.counts.apiRequests} | $${c.usd.toFixed(6)} |`;
    extra.push(
      '| per reboot | transitions | Lambda invocations | SQS requests | DynamoDB RRU / WRU | API requests | cost |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      row('xPU reboot', r.cost.xpuReboot),
      row('host reboot', r.cost.hostReboot),
      '',
      `Step Functions is ${Math.round((100 * r.cost.xpuReboot.usdByService.stepFunctions) / r.cost.xpuReboot.usd)} % and DynamoDB ${Math.round((100 * r.cost.xpuReboot.usdByService.dynamoDb) / r.cost.xpuReboot.usd)} % of an xPU reboot. Not in that figure: an idle agent long-polling the AWS deployment costs $${r.cost.idleAgentUsdPerMonth.usd.toFixed(2)} per month (the API Lambda is billed for the whole ${r.cost.idleAgentUsdPerMonth.waitSeconds} s wait: $${r.cost.idleAgentUsdPerMonth.usdByService.lambdaDuration}).`,
      '',
    );
  }
  if (r.agentIdle)
    extra.push(
      `**Idle agent**: ${r.agentIdle.rssMb} MiB RSS, ${r.agentIdle.cpuSecondsPerHour} CPU s per hour (window ${r.agentIdle.windowSeconds} s). Each idle poll costs the local stack ${r.agentIdle.stackSidePerIdlePoll.dynamoOps} DynamoDB calls.`,
    );
  const table = ['| figure | value | target | |', '| --- | --- | --- | --- |', ...rows, ...extra].join('\n');
  writeFileSync(file, `${text.slice(0, i + start.length)}\n${table}\n${text.slice(j)}`);
  // As Biome lays tables out (padded columns), so the regenerated README passes `npm test`'s lint.
  try {
    execFileSync(join(ROOT, 'node_modules/.bin/biome'), ['format', '--write', file], { stdio: 'ignore' });
  } catch {
    log('bench/README.md could not be formatted: run `npx biome format --write bench/README.md`');
  }
}

let failed = false;
const cleanup = () => {
  killChildren();
  if (!KEEP) rmSync(RUN_DIR, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});
process.on('SIGTERM', () => {
  cleanup();
  process.exit(143);
});
try {
  if (argv.includes('--readme')) updateReadme(JSON.parse(readFileSync(join(BENCH_DIR, 'results.json'), 'utf8')));
  else await main();
} catch (err) {
  failed = true;
  log(`failed: ${(err as Error).stack ?? err}`);
  log(`logs kept in ${RUN_DIR}`);
}
if (failed) {
  killChildren();
  process.exit(1);
}
cleanup();
process.exit(0);

export type { Stats };
