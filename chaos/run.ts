// `npm run chaos`: the real stack and real agents under load, faults injected at random points, and an
// invariant checker over the API and the hook logs. Writes chaos/results.json (--out to write elsewhere).
//
//   node chaos/run.ts [--cycles 100] [--seed N] [--fuzz 100000] [--quick] [--out file]
//
// Faults: kill -9 of the stack (at once, after a while, with a downtime longer than the hosts' heartbeat), torn
// journal tails, kill -9 of dynalite and of fauxqs, kill -9 of an agent. Invariants: every accepted event ends in
// a reboot's history, the dropped list or the DLQ; no hook runs twice; every reboot ends; no host is recorded
// silent for the coordinator's downtime. Exit code 1 when an invariant is violated.
import { appendFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { DynamoRebootStore } from '../lambdas/adapters/dynamo-store.ts';
import { startLocalDynamo } from '../local/dynamo.ts';
import {
  api,
  freePort,
  OPERATOR_TOKEN,
  startAgent,
  startStackProcess,
  tempDir,
  writeHooks,
  writeInventory,
  type RunningAgent,
  type RunningStack,
} from '../test/support/stack.ts';
import { runFuzz } from './fuzz.ts';

// ---- options

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const option = (name: string, fallback: number) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const QUICK = flag('--quick');
const SEED = option('--seed', Date.now() % 1_000_000);
const FUZZ = option('--fuzz', QUICK ? 0 : 100_000);
const outIndex = argv.indexOf('--out');
const OUT = outIndex >= 0 ? resolve(argv[outIndex + 1]) : join(import.meta.dirname, 'results.json');

// A small seeded PRNG (mulberry32): a failing run can be repeated with its seed.
let state = SEED >>> 0;
function random(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const between = (lo: number, hi: number) => lo + random() * (hi - lo);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Fault = 'stack-kill' | 'stack-kill-long-downtime' | 'torn-journal' | 'kill-dynalite' | 'kill-fauxqs' | 'kill-agent';
const WEIGHTS: Array<[Fault, number]> = [
  ['stack-kill', 50],
  ['stack-kill-long-downtime', 5],
  ['torn-journal', 10],
  ['kill-dynalite', 10],
  ['kill-fauxqs', 10],
  ['kill-agent', 15],
];
const QUICK_FAULTS: Fault[] = ['stack-kill', 'torn-journal', 'kill-dynalite', 'kill-fauxqs', 'kill-agent', 'stack-kill'];
const CYCLES = QUICK ? QUICK_FAULTS.length : option('--cycles', 100);

function nextFault(cycle: number): Fault {
  if (QUICK) return QUICK_FAULTS[cycle];
  let r = random() * WEIGHTS.reduce((s, [, w]) => s + w, 0);
  for (const [f, w] of WEIGHTS) {
    r -= w;
    if (r < 0) return f;
  }
  return 'stack-kill';
}

// ---- the world: one stack, two nodes with two xPUs each, a host agent and an xPU agent per xPU

const HEARTBEAT_SECONDS = 10;
const NODES = ['node-0', 'node-1'];
const XPUS = ['dpu0', 'dpu1'];
const TOKEN = (node: string) => `agent-token-${node}`;
const INVENTORY = `
policy:
  xpuReboot:
    noticeSeconds: 30
    maxExtensions: 0
    maxExtensionSeconds: 0
    recoverySeconds: 40
    coredumpSeconds: 10
    heartbeatSeconds: ${HEARTBEAT_SECONDS}
    commandSeconds: 30
nodes:
${NODES.map((n) => `  - id: ${n}\n    trusted: true\n    agentToken: ${TOKEN(n)}\n    xpus: [${XPUS.map((x) => `{ id: ${x} }`).join(', ')}]\n`).join('')}`;
const HOST_HOOKS = ['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads'];

const dir = tempDir('chaos');
const dataDir = join(dir, 'data');
const nodesFile = writeInventory(dir, INVENTORY);
const hookLog = join(dir, 'hooks.log');
const port = String(await freePort());
const stackEnv = { PORT: port, INGEST_VISIBILITY_SECONDS: '5', RECONCILE_INTERVAL_SECONDS: '10', LOG_LEVEL: 'warn' };

function hooks(name: string, names: string[]): string {
  return writeHooks(
    join(dir, `hooks-${name}`),
    Object.fromEntries(names.map((n) => [n, `cat > /dev/null\necho "${n} $REBOOT_ID $COMMAND_ID" >> ${hookLog}`])),
  );
}

const agentSpecs = NODES.flatMap((node) => [
  { agent: node, node, hooks: hooks(node, HOST_HOOKS) },
  ...XPUS.map((x) => ({ agent: `${node}.${x}`, node, hooks: hooks(`${node}.${x}`, ['proceed-reboot']) })),
]);

const results = {
  startedAt: new Date().toISOString(),
  finishedAt: '',
  seed: SEED,
  quick: QUICK,
  cycles: 0,
  faults: {} as Record<string, number>,
  events: { accepted: 0, inRebootHistory: 0, dropped: 0, dlq: 0, lost: 0 },
  reboots: { total: 0, byStatus: {} as Record<string, number>, failed: [] as Array<{ id: string; why: string }> },
  hooks: { runs: 0, ranTwice: 0 },
  // restartReadyMs: from spawning `node local/main.ts` until /healthz answers 200 (target 3 s).
  // inFlightProcessedAfterRestartMs: from ready until every event accepted before the kill is in a reboot's
  // history (target 10 s).
  restart: {
    count: 0,
    restartReadyMs: { p50: 0, p95: 0, max: 0, over3s: 0 },
    inFlightProcessedAfterRestartMs: { p50: 0, p95: 0, max: 0, over10s: 0 },
    loadAverageAtEnd: [] as number[],
    /**
     * Restarts over 3 s (the stack's "slow start" line): the median ms from the previous phase's end (in the order they
     * ended) to each phase's end; phases are named in local/stack.ts.
     */
    slowStartPhasesMs: {} as Record<string, number>,
    slowStarts: 0,
  },
  childRestartMs: { p50: 0, max: 0 },
  fuzz: undefined as unknown,
  violations: [] as string[],
};

let stack: RunningStack;
const agents = new Map<string, RunningAgent>();
const readyTimes: number[] = [];
const backlogTimes: number[] = [];
const childTimes: number[] = [];

async function startStack(): Promise<void> {
  const t0 = Date.now();
  stack = await startStackProcess({ dataDir, nodesFile, env: stackEnv });
  // The ready line comes after the HTTP server listens; ready is /healthz answering 200 (every dependency answers).
  while ((await api(stack.url, '/healthz').catch(() => ({ status: 0 }))).status !== 200) await sleep(10);
  readyTimes.push(Date.now() - t0);
  await sleep(50); // the "slow start" line is written just after the ready line
  const slow = /^\{.*"msg":"slow start".*\}$/m.exec(stack.output());
  // The first start (fresh DATA_DIR, cold compile cache) is not a restart.
  if (slow && readyTimes.length > 1) {
    const phases = JSON.parse(slow[0]).phases as Record<string, number>;
    let last = 0;
    for (const [phase, at] of Object.entries(phases)) {
      slowPhases[phase] = [...(slowPhases[phase] ?? []), at - last];
      last = at;
    }
  }
}
const slowPhases: Record<string, number[]> = {};

function startAgentOf(spec: (typeof agentSpecs)[number]): void {
  agents.set(
    spec.agent,
    startAgent({
      url: `http://127.0.0.1:${port}`,
      agent: spec.agent,
      token: TOKEN(spec.node),
      hooks: spec.hooks,
      state: join(dir, `state-${spec.agent}`),
      args: ['--backoff-max-seconds', '1', '--heartbeat-seconds', '1'],
    }),
  );
}

// ---- load: reboot notices on free xPUs; xpu.down + xpu.ready once a reboot is told to go

const accepted = new Map<string, { type: string; node: string; xpu: string; at: number }>();
const signalled = new Set<string>();
let seq = 0;
let loadOn = true;
let noticesOn = true;

async function post(node: string, type: string, xpu: string): Promise<boolean> {
  const id = `ev-${++seq}-${type.replace(/\W/g, '')}`;
  try {
    const res = await api(`http://127.0.0.1:${port}`, '/v1/events', { token: TOKEN(node), body: { id, type, node, xpu } });
    if (res.status === 202) accepted.set(id, { type, node, xpu, at: Date.now() });
    return res.status === 202;
  } catch {
    // the stack is down: not accepted, nothing promised
    return false;
  }
}

async function listReboots(): Promise<any[]> {
  const items: any[] = [];
  let cursor: string | null = null;
  do {
    const res = await api(`http://127.0.0.1:${port}`, `/v1/reboots?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, {
      token: OPERATOR_TOKEN,
    });
    if (res.status !== 200) throw new Error(`GET /v1/reboots: ${res.status}`);
    items.push(...res.json.items);
    cursor = res.json.next;
  } while (cursor);
  return items;
}

async function loadLoop(): Promise<void> {
  while (loadOn) {
    await sleep(300);
    let reboots: any[];
    try {
      reboots = await listReboots();
    } catch {
      continue;
    }
    const busy = new Set(reboots.filter((r) => !r.endedAt).map((r) => `${r.node}/${r.xpu}`));
    for (const r of reboots) {
      // Like a real xPU: it reports down, then ready, each until the coordinator accepted it.
      if (r.status === 'rebooting' && !signalled.has(`${r.id}/ready`)) {
        if (!signalled.has(`${r.id}/down`) && (await post(r.node, 'xpu.down', r.xpu))) signalled.add(`${r.id}/down`);
        if (signalled.has(`${r.id}/down`) && (await post(r.node, 'xpu.ready', r.xpu))) signalled.add(`${r.id}/ready`);
      }
    }
    if (!noticesOn) continue;
    for (const node of NODES)
      for (const xpu of XPUS) if (!busy.has(`${node}/${xpu}`) && random() < 0.3) await post(node, 'xpu.reboot.pending', xpu);
  }
}

// ---- invariants

const eventIdsIn = (reboots: any[]) => {
  const ids = new Set<string>();
  for (const r of reboots) for (const h of r.history) for (const m of String(h.detail).matchAll(/event (ev-[\w-]+)\)/g)) ids.add(m[1]);
  return ids;
};

/** Time until every event accepted before `before` shows in a reboot's history (or 15 s). */
async function backlogProcessed(before: number): Promise<number> {
  const t0 = Date.now();
  const wanted = [...accepted].filter(([, e]) => e.at <= before).map(([id]) => id);
  while (Date.now() - t0 < 15_000) {
    try {
      const seen = eventIdsIn(await listReboots());
      if (wanted.every((id) => seen.has(id))) break;
    } catch {
      /* still starting */
    }
    await sleep(200);
  }
  return Date.now() - t0;
}

function journals(): string[] {
  const root = join(dataDir, 'stepfunctions', 'executions');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((d) =>
    statSync(join(root, d)).isDirectory() ? readdirSync(join(root, d)).map((f) => join(root, d, f)) : [],
  );
}

async function waitHealthy(ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      if ((await api(stack.url, '/healthz')).status === 200) return true;
    } catch {
      /* not yet */
    }
    await sleep(50);
  }
  return false;
}

async function inject(fault: Fault): Promise<void> {
  results.faults[fault] = (results.faults[fault] ?? 0) + 1;
  switch (fault) {
    case 'stack-kill':
    case 'stack-kill-long-downtime':
    case 'torn-journal': {
      await stack.stop('SIGKILL');
      const killedAt = Date.now();
      if (fault === 'torn-journal') {
        const files = journals();
        if (files.length) appendFileSync(pick(files), '{"t":"ev","id":' + Math.floor(random() * 1000) + ',"ts":17');
      }
      await sleep(fault === 'stack-kill-long-downtime' ? (HEARTBEAT_SECONDS + between(1, 3)) * 1000 : between(0, 1500));
      await startStack();
      results.restart.count++;
      backlogTimes.push(await backlogProcessed(killedAt));
      return;
    }
    case 'kill-dynalite':
    case 'kill-fauxqs': {
      const pidFile = join(dataDir, fault === 'kill-dynalite' ? 'dynamodb/dynalite.pid' : 'sqs/fauxqs.pid');
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      const t0 = Date.now();
      process.kill(pid, 'SIGKILL');
      await sleep(20);
      if (!(await waitHealthy(20_000))) results.violations.push(`${fault}: the stack did not become healthy within 20 s`);
      childTimes.push(Date.now() - t0);
      return;
    }
    case 'kill-agent': {
      const spec = pick(agentSpecs);
      await agents.get(spec.agent)!.stop('SIGKILL');
      await sleep(between(200, 1000));
      startAgentOf(spec);
      return;
    }
  }
}

const percentile = (xs: number[], p: number) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function check(): Promise<void> {
  const reboots = await listReboots();
  results.reboots.total = reboots.length;
  for (const r of reboots) results.reboots.byStatus[r.status] = (results.reboots.byStatus[r.status] ?? 0) + 1;
  for (const r of reboots.filter((x) => x.status === 'failed').slice(0, 50)) {
    const last = r.history.filter((h: any) => h.phase === 'failed').at(-1) ?? r.history.at(-1);
    results.reboots.failed.push({ id: r.id, why: String(last?.detail ?? '').slice(0, 300) });
  }
  for (const r of reboots) if (!r.endedAt) results.violations.push(`reboot ${r.id} (${r.node}/${r.xpu}) did not end: ${r.status}`);
  for (const r of reboots) {
    const silent = r.history.find((h: any) => h.phase === 'silent-host');
    if (silent)
      results.violations.push(`reboot ${r.id}: host recorded silent (${silent.at}) though no agent was down longer than a heartbeat`);
  }
  const seen = eventIdsIn(reboots);
  const dlq = await api(stack.url, '/v1/dlq?limit=1000', { token: OPERATOR_TOKEN });
  const inDlq = new Set<string>((dlq.json?.items ?? []).map((d: any) => d.event?.id).filter(Boolean));
  const missing = [...accepted.keys()].filter((id) => !seen.has(id) && !inDlq.has(id));
  // The dropped list is not on the API: read it from the store once the stack has stopped.
  await stack.stop('SIGTERM');
  const dynamo = await startLocalDynamo({ dataDir: join(dataDir, 'dynamodb') });
  const dropped = new Map(
    (await new DynamoRebootStore(dynamo.client, dynamo.table).listDropped(100_000)).map((d) => [d.event.id, d.reason]),
  );
  await dynamo.close();
  results.events.accepted = accepted.size;
  results.events.inRebootHistory = [...accepted.keys()].filter((id) => seen.has(id)).length;
  results.events.dlq = [...accepted.keys()].filter((id) => !seen.has(id) && inDlq.has(id)).length;
  results.events.dropped = missing.filter((id) => dropped.has(id)).length;
  const lost = missing.filter((id) => !dropped.has(id));
  results.events.lost = lost.length;
  for (const id of lost)
    results.violations.push(
      `event ${id} (${JSON.stringify(accepted.get(id))}) was accepted and is in no reboot, not dropped, not in the DLQ`,
    );

  const runs = existsSync(hookLog) ? readFileSync(hookLog, 'utf8').split('\n').filter(Boolean) : [];
  results.hooks.runs = runs.length;
  const byCommand = new Map<string, number>();
  for (const line of runs) {
    const cmd = line.split(' ')[2];
    byCommand.set(cmd, (byCommand.get(cmd) ?? 0) + 1);
  }
  for (const [cmd, n] of byCommand) {
    if (n > 1) {
      results.hooks.ranTwice++;
      results.violations.push(`command ${cmd}: its hook ran ${n} times`);
    }
  }
}

// ---- the run

const t0 = Date.now();
console.log(`chaos: seed ${SEED}, ${CYCLES} cycles, data in ${dir}`);
await startStack();
for (const spec of agentSpecs) startAgentOf(spec);
const load = loadLoop();
try {
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    await sleep(between(QUICK ? 500 : 300, QUICK ? 1500 : 3000));
    const fault = nextFault(cycle);
    await inject(fault);
    results.cycles++;
    if (cycle % 10 === 9 || QUICK)
      console.log(
        `chaos: cycle ${cycle + 1}/${CYCLES} (${fault}), ${accepted.size} events accepted, ${Math.round((Date.now() - t0) / 1000)} s`,
      );
  }
  // Settle: no new notices; the reboots in flight finish (or end by their bounds, or by the reconciler).
  noticesOn = false;
  const settleUntil = Date.now() + (QUICK ? 90_000 : 180_000);
  while (Date.now() < settleUntil) {
    await sleep(1000);
    try {
      const reboots = await listReboots();
      if (reboots.every((r) => r.endedAt) && (await backlogProcessed(Date.now())) < 15_000) break;
    } catch {
      /* retry */
    }
  }
  loadOn = false;
  await load;
  await Promise.all([...agents.values()].map((a) => a.stop('SIGTERM')));
  await check();
} catch (err) {
  results.violations.push(`the run itself failed: ${(err as Error).stack ?? err}`);
} finally {
  loadOn = false;
  await Promise.all([...agents.values()].map((a) => a.stop('SIGKILL')));
  await stack.stop('SIGKILL');
}

if (FUZZ > 0) {
  console.log(`chaos: fuzzing the webhooks with ${FUZZ} bodies`);
  results.fuzz = await runFuzz({ runs: FUZZ, seed: SEED });
  const f = results.fuzz as { violations: string[] };
  results.violations.push(...f.violations.map((v) => `fuzz: ${v}`));
}

// The first start (fresh DATA_DIR, no compile cache) is not a restart.
const restartTimes = readyTimes.slice(1);
results.restart.restartReadyMs = {
  p50: percentile(restartTimes, 50),
  p95: percentile(restartTimes, 95),
  max: Math.max(0, ...restartTimes),
  over3s: restartTimes.filter((t) => t > 3_000).length,
};
results.restart.slowStarts = Math.max(0, ...Object.values(slowPhases).map((xs) => xs.length));
results.restart.slowStartPhasesMs = Object.fromEntries(Object.entries(slowPhases).map(([k, xs]) => [k, percentile(xs, 50)]));
results.restart.loadAverageAtEnd = loadavg().map((l) => Math.round(l * 10) / 10);
results.restart.inFlightProcessedAfterRestartMs = {
  p50: percentile(backlogTimes, 50),
  p95: percentile(backlogTimes, 95),
  max: Math.max(0, ...backlogTimes),
  over10s: backlogTimes.filter((t) => t > 10_000).length,
};
results.childRestartMs = { p50: percentile(childTimes, 50), max: Math.max(0, ...childTimes) };
results.finishedAt = new Date().toISOString();
writeFileSync(OUT, JSON.stringify(results, null, 2) + '\n');
console.log(JSON.stringify({ ...results, violations: results.violations.slice(0, 20) }, null, 2));
console.log(`chaos: ${results.violations.length} violation(s); results in ${OUT}`);
process.exit(results.violations.length ? 1 : 0);
