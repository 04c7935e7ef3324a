// Black-box audit of crash safety on the operator and agent write routes (CONTRACT.md 3, 7.1 Idempotency-Key,
// 7.3, 7.4): the stack is killed (as by kill -9) at a seeded point INSIDE one request — right after its N-th
// durable write (local/crash-points.ts) — restarted on the same DATA_DIR, and the request sent again as a client
// would (same Idempotency-Key where the contract has one). Then: the outcome happened once, nothing is left half
// done, and the reboot still completes. `npm run chaos` kills the stack during event traffic; this drives what it
// does not: extensions, cancel, force, holds, rollouts and their cancel, agents' final results, the DLQ redrive.
//
// For each case a twin node first runs the same request unarmed, which says how many writes it makes (W); the
// victim is then killed after write k, k seeded in 1..W. RESTART_AUDIT_ALL=1 tries every k; RESTART_AUDIT_SEED=N
// repeats a run.
import { join } from 'node:path';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR_TOKEN, freePort, startStackProcess, tempDir, waitFor, writeInventory, type RunningStack } from '../support/stack.ts';
import { CRASH_AFTER_WRITES_HEADER, WRITES_DONE_HEADER } from '../../local/crash-points.ts';

const SEED = Number(process.env.RESTART_AUDIT_SEED ?? Date.now() % 1_000_000);
const ALL = process.env.RESTART_AUDIT_ALL === '1';
console.log(`restart-audit-s9: seed ${SEED}${ALL ? ' (every kill point)' : ''} (RESTART_AUDIT_SEED=${SEED} repeats it)`);

let rng = SEED >>> 0;
function random(): number {
  rng = (rng + 0x6d2b79f5) >>> 0;
  let t = rng;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const NODES = Array.from({ length: ALL ? 120 : 40 }, (_, i) => `s${i + 1}`);
// Each node in a rack of its own with a rack budget of 1: a budget slot left held by nothing queues its next reboot.
const INVENTORY = `
policy:
  xpuReboot: { noticeSeconds: 300, maxExtensionSeconds: 600, maxExtensions: 3, heartbeatSeconds: 60, recoverySeconds: 60, commandSeconds: 60 }
  budgets:
    - { per: rack, maxUnavailable: 1 }
nodes:
${NODES.map((id) => `  - { id: ${id}, rack: rack-${id}, zone: z1, tenant: t1, trusted: true, bmcToken: bmc-token-${id}, agentToken: agent-token-${id}, xpus: [{ id: dpu0 }] }`).join('\n')}
`;

let dir: string;
let dataDir: string;
let nodesFile: string;
let env: Record<string, string>;
let stack: RunningStack;
let url: string;
let stopped = false;
let restarts = 0;

// ---- HTTP, tolerant of the stack being down

interface Answer {
  status: number;
  json: any;
  headers: Headers;
}
async function call(path: string, opts: { method?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const res = await fetch(url + path, {
    method: opts.method ?? (opts.body !== undefined ? 'POST' : 'GET'),
    headers: { authorization: `Bearer ${opts.token ?? OPERATOR_TOKEN}`, 'content-type': 'application/json', ...opts.headers },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers } as Answer;
}
/** As a client retries: again while the stack does not answer or answers 5xx. */
async function retried(path: string, opts: Parameters<typeof call>[1] = {}): Promise<Answer> {
  for (let i = 0; ; i++) {
    const res = await call(path, opts).catch(() => undefined);
    if (res && res.status < 500) return res;
    if (i > 300) throw new Error(`${path}: no answer (${res?.status} ${JSON.stringify(res?.json)})`);
    await sleep(100);
  }
}
const get = async (id: string) => (await retried(`/v1/reboots/${id}`)).json;
const rebootsOf = async (node: string) => (await retried(`/v1/reboots?node=${node}&limit=100`)).json.items as any[];

// ---- fake agents: hosts answer their preparation only once released; xPUs go down and come back when told

const released = new Set<string>();
/** Every command each agent saw (first delivery of each id). */
const seen = new Map<string, any[]>();
const answered = new Map<string, string>();
/** A final result to post with the crash header: the agent's next command of this type. */
let armResult: { agent: string; type: string; k: number; hit?: (cmd: any) => void } | undefined;

async function post(node: string, id: string, type: string, data?: Record<string, unknown>) {
  const res = await retried('/v1/events', {
    token: `agent-token-${node}`,
    body: { id, type, node, xpu: 'dpu0', ...(data ? { data } : {}) },
  });
  expect(res.status).toBe(202);
}

async function react(agent: string, cmd: any): Promise<string | null> {
  const [node, xpu] = agent.split('.');
  if (!xpu) return ['migrate-workloads', 'protect-pcie'].includes(cmd.type) && !released.has(node) ? null : 'succeeded';
  if (cmd.type === 'reboot-xpu')
    await post(node, `ann-${cmd.id}`, 'xpu.reboot.pending', { reason: cmd.args.reason, rolloutId: cmd.args.rolloutId });
  if (cmd.type === 'proceed-reboot') {
    await post(node, `down-${cmd.id}`, 'xpu.down');
    await sleep(100);
    await post(node, `ready-${cmd.id}`, 'xpu.ready');
  }
  return 'succeeded';
}

async function fakeAgent(agent: string) {
  while (!stopped) {
    const res = await call(`/v1/agents/${agent}/commands?wait=2`).catch(() => undefined);
    if (res?.status !== 200) {
      await sleep(200);
      continue;
    }
    // Commands held back (a host not yet released) are answered at the next turn, not at their next delivery.
    const held = (seen.get(agent) ?? []).filter((c) => !answered.has(c.id) && !res.json.some((d: any) => d.id === c.id));
    for (const cmd of [...res.json, ...held]) {
      const list = seen.get(agent) ?? [];
      if (!list.some((c) => c.id === cmd.id)) seen.set(agent, [...list, cmd]);
      if (!answered.has(cmd.id)) {
        const a = await react(agent, cmd);
        if (!a) continue;
        answered.set(cmd.id, a);
      }
      const status = answered.get(cmd.id)!;
      const arm = armResult?.agent === agent && armResult.type === cmd.type ? armResult : undefined;
      if (arm) {
        armResult = undefined;
        arm.hit?.(cmd);
        await underKill(`${agent} result ${cmd.type}`, arm.k, (h) =>
          call(`/v1/agents/${agent}/commands/${cmd.id}`, { body: { status }, headers: h }),
        );
      }
      // As the real agent does: a result the stack did not answer is sent again until it is.
      await retried(`/v1/agents/${agent}/commands/${cmd.id}`, { body: { status } });
    }
  }
}
/** The xPUs' own watchdogs: a reboot whose deadline passed without a go reboots its xPU all the same. */
async function watchdogs() {
  const done = new Set<string>();
  while (!stopped) {
    await sleep(1000);
    const res = await call('/v1/reboots?status=rebooting&limit=100').catch(() => undefined);
    for (const r of res?.status === 200 ? (res.json.items as any[]) : []) {
      if (done.has(r.id) || !r.history.some((h: any) => h.detail.includes('watchdog reboots it'))) continue;
      done.add(r.id);
      void post(r.node, `wd-down-${r.id}`, 'xpu.down').then(() => post(r.node, `wd-ready-${r.id}`, 'xpu.ready'));
    }
  }
}
const commandsOf = (agent: string, type: string) => (seen.get(agent) ?? []).filter((c) => c.type === type);

// ---- the kill

/**
 * Sends `request` with the crash header (kill after write k), waits for the stack to die and starts it again on
 * the same DATA_DIR and port. A request that did fewer than k writes answers, and nothing is killed: false.
 */
async function underKill(what: string, k: number, request: (headers: Record<string, string>) => Promise<Answer>): Promise<boolean> {
  const proc = stack.proc;
  const res = await request({ [CRASH_AFTER_WRITES_HEADER]: String(k) }).catch(() => undefined);
  if (res?.headers.get(WRITES_DONE_HEADER) !== null && res !== undefined) {
    // Work the request started goes on counting (a workflow's next steps): it may still die there.
    console.log(`restart-audit-s9: ${what}: answered after ${res.headers.get(WRITES_DONE_HEADER)} writes, before write ${k}`);
    return false;
  }
  const dead = await waitFor(
    `${what}: the stack kills itself after write ${k}`,
    async () => proc.exitCode !== null || proc.signalCode !== null,
    10_000,
  );
  console.log(`restart-audit-s9: ${what}: killed after write ${k}`);
  await (restarting ?? Promise.resolve());
  return dead;
}

/** The stack that died (killed by a request's crash point, whenever) is started again on its DATA_DIR and port. */
let restarting: Promise<void> | undefined;
function supervise(s: RunningStack) {
  s.proc.once('exit', () => {
    if (stopped) return;
    restarts++;
    restarting = startStackProcess({ dataDir, nodesFile, env }).then((next) => {
      stack = next;
      supervise(next);
    });
  });
}

/** How many writes the request makes (sent unarmed on a twin): the kill points there are. */
async function writesOf(request: (headers: Record<string, string>) => Promise<Answer>): Promise<{ n: number; res: Answer }> {
  const res = await request({ [CRASH_AFTER_WRITES_HEADER]: '100000' });
  return { n: Number(res.headers.get(WRITES_DONE_HEADER)), res };
}

/** The kill points to try: one seeded, or all of them. */
const points = (n: number) => (ALL ? Array.from({ length: n }, (_, i) => i + 1) : [1 + Math.floor(random() * n)]);

let nextNode = 0;
const takeNode = () => {
  const n = NODES[nextNode++];
  if (!n) throw new Error('out of nodes: add more to NODES');
  // Agents only for the nodes in use: every idle poller is load on a stack that shares 2 cores.
  void fakeAgent(n);
  void fakeAgent(`${n}.dpu0`);
  return n;
};

const rolloutsOf = async (node: string) =>
  ((await retried('/v1/rollouts?limit=100')).json.items as any[]).filter((r) => r.plan.some((p: any) => p.node === node));

let seq = 0;
async function announce(node: string, data: Record<string, unknown> = {}): Promise<string> {
  const before = new Set((await rebootsOf(node)).map((r) => r.id));
  await post(node, `ann-${node}-${++seq}`, 'xpu.reboot.pending', { reason: 'audit', ...data });
  const r = await waitFor(`a new reboot of ${node}`, async () => (await rebootsOf(node)).find((x) => !before.has(x.id)));
  return r.id;
}
const until = (id: string, ok: (r: any) => boolean, what: string, ms = 60_000) =>
  waitFor(
    `${id}: ${what}`,
    async () => {
      const r = await get(id);
      if (ok(r)) return r;
      throw new Error(`${r?.status}: ${JSON.stringify(r?.history?.slice(-5).map((h: any) => `${h.phase} ${h.detail}`))}`);
    },
    ms,
    200,
  );
const inNotice = (r: any) => ['notified', 'preparing', 'extended'].includes(r.status);
const ENDED = ['completed', 'failed', 'cancelled', 'denied'];

/** Set-ups the routes share: an announced reboot in its notice phase, or one whose host was told to protect PCIe. */
async function announcedInNotice(node: string) {
  const id = await announce(node);
  await until(id, inNotice, 'in its notice phase');
  return { id, node };
}
async function announcedProtected(node: string) {
  const id = await announce(node);
  await waitFor(`${node}: protect-pcie delivered`, async () => commandsOf(node, 'protect-pcie').length > 0);
  return { id, node };
}
/** A reboot queued behind an operator hold on its node. */
async function queuedByHold(node: string) {
  const hold = (await retried('/v1/holds', { body: { selector: { node }, reason: 'audit' } })).json.id as string;
  const id = await announce(node);
  await until(id, (r) => r.status === 'queued', 'queued by the hold');
  return { id, node, hold };
}

/** The node is free again: a new reboot of it goes through its whole flow (no slot held, no claim left). */
async function nodeStillWorks(node: string) {
  released.add(node);
  const id = await announce(node, { noticeSeconds: 5 });
  await until(id, (r) => r.status === 'completed', 'a later reboot of the node completes (nothing left holding it)', 60_000);
}

/**
 * Runs one case: `setup` a node into the state the request needs, `request` on a twin unarmed (the number of
 * writes), then on victims killed after write k, `retry` as a client, `check` the outcome.
 */
async function audit<S>(
  name: string,
  c: {
    setup: (node: string) => Promise<S>;
    request: (s: S, headers: Record<string, string>) => Promise<Answer>;
    check: (s: S, node: string, retry: Answer, killed: boolean) => Promise<void>;
  },
) {
  const twin = takeNode();
  const ts = await c.setup(twin);
  const { n, res } = await writesOf((h) => c.request(ts, h));
  expect(n, `${name}: the request makes writes (${JSON.stringify(res.json)})`).toBeGreaterThan(0);
  await c.check(ts, twin, res, false);
  for (const k of points(n)) {
    const node = takeNode();
    const s = await c.setup(node);
    const killed = await underKill(`${name} (${node})`, k, (h) => c.request(s, h));
    const retry = await retried('', { method: 'GET' }).then(() => c.request(s, {}));
    try {
      await c.check(s, node, retry, killed);
    } catch (err) {
      throw new Error(`${name}: killed after write ${k} of ${n} (seed ${SEED}): ${(err as Error).message}`);
    }
  }
}

beforeAll(async () => {
  dir = tempDir('restart-audit-s9');
  dataDir = join(dir, 'data');
  nodesFile = writeInventory(dir, INVENTORY);
  env = {
    PORT: String(await freePort()),
    SQS_PORT: String(await freePort()),
    STACK_TEST_CRASH_POINTS: '1',
    RECONCILE_INTERVAL_SECONDS: '5',
  };
  stack = await startStackProcess({ dataDir, nodesFile, env });
  supervise(stack);
  url = stack.url;
  void watchdogs();
}, 90_000);

afterAll(async () => {
  stopped = true;
  console.log(`restart-audit-s9: ${restarts} restarts (seed ${SEED})`);
  await stack?.stop();
});

describe('kill -9 inside a write request, restart, the same request again: once, nothing half done, the reboot completes', () => {
  it('POST /v1/reboots/{id}/extensions with an Idempotency-Key: one grant, the same answer, postpone-reboot at the new deadline', async () => {
    await audit('extension with key', {
      setup: async (node) => ({ ...(await announcedInNotice(node)), key: `key-${node}` }),
      request: (s, h) =>
        call(`/v1/reboots/${s.id}/extensions`, {
          token: `agent-token-${s.node}`,
          body: { seconds: 120, reason: 'audit' },
          headers: { 'idempotency-key': s.key, ...h },
        }),
      check: async (s, node, retry) => {
        expect(retry.status, JSON.stringify(retry.json)).toBe(200);
        const r = await get(s.id);
        expect(r.extensions.length, 'granted once').toBe(1);
        expect(retry.json.deadline).toBe(r.deadline);
        await waitFor(`${node}: postpone-reboot at ${r.deadline}`, async () =>
          commandsOf(`${node}.dpu0`, 'postpone-reboot').some((c) => c.args.deadline === r.deadline),
        );
        await finish(s.id, node);
      },
    });
  }, 120_000);

  it('POST /v1/reboots/{id}/extensions without a key: at most one grant per request sent, the xPU told the deadline that holds', async () => {
    await audit('extension without key', {
      setup: announcedInNotice,
      request: (s, h) =>
        call(`/v1/reboots/${s.id}/extensions`, { token: `agent-token-${s.node}`, body: { seconds: 60, reason: 'audit' }, headers: h }),
      check: async (s, node, retry, killed) => {
        expect(retry.status, JSON.stringify(retry.json)).toBe(200);
        const r = await get(s.id);
        expect(r.extensions.length).toBeLessThanOrEqual(killed ? 2 : 1);
        expect(retry.json.deadline).toBe(r.deadline);
        await waitFor(`${node}: postpone-reboot at ${r.deadline}`, async () =>
          commandsOf(`${node}.dpu0`, 'postpone-reboot').some((c) => c.args.deadline === r.deadline),
        );
        await finish(s.id, node);
      },
    });
  }, 120_000);

  it('POST /v1/reboots/{id}/cancel: cancelled once, one cancel-reboot, the host gets restore-pcie then resume-workloads', async () => {
    await audit('cancel', {
      setup: announcedProtected,
      request: (s, h) => call(`/v1/reboots/${s.id}/cancel`, { body: { reason: 'audit' }, headers: h }),
      check: async (s, node, retry) => {
        expect(retry.status, JSON.stringify(retry.json)).toBe(200);
        expect(retry.json.status).toBe('cancelled');
        await waitFor(`${node}: cancel-reboot, restore-pcie and resume-workloads delivered`, async () =>
          ['cancel-reboot', 'restore-pcie', 'resume-workloads'].every(
            (t) => commandsOf(t === 'cancel-reboot' ? `${node}.dpu0` : node, t).length > 0,
          ),
        );
        const r = await get(s.id);
        expect(r.history.filter((h: any) => h.phase === 'cancelled').length, 'cancelled once').toBe(1);
        expect(commandsOf(`${node}.dpu0`, 'cancel-reboot').length, 'one cancel-reboot').toBe(1);
        expect(commandsOf(node, 'restore-pcie').length).toBe(1);
        await nodeStillWorks(node);
      },
    });
  }, 120_000);

  it('POST /v1/reboots/{id}/force: forced once, one proceed-reboot, the reboot completes', async () => {
    await audit('force', {
      setup: announcedProtected,
      request: (s, h) => call(`/v1/reboots/${s.id}/force`, { body: { reason: 'audit' }, headers: h }),
      check: async (s, node, retry) => {
        expect(retry.status, JSON.stringify(retry.json)).toBe(200);
        const r = await until(s.id, (x) => x.status === 'completed', 'completes');
        expect(r.history.filter((h: any) => h.phase === 'forced').length, 'forced once').toBe(1);
        expect(commandsOf(`${node}.dpu0`, 'proceed-reboot').length, 'one proceed-reboot').toBe(1);
        await nodeStillWorks(node);
      },
    });
  }, 120_000);

  it('POST /v1/reboots/{id}/force of a queued reboot: forced once, one proceed-reboot, out of the queue, completes', async () => {
    await audit('force queued', {
      setup: queuedByHold,
      request: (s, h) => call(`/v1/reboots/${s.id}/force`, { body: { reason: 'audit' }, headers: h }),
      check: async (s, node, retry) => {
        expect(retry.status, JSON.stringify(retry.json)).toBe(200);
        const r = await until(s.id, (x) => x.status === 'completed', 'completes');
        expect(r.history.filter((h: any) => h.phase === 'forced').length, 'forced once').toBe(1);
        expect(commandsOf(`${node}.dpu0`, 'proceed-reboot').length, 'one proceed-reboot').toBe(1);
        expect((await retried(`/v1/holds/${s.hold}`, { method: 'DELETE' })).status).toBe(204);
        await nodeStillWorks(node);
      },
    });
  }, 120_000);

  it('POST /v1/holds: the hold is there once; released, the node reboots again', async () => {
    await audit('hold', {
      setup: async (node) => ({ node }),
      request: (s, h) => call('/v1/holds', { body: { selector: { node: s.node }, reason: `audit ${s.node}` }, headers: h }),
      check: async (_s, node, retry) => {
        expect(retry.status, JSON.stringify(retry.json)).toBe(201);
        const holds = (await retried('/v1/holds')).json.items.filter((x: any) => x.selector.node === node);
        expect(
          holds.map((x: any) => x.id),
          'one hold',
        ).toEqual([retry.json.id]);
        const id = await announce(node);
        await until(id, (r) => r.status === 'queued', 'queued by the hold');
        for (const x of holds) expect((await retried(`/v1/holds/${x.id}`, { method: 'DELETE' })).status).toBe(204);
        await finish(id, node);
      },
    });
  }, 120_000);

  it('DELETE /v1/holds/{id}: gone, and what it queued goes on', async () => {
    await audit('hold release', {
      setup: queuedByHold,
      request: (s, h) => call(`/v1/holds/${s.hold}`, { method: 'DELETE', headers: h }),
      check: async (s, node, retry, killed) => {
        expect(killed ? [204, 404] : [204]).toContain(retry.status);
        const holds = (await retried('/v1/holds')).json.items.filter((x: any) => x.selector.node === node);
        expect(holds).toEqual([]);
        await until(s.id, (r) => r.status !== 'queued', 'out of the queue once the hold is gone', 20_000);
        await finish(s.id, node);
      },
    });
  }, 120_000);

  it('POST /v1/rollouts: one rollout, not two; it completes and the xPU can be rolled out again', async () => {
    await audit('rollout', {
      setup: async (node) => {
        released.add(node);
        return { node };
      },
      request: (s, h) =>
        call('/v1/rollouts', {
          body: { selector: { node: s.node }, maxUnavailable: 1, reason: `audit ${s.node}`, noticeSeconds: 1 },
          // Without a key a repeat cannot be told from a second start: 409 while the first's claim or record holds.
          headers: { 'idempotency-key': `rollout-${s.node}`, ...h },
        }),
      check: async (_s, node, retry) => {
        expect(retry.status, JSON.stringify(retry.json)).toBe(201);
        const ros = await rolloutsOf(node);
        expect(ros.length, `one rollout: ${JSON.stringify(ros.map((r) => [r.id, r.status]))}`).toBe(1);
        expect(retry.json.id).toBe(ros[0].id);
        await waitFor(`${node}: the rollout completes`, async () => (await rolloutsOf(node))[0].status === 'completed', 60_000);
        expect(commandsOf(`${node}.dpu0`, 'reboot-xpu').length, 'one reboot-xpu').toBe(1);
        // Its claim is gone: the same xPU can be rolled out again.
        const again = await retried('/v1/rollouts', { body: { selector: { node }, maxUnavailable: 1, reason: 'again', noticeSeconds: 1 } });
        expect(again.status, JSON.stringify(again.json)).toBe(201);
        await waitFor(
          `${node}: the second rollout completes`,
          async () => (await retried(`/v1/rollouts/${again.json.id}`)).json.status === 'completed',
          60_000,
        );
      },
    });
  }, 180_000);

  it('POST /v1/rollouts without a key, killed between its record and its workflow: the repeat (409) starts that rollout, which completes', async () => {
    const node = takeNode();
    released.add(node);
    const body = { selector: { node }, maxUnavailable: 1, reason: `audit ${node}`, noticeSeconds: 1 };
    // A one-xPU plan writes its claim (1), its record (2), then starts its workflow (3).
    expect(await underKill(`rollout without key (${node})`, 2, (h) => call('/v1/rollouts', { body, headers: h }))).toBe(true);
    const ros = await rolloutsOf(node);
    expect(
      ros.map((r) => r.status),
      'the record is there',
    ).toEqual(['running']);
    const retry = await retried('/v1/rollouts', { body });
    expect(retry.status, JSON.stringify(retry.json)).toBe(409);
    expect(retry.json.error).toBe('RolloutOverlap');
    expect(retry.json.message).toContain(ros[0].id);
    await waitFor(
      `${node}: the rollout nothing ran completes`,
      async () => (await retried(`/v1/rollouts/${ros[0].id}`)).json.status === 'completed',
      60_000,
    );
    expect((await rolloutsOf(node)).length, 'one rollout').toBe(1);
    await nodeStillWorks(node);
  }, 120_000);

  it('POST /v1/rollouts/{id}/cancel: cancelled, its claim freed (a new rollout of the xPU starts and completes)', async () => {
    await audit('rollout cancel', {
      setup: async (node) => {
        const ro = await retried('/v1/rollouts', { body: { selector: { node }, maxUnavailable: 1, reason: 'audit', noticeSeconds: 300 } });
        expect(ro.status).toBe(201);
        const [r] = await waitFor(`${node}: the rollout's reboot`, async () => {
          const rs = await rebootsOf(node);
          return rs.length ? rs : undefined;
        });
        await until(r.id, inNotice, 'in its notice phase');
        return { node, ro: ro.json.id as string, id: r.id as string };
      },
      request: (s, h) => call(`/v1/rollouts/${s.ro}/cancel`, { body: { reason: 'audit' }, headers: h }),
      check: async (s, node, retry, killed) => {
        expect(killed ? [200, 409] : [200], JSON.stringify(retry.json)).toContain(retry.status);
        expect((await retried(`/v1/rollouts/${s.ro}`)).json.status).toBe('cancelled');
        await finish(s.id, node);
        const again = await retried('/v1/rollouts', { body: { selector: { node }, maxUnavailable: 1, reason: 'again', noticeSeconds: 1 } });
        expect(again.status, JSON.stringify(again.json)).toBe(201);
        await waitFor(
          `${node}: the new rollout completes`,
          async () => (await retried(`/v1/rollouts/${again.json.id}`)).json.status === 'completed',
          60_000,
        );
      },
    });
  }, 180_000);

  it('POST /v1/agents/{id}/commands/{cmdId}, a final result: applied once, the workflow moves on, the reboot completes', async () => {
    const run = async (node: string, k: number) => {
      const id = await announce(node);
      await waitFor(`${node}: protect-pcie delivered`, async () => commandsOf(node, 'protect-pcie').length > 0);
      let cmd: any;
      armResult = { agent: node, type: 'protect-pcie', k, hit: (c) => (cmd = c) };
      released.add(node);
      const r = await until(id, (x) => x.status === 'completed', 'completes after the host answered', 60_000);
      expect(cmd, 'the armed result was sent').toBeDefined();
      const about = r.history.filter((h: any) => h.detail.includes('protect-pcie') && h.detail.includes('succeeded'));
      expect(about.length, `the result recorded once: ${JSON.stringify(about)}`).toBeLessThanOrEqual(1);
      await nodeStillWorks(node);
    };
    const before = restarts;
    await run(takeNode(), 100_000);
    expect(restarts).toBe(before);
    for (const k of ALL ? [1, 2, 3, 4, 5, 6] : [1 + Math.floor(random() * 3)]) await run(takeNode(), k);
  }, 180_000);

  it('POST /v1/events killed in flight: accepted once, processed within 10 s of the restart', async () => {
    await audit('event', {
      setup: async (node) => ({ node, ev: `ev-${node}` }),
      request: (s, h) =>
        call('/v1/events', {
          token: `agent-token-${s.node}`,
          body: { id: s.ev, type: 'xpu.reboot.pending', node: s.node, xpu: 'dpu0', data: { reason: 'audit', noticeSeconds: 1 } },
          headers: h,
        }),
      check: async (_s, node, retry) => {
        expect(retry.status).toBe(202);
        released.add(node);
        const [r] = await waitFor(
          `${node}: its reboot within 10 s of the restart`,
          async () => {
            const rs = await rebootsOf(node);
            return rs.length ? rs : undefined;
          },
          10_000,
        );
        await until(r.id, (x) => x.status === 'completed', 'completes');
        expect((await rebootsOf(node)).length, 'one reboot').toBe(1);
      },
    });
  }, 120_000);

  it('POST /v1/dlq/redrive: the event applied once, and the dead letter gone', async () => {
    const sqs = new SQSClient({
      endpoint: `http://127.0.0.1:${env.SQS_PORT}`,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const dlqUrl = `http://127.0.0.1:${env.SQS_PORT}/000000000000/xpu-reboot-ingest-dlq`;
    try {
      await audit('dlq redrive', {
        setup: async (node) => {
          const at = new Date().toISOString();
          const ev = {
            id: `dead-${node}`,
            type: 'xpu.reboot.pending',
            node,
            xpu: 'dpu0',
            time: at,
            data: { reason: 'audit', noticeSeconds: 1 },
            source: 'native',
            dedupKey: `native:${node}:dead-${node}`,
            receivedAt: at,
          };
          const sent = await sqs.send(new SendMessageCommand({ QueueUrl: dlqUrl, MessageBody: JSON.stringify(ev) }));
          released.add(node);
          return { node, mid: sent.MessageId! };
        },
        request: (s, h) => call('/v1/dlq/redrive', { body: { ids: [s.mid] }, headers: h }),
        check: async (s, node, retry) => {
          expect(retry.status).toBe(200);
          // Moved already (killed after its delete): the repeat finds it gone, which is what happened.
          expect(retry.json.redriven + retry.json.missing.length, JSON.stringify(retry.json)).toBe(1);
          const [r] = await waitFor(`${node}: its reboot`, async () => {
            const rs = await rebootsOf(node);
            return rs.length ? rs : undefined;
          });
          await until(r.id, (x) => x.status === 'completed', 'completes');
          expect((await rebootsOf(node)).length, 'one reboot').toBe(1);
          const dead = (await retried('/v1/dlq?limit=100')).json.items.filter((m: any) => m.messageId === s.mid);
          expect(dead).toEqual([]);
        },
      });
    } finally {
      sqs.destroy();
    }
  }, 120_000);
});

/** Ends a reboot held in its notice phase: its host answers, the operator forces it; then the node works again. */
async function finish(id: string, node: string) {
  released.add(node);
  const r = await get(id);
  if (!ENDED.includes(r.status) && r.status !== 'rebooting' && r.status !== 'recovering') {
    const f = await retried(`/v1/reboots/${id}/force`, { body: { reason: 'audit: finish' } });
    expect([200, 409]).toContain(f.status);
  }
  await until(id, (x) => ENDED.includes(x.status), 'ends', 60_000);
  await nodeStillWorks(node);
}
