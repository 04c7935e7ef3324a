// Black-box acceptance audit of fleet safety and operations (CONTRACT.md 3, 7.1, 7.3, 7.4; docs/fleet-safety.md,
// rollouts.md, reboot-model.md, operations.md, api.md) through one real local stack, the HTTP API and `rebootctl`,
// driving disorder: many operators at once, cancel racing force and the reboot's own end, budgets per rack, zone,
// tenant and fleet checked at every poll while random announcements run, the queue's wake-up order, rollouts
// cancelled, paused and killed mid-wave, a budget raised while reboots queue, and bad input that must change nothing.
// Only what fleet-safety, rollout-stack and the contract audits do not check already.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NODE,
  OPERATOR_TOKEN,
  ROOT,
  api,
  childEnv,
  freePort,
  startStackProcess,
  tempDir,
  waitFor,
  waitForReboot,
  writeInventory,
  type RunningStack,
} from '../support/stack.ts';

// Multi-domain nodes: racks pr1..pr3, zones pz1 (pr1, pr2) and pz2 (pr3), tenants pa and pb; their own budgets.
const MULTI = { rack: 2, zone: 3, tenant: 2, fleet: 4 };
const M_NODES: Array<{ id: string; rack: string; zone: string; tenant: string; xpus: string[] }> = [
  { id: 'n1', rack: 'pr1', zone: 'pz1', tenant: 'pa', xpus: ['dpu0', 'dpu1'] },
  { id: 'n2', rack: 'pr1', zone: 'pz1', tenant: 'pa', xpus: ['dpu0'] },
  { id: 'n3', rack: 'pr1', zone: 'pz1', tenant: 'pb', xpus: ['dpu0'] },
  { id: 'n4', rack: 'pr2', zone: 'pz1', tenant: 'pa', xpus: ['dpu0'] },
  { id: 'n5', rack: 'pr2', zone: 'pz1', tenant: 'pb', xpus: ['dpu0'] },
  { id: 'n6', rack: 'pr2', zone: 'pz1', tenant: 'pb', xpus: ['dpu0'] },
  { id: 'n7', rack: 'pr3', zone: 'pz2', tenant: 'pa', xpus: ['dpu0'] },
  { id: 'n8', rack: 'pr3', zone: 'pz2', tenant: 'pb', xpus: ['dpu0'] },
  { id: 'n9', rack: 'pr3', zone: 'pz2', tenant: 'pb', xpus: ['dpu0'] },
];
const multiBudgets = Object.entries(MULTI)
  .map(([per, n]) => `{ per: ${per}, maxUnavailable: ${n} }`)
  .join(', ');

const LONG = 'policy: { xpuReboot: { noticeSeconds: 300 } }';
const line = (id: string, rack: string, extra = '') =>
  `  - { id: ${id}, rack: ${rack}, zone: z9, tenant: t9, trusted: true, bmcToken: bmc-token-${id}, agentToken: agent-token-${id}${extra ? `, ${extra}` : ''}, xpus: [{ id: dpu0 }] }`;

/** `bqBudget`: the rack budget of bq1..bq3 (raised across the restart). */
const inventory = (bqBudget: number) => `
policy:
  xpuReboot: { noticeSeconds: 30, maxExtensionSeconds: 600, heartbeatSeconds: 30, recoverySeconds: 30, commandSeconds: 20 }
  budgets:
    - { per: rack, maxUnavailable: 1 }
nodes:
${M_NODES.map(
  (n) =>
    `  - { id: ${n.id}, rack: ${n.rack}, zone: ${n.zone}, tenant: ${n.tenant}, agentToken: agent-token-${n.id}, policy: { budgets: [${multiBudgets}] }, xpus: [${n.xpus.map((x) => `{ id: ${x} }`).join(', ')}] }`,
).join('\n')}
${['q1', 'q2', 'q3', 'q4', 'q5'].map((id) => line(id, 'qa', LONG)).join('\n')}
${['k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8'].map((id) => line(id, `rk-${id}`, LONG)).join('\n')}
${['h1', 'h2'].map((id) => `  - { id: ${id}, rack: rh, zone: zh, tenant: th, agentToken: agent-token-${id}, ${LONG}, xpus: [{ id: dpu0 }] }`).join('\n')}
  - { id: bz, rack: rbz, agentToken: agent-token-bz, ${LONG}, xpus: [{ id: dpu0, agentToken: xpu-token-bz }] }
${['bq1', 'bq2', 'bq3'].map((id) => `  - { id: ${id}, rack: bq, agentToken: agent-token-${id}, policy: { xpuReboot: { noticeSeconds: 300 }, budgets: [{ per: rack, maxUnavailable: ${bqBudget} }] }, xpus: [{ id: dpu0 }] }`).join('\n')}
${['ro1', 'ro2', 'ro3', 'ro4', 'rc1', 'rc2', 'rc3', 'rc4'].map((id) => `  - { id: ${id}, rack: ${id.slice(0, 2)}, agentToken: agent-token-${id}, policy: { budgets: [] }, xpus: [{ id: dpu0 }] }`).join('\n')}
  - { id: nf, rack: rnf, agentToken: agent-token-nf, ${LONG}, xpus: [{ id: dpu0 }] }
${['rw1', 'rw2'].map((id) => `  - { id: ${id}, rack: rw, agentToken: agent-token-${id}, policy: { budgets: [] }, xpus: [{ id: dpu0 }] }`).join('\n')}
  - { id: rp1, rack: rp, agentToken: agent-token-rp1, policy: { budgets: [], xpuReboot: { recoverySeconds: 3 } }, xpus: [{ id: dpu0 }] }
  - { id: rp2, rack: rp, agentToken: agent-token-rp2, policy: { budgets: [] }, xpus: [{ id: dpu0 }] }
`;

const ALL_AGENTS = [
  ...M_NODES.flatMap((n) => [n.id, ...n.xpus.map((x) => `${n.id}.${x}`)]),
  ...['q1', 'q2', 'q3', 'q4', 'q5', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'h1', 'h2', 'bq1', 'bq2', 'bq3'].flatMap((n) => [
    n,
    `${n}.dpu0`,
  ]),
  ...['ro1', 'ro2', 'ro3', 'ro4', 'rc1', 'rc2', 'rc3', 'rc4', 'rp1', 'rp2'].flatMap((n) => [n, `${n}.dpu0`]),
  'nf', // its xPU's agent is away (nf.dpu0 polls nothing)
  // bz and k8 have no agents: their reboots stay as they are (the bad-input checks compare them before and after);
  // rw1 and rw2 neither: a rollout's reboot-xpu to them stays undelivered.
];

let dir: string;
let dataDir: string;
let port: string;
let stack: RunningStack;
let url: string;
let stopped = false;
const startedAt = new Date().toISOString();

type Answer = 'succeeded' | 'failed' | null;
/** Every command each agent took, first delivery only. */
const seen = new Map<string, any[]>();
const answers = new Map<string, Answer>();
/** Host agents that take their preparation commands and never answer them (the reboot stays in its notice phase). */
const silentHosts = new Set([
  'nf',
  'q1',
  'q2',
  'q3',
  'q4',
  'q5',
  'k1',
  'k2',
  'k3',
  'k4',
  'k5',
  'k6',
  'k7',
  'h1',
  'h2',
  'bq1',
  'bq2',
  'bq3',
]);
/** xPUs that never come back after going down. */
const neverReady = new Set(['rp1.dpu0']);
/** Host agents that hold their restore-pcie answer until this settles (the reboot stays in recovery meanwhile). */
const gates = new Map<string, Promise<void>>();
/** Pause between an xPU's down and its ready (a slower reboot keeps a rollout's wave in flight longer). */
const rebootMs = new Map<string, number>();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Posts one event as the node's agent, again and again while the stack is down or restarting. */
async function post(node: string, id: string, type: string, xpu: string | undefined, data?: Record<string, unknown>) {
  for (let i = 0; i < 300; i++) {
    const res = await api(url, '/v1/events', {
      // bz's xPU has a token of its own (contract 7.2): only it posts that xPU's events.
      token: node === 'bz' && xpu ? 'xpu-token-bz' : `agent-token-${node}`,
      body: { id, type, node, ...(xpu ? { xpu } : {}), ...(data ? { data } : {}) },
    }).catch(() => undefined);
    if (res && res.status < 500) return res;
    await sleep(200);
  }
  throw new Error(`could not post ${type} ${id}`);
}

/** What an agent does with a command the first time it sees it; the answer is posted on every delivery. */
async function react(agent: string, cmd: any): Promise<Answer> {
  const [node, xpu] = agent.split('.');
  if (!xpu && cmd.type === 'restore-pcie') await gates.get(node);
  if (!xpu) return silentHosts.has(node) && ['migrate-workloads', 'protect-pcie'].includes(cmd.type) ? null : 'succeeded';
  if (cmd.type === 'reboot-xpu') {
    await post(node, `ann-${cmd.id}`, 'xpu.reboot.pending', xpu, { reason: cmd.args.reason, rolloutId: cmd.args.rolloutId });
    return 'succeeded';
  }
  if (cmd.type === 'proceed-reboot') {
    await post(node, `down-${cmd.id}`, 'xpu.down', xpu);
    if (neverReady.has(agent)) return 'succeeded';
    await sleep(rebootMs.get(agent) ?? 100);
    await post(node, `ready-${cmd.id}`, 'xpu.ready', xpu);
  }
  return 'succeeded';
}

async function fakeAgent(agent: string) {
  while (!stopped) {
    const res = await api(url, `/v1/agents/${agent}/commands?wait=1`, { token: OPERATOR_TOKEN }).catch(() => undefined);
    if (res?.status !== 200) {
      await sleep(250);
      continue;
    }
    for (const cmd of res.json) {
      const list = seen.get(agent) ?? [];
      if (!list.some((c) => c.id === cmd.id)) {
        list.push(cmd);
        seen.set(agent, list);
        answers.set(cmd.id, await react(agent, cmd));
      }
      const answer = answers.get(cmd.id);
      // As the real agent does: a result the stack did not answer (killed meanwhile) is sent again until it is.
      for (let i = 0; answer && i < 300 && !stopped; i++) {
        const res = await api(url, `/v1/agents/${agent}/commands/${cmd.id}`, { token: OPERATOR_TOKEN, body: { status: answer } }).catch(
          () => undefined,
        );
        if (res && res.status < 500) break;
        await sleep(200);
      }
    }
  }
}

const types = (agent: string) => (seen.get(agent) ?? []).map((c) => c.type);
const count = (agent: string, type: string) => types(agent).filter((t) => t === type).length;
const get = async (id: string) => (await api(url, `/v1/reboots/${id}`, { token: OPERATOR_TOKEN })).json;
const listAll = async () => (await api(url, '/v1/reboots?limit=1000', { token: OPERATOR_TOKEN })).json.items as any[];
const rebootsOf = async (node: string) => (await api(url, `/v1/reboots?node=${node}`, { token: OPERATOR_TOKEN })).json.items as any[];
const until = (id: string, ok: (r: any) => boolean, what: string, ms = 30_000) => waitForReboot(url, id, ok, what, ms);
const ENDED = new Set(['completed', 'failed', 'cancelled', 'denied']);
let seq = 0;
/** Announces a planned reboot of the node's xPU and returns its id once it exists. */
async function announce(node: string, xpu = 'dpu0'): Promise<string> {
  const before = new Set((await rebootsOf(node)).map((r) => r.id));
  const res = await post(node, `ann-${node}-${xpu}-${++seq}`, 'xpu.reboot.pending', xpu, { reason: 'audit' });
  expect(res.status).toBe(202);
  const r = await waitFor(`a new reboot of ${node}.${xpu}`, async () =>
    (await rebootsOf(node)).find((x) => !before.has(x.id) && x.xpu === xpu),
  );
  return r.id;
}
const control = (id: string, kind: 'cancel' | 'force', token = OPERATOR_TOKEN, reason = `audit ${kind}`) =>
  api(url, `/v1/reboots/${id}/${kind}`, { token, body: { reason } });
const inNotice = (r: any) => ['notified', 'preparing', 'extended'].includes(r.status);

function rebootctl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(NODE, [join(ROOT, 'cli/rebootctl.js'), ...args], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  dir = tempDir('fleet-audit-s8');
  dataDir = join(dir, 'data');
  // A fixed port: the fake agents find the stack again after its kill -9 and restart.
  port = String(await freePort());
  stack = await startStackProcess({ dataDir, nodesFile: writeInventory(dir, inventory(1)), env: { PORT: port } });
  url = stack.url;
  for (const a of ALL_AGENTS) void fakeAgent(a);
}, 90_000);

afterAll(async () => {
  stopped = true;
  await stack?.stop();
});

// --- bad input ----------------------------------------------------------------------------------

describe('every bad input to holds, cancel, force and rollouts: a clear 4xx with its error name, nothing changed', () => {
  it('answers the documented status and error, and holds, rollouts and reboots read the same before and after', async () => {
    const bz = await announce('bz');
    // Stable: nothing answers bz's commands; its notice is 300 s.
    await until(bz, (r) => r.status === 'preparing' || r.status === 'notified', 'in its notice phase');
    await sleep(1500);
    const held = await api(url, '/v1/holds', { token: OPERATOR_TOKEN, body: { selector: { node: 'h2' }, reason: 'kept' } });
    expect(held.status).toBe(201);
    const hostReboot = await post('k8', 'k8-host', 'host.reboot.requested', undefined, { method: 'shell' });
    expect(hostReboot.status).toBe(202);
    const k8host = (await waitFor('k8 host reboot', async () => (await rebootsOf('k8')).find((r) => r.kind === 'host'))).id;
    await sleep(1000);
    const snapshot = async () => ({
      holds: (await api(url, '/v1/holds', { token: OPERATOR_TOKEN })).json,
      rollouts: (await api(url, '/v1/rollouts', { token: OPERATOR_TOKEN })).json,
      bz: await get(bz),
      // No agent answers k8's host reboot; its timers may still move it: compare what a request could have changed.
      k8: ((r) => ({ status: r.status, ops: r.history.filter((h: any) => h.by !== 'coordinator') }))(await get(k8host)),
      reboots: (await listAll()).map((r) => r.id).sort(),
    });
    const before = await snapshot();
    const big = 'x'.repeat(300 * 1024);
    const long = 'y'.repeat(600);
    const op = OPERATOR_TOKEN;
    const cases: Array<[string, string, { token?: string; raw?: string; body?: unknown; method?: string }, number, string]> = [
      // holds
      ['hold without a token', '/v1/holds', { body: { selector: { node: 'h1' }, reason: 'r' } }, 401, 'Unauthorized'],
      ['hold with a bad token', '/v1/holds', { token: 'nope', body: { selector: { node: 'h1' }, reason: 'r' } }, 401, 'Unauthorized'],
      [
        'hold with an agent token',
        '/v1/holds',
        { token: 'agent-token-h1', body: { selector: { node: 'h1' }, reason: 'r' } },
        403,
        'Forbidden',
      ],
      ['hold with a BMC token', '/v1/holds', { token: 'bmc-token-k1', body: { selector: { node: 'k1' }, reason: 'r' } }, 403, 'Forbidden'],
      ['hold, not JSON', '/v1/holds', { token: op, raw: '{"selector":' }, 400, 'MalformedJson'],
      ['hold, an array', '/v1/holds', { token: op, body: [] }, 400, 'ValidationError'],
      [
        'hold, two selector keys',
        '/v1/holds',
        { token: op, body: { selector: { node: 'h1', rack: 'rh' }, reason: 'r' } },
        400,
        'ValidationError',
      ],
      ['hold, empty selector', '/v1/holds', { token: op, body: { selector: {}, reason: 'r' } }, 400, 'ValidationError'],
      ['hold, a number as node', '/v1/holds', { token: op, body: { selector: { node: 5 }, reason: 'r' } }, 400, 'ValidationError'],
      ['hold, unknown selector key', '/v1/holds', { token: op, body: { selector: { pool: 'p' }, reason: 'r' } }, 400, 'ValidationError'],
      ['hold without a reason', '/v1/holds', { token: op, body: { selector: { node: 'h1' } } }, 400, 'ValidationError'],
      [
        'hold, until in the past',
        '/v1/holds',
        { token: op, body: { selector: { node: 'h1' }, reason: 'r', until: '2001-01-01T00:00:00Z' } },
        400,
        'ValidationError',
      ],
      [
        'hold, until not a date',
        '/v1/holds',
        { token: op, body: { selector: { node: 'h1' }, reason: 'r', until: 'tomorrow' } },
        400,
        'ValidationError',
      ],
      ['hold, unknown node', '/v1/holds', { token: op, body: { selector: { node: 'nope' }, reason: 'r' } }, 404, 'NotFound'],
      ['hold, unknown rack', '/v1/holds', { token: op, body: { selector: { rack: 'nope' }, reason: 'r' } }, 404, 'NotFound'],
      ['hold, over 256 KiB', '/v1/holds', { token: op, body: { selector: { node: 'h1' }, reason: big } }, 413, 'PayloadTooLarge'],
      ['delete an unknown hold', '/v1/holds/hold-nope', { token: op, method: 'DELETE' }, 404, 'NotFound'],
      ['delete a hold as an agent', `/v1/holds/${held.json.id}`, { token: 'agent-token-h2', method: 'DELETE' }, 403, 'Forbidden'],
      ['delete a hold without a token', `/v1/holds/${held.json.id}`, { method: 'DELETE' }, 401, 'Unauthorized'],
      ['list holds as an agent', '/v1/holds', { token: 'agent-token-h2', method: 'GET' }, 403, 'Forbidden'],
      // cancel and force
      ['cancel an unknown reboot', '/v1/reboots/nope/cancel', { token: op, body: { reason: 'r' } }, 404, 'NotFound'],
      ['force an unknown reboot', '/v1/reboots/nope/force', { token: op, body: { reason: 'r' } }, 404, 'NotFound'],
      ['cancel, not JSON', `/v1/reboots/${bz}/cancel`, { token: op, raw: 'reason=please' }, 400, 'MalformedJson'],
      ['force, not JSON', `/v1/reboots/${bz}/force`, { token: op, raw: '{' }, 400, 'MalformedJson'],
      ['cancel, reason a number', `/v1/reboots/${bz}/cancel`, { token: op, body: { reason: 5 } }, 400, 'ValidationError'],
      ['force, reason too long', `/v1/reboots/${bz}/force`, { token: op, body: { reason: 'z'.repeat(1001) } }, 400, 'ValidationError'],
      ['cancel, a JSON string', `/v1/reboots/${bz}/cancel`, { token: op, body: 'cancel' }, 400, 'ValidationError'],
      ['cancel, over 256 KiB', `/v1/reboots/${bz}/cancel`, { token: op, body: { reason: big } }, 413, 'PayloadTooLarge'],
      ['cancel without a token', `/v1/reboots/${bz}/cancel`, { body: { reason: 'r' } }, 401, 'Unauthorized'],
      ['cancel by another node', `/v1/reboots/${bz}/cancel`, { token: 'agent-token-k1', body: { reason: 'r' } }, 403, 'Forbidden'],
      [
        'cancel by the host of an xPU with its own token',
        `/v1/reboots/${bz}/cancel`,
        { token: 'agent-token-bz', body: { reason: 'r' } },
        403,
        'Forbidden',
      ],
      ['force by the xPU itself', `/v1/reboots/${bz}/force`, { token: 'xpu-token-bz', body: { reason: 'r' } }, 403, 'Forbidden'],
      ['force by a BMC', `/v1/reboots/${bz}/force`, { token: 'bmc-token-k1', body: { reason: 'r' } }, 403, 'Forbidden'],
      [
        'cancel of a host reboot by its agent',
        `/v1/reboots/${k8host}/cancel`,
        { token: 'agent-token-k8', body: { reason: 'r' } },
        403,
        'Forbidden',
      ],
      [`an id of ${long.length} bytes`, `/v1/reboots/${long}/cancel`, { token: op, body: { reason: 'r' } }, 404, 'NotFound'],
      // rollouts
      [
        'rollout without a token',
        '/v1/rollouts',
        { body: { selector: { rack: 'ro' }, maxUnavailable: 1, reason: 'r' } },
        401,
        'Unauthorized',
      ],
      [
        'rollout as an agent',
        '/v1/rollouts',
        { token: 'agent-token-ro1', body: { selector: { rack: 'ro' }, maxUnavailable: 1, reason: 'r' } },
        403,
        'Forbidden',
      ],
      ['rollout, not JSON', '/v1/rollouts', { token: op, raw: '{"selector":{}' }, 400, 'MalformedJson'],
      [
        'rollout, maxUnavailable as text',
        '/v1/rollouts',
        { token: op, body: { selector: { rack: 'ro' }, maxUnavailable: '1', reason: 'r' } },
        400,
        'ValidationError',
      ],
      [
        'rollout, maxUnavailable 0',
        '/v1/rollouts',
        { token: op, body: { selector: { rack: 'ro' }, maxUnavailable: 0, reason: 'r' } },
        400,
        'ValidationError',
      ],
      [
        'rollout, maxUnavailable 1.5',
        '/v1/rollouts',
        { token: op, body: { selector: { rack: 'ro' }, maxUnavailable: 1.5, reason: 'r' } },
        400,
        'ValidationError',
      ],
      [
        'rollout without a reason',
        '/v1/rollouts',
        { token: op, body: { selector: { rack: 'ro' }, maxUnavailable: 1 } },
        400,
        'ValidationError',
      ],
      [
        'rollout, negative notice',
        '/v1/rollouts',
        { token: op, body: { selector: { rack: 'ro' }, maxUnavailable: 1, reason: 'r', noticeSeconds: -1 } },
        400,
        'ValidationError',
      ],
      [
        'rollout, maxFailures 0',
        '/v1/rollouts',
        { token: op, body: { selector: { rack: 'ro' }, maxUnavailable: 1, reason: 'r', maxFailures: 0 } },
        400,
        'ValidationError',
      ],
      [
        'rollout, dryRun as text',
        '/v1/rollouts',
        { token: op, body: { selector: { rack: 'ro' }, maxUnavailable: 1, reason: 'r', dryRun: 'yes' } },
        400,
        'ValidationError',
      ],
      [
        'rollout, two selector keys',
        '/v1/rollouts',
        { token: op, body: { selector: { rack: 'ro', zone: 'z9' }, maxUnavailable: 1, reason: 'r' } },
        400,
        'ValidationError',
      ],
      [
        'rollout, unknown key',
        '/v1/rollouts',
        { token: op, body: { selector: { rack: 'ro' }, maxUnavailable: 1, reason: 'r', waves: 2 } },
        400,
        'ValidationError',
      ],
      [
        'rollout, unknown node',
        '/v1/rollouts',
        { token: op, body: { selector: { node: 'nope' }, maxUnavailable: 1, reason: 'r' } },
        404,
        'NotFound',
      ],
      [
        'rollout, a rack with no xPU',
        '/v1/rollouts',
        { token: op, body: { selector: { rack: 'nope' }, maxUnavailable: 1, reason: 'r' } },
        400,
        'EmptyPlan',
      ],
      [
        'rollout, over 256 KiB',
        '/v1/rollouts',
        { token: op, body: { selector: { rack: 'ro' }, maxUnavailable: 1, reason: big } },
        413,
        'PayloadTooLarge',
      ],
      ['status of an unknown rollout', '/v1/rollouts/ro-nope', { token: op, method: 'GET' }, 404, 'NotFound'],
      ['cancel an unknown rollout', '/v1/rollouts/ro-nope/cancel', { token: op, body: { reason: 'r' } }, 404, 'NotFound'],
      ['cancel a rollout, not JSON', '/v1/rollouts/ro-nope/cancel', { token: op, raw: '{' }, 400, 'MalformedJson'],
      [
        'cancel a rollout as an agent',
        '/v1/rollouts/ro-nope/cancel',
        { token: 'agent-token-ro1', body: { reason: 'r' } },
        403,
        'Forbidden',
      ],
      ['the fleet view as an agent', '/v1/fleet', { token: 'agent-token-ro1', method: 'GET' }, 403, 'Forbidden'],
    ];
    const wrong: string[] = [];
    for (const [what, path, opts, status, error] of cases) {
      const res = await api(url, path, opts);
      if (res.status !== status || res.json?.error !== error || typeof res.json?.message !== 'string' || !res.json.message)
        wrong.push(`${what}: ${res.status} ${res.text.slice(0, 160)} (expected ${status} ${error})`);
    }
    expect(wrong).toEqual([]);
    await sleep(1000);
    const after = await snapshot();
    expect(after.holds).toEqual(before.holds);
    expect(after.rollouts).toEqual(before.rollouts);
    expect(after.reboots).toEqual(before.reboots);
    expect(after.bz).toEqual(before.bz);
    expect(after.k8).toEqual(before.k8);
    expect(count('bz.dpu0', 'cancel-reboot') + count('bz.dpu0', 'proceed-reboot')).toBe(0);
    // Leave nothing behind for the tests below.
    expect((await control(bz, 'cancel')).status).toBe(200);
    expect((await api(url, `/v1/holds/${held.json.id}`, { token: OPERATOR_TOKEN, method: 'DELETE' })).status).toBe(204);
  });
});

// --- many operators at once -----------------------------------------------------------------------

describe('many operators at once', () => {
  it('parallel holds and releases: each hold released once (one 204, the other 404), and what they queued goes on only when the last one is gone', async () => {
    const selectors = [{ node: 'h1' }, { rack: 'rh' }, { zone: 'zh' }, { tenant: 'th' }];
    const created = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        api(url, '/v1/holds', { token: OPERATOR_TOKEN, body: { selector: selectors[i % 4], reason: `op ${i}` } }),
      ),
    );
    expect(created.map((r) => r.status)).toEqual(Array(12).fill(201));
    const ids = created.map((r) => r.json.id as string);
    expect(new Set(ids).size).toBe(12);
    const listed = (await api(url, '/v1/holds', { token: OPERATOR_TOKEN })).json.items.map((h: any) => h.id);
    expect([...listed].sort()).toEqual([...ids].sort());

    const h1 = await announce('h1');
    await until(h1, (r) => r.status === 'queued', 'queued by the holds');
    // Release all but one, each by two operators at once.
    const [last, ...rest] = ids;
    const released = await Promise.all(
      rest.flatMap((id) =>
        [0, 1].map(() => api(url, `/v1/holds/${id}`, { token: OPERATOR_TOKEN, method: 'DELETE' }).then((r) => [id, r.status] as const)),
      ),
    );
    for (const id of rest)
      expect(
        released
          .filter(([i]) => i === id)
          .map(([, s]) => s)
          .sort(),
      ).toEqual([204, 404]);
    await sleep(1500);
    expect((await get(h1)).status).toBe('queued');
    expect((await api(url, '/v1/holds', { token: OPERATOR_TOKEN })).json.items.map((h: any) => h.id)).toEqual([last]);
    expect((await api(url, `/v1/holds/${last}`, { token: OPERATOR_TOKEN, method: 'DELETE' })).status).toBe(204);
    const admitted = await until(h1, (r) => r.status !== 'queued', 'goes on once the last hold is gone');
    // The xPU heard the held deadline when queued, and the re-dated one when it went on (contract 7.1).
    const postponed = await waitFor('the second postpone-reboot', async () => {
      const p = (seen.get('h1.dpu0') ?? []).filter((c) => c.type === 'postpone-reboot' && c.rebootId === h1);
      return p.length >= 2 ? p : undefined;
    });
    expect(postponed.at(-1).args.deadline).toBe(admitted.deadline);
    expect(Date.parse(postponed[0].args.deadline)).toBeGreaterThan(Date.parse(admitted.deadline));
    expect((await api(url, '/v1/holds', { token: OPERATOR_TOKEN })).json.items).toEqual([]);
    expect((await control(h1, 'cancel')).status).toBe(200);
  });

  it('cancel racing force: exactly one wins, and the xPU hears only the winner', async () => {
    const nodes = ['k1', 'k2', 'k3', 'k4'];
    const ids = await Promise.all(nodes.map((n) => announce(n)));
    await Promise.all(ids.map((id) => until(id, inNotice, 'in its notice phase')));
    const outcomes = await Promise.all(
      ids.map(async (id, i) => {
        // Alternate who fires first; both are in flight together.
        const [a, b] = i % 2 ? (['force', 'cancel'] as const) : (['cancel', 'force'] as const);
        const [ra, rb] = await Promise.all([control(id, a), control(id, b)]);
        return { id, node: nodes[i], [a]: ra, [b]: rb } as unknown as { id: string; node: string; cancel: any; force: any };
      }),
    );
    for (const o of outcomes) {
      const statuses = [o.cancel.status, o.force.status].sort();
      expect(statuses, o.id).toEqual([200, 409]);
      const loser = o.cancel.status === 409 ? o.cancel : o.force;
      expect(loser.json.error, o.id).toBe('PastNoticePhase');
      const agent = `${o.node}.dpu0`;
      if (o.cancel.status === 200) {
        const r = await until(o.id, (x) => x.status === 'cancelled', 'cancelled');
        expect(r.forced, o.id).not.toBe(true);
        await sleep(500);
        expect(count(agent, 'proceed-reboot'), o.id).toBe(0);
        expect(count(agent, 'cancel-reboot'), o.id).toBe(1);
      } else {
        const r = await until(o.id, (x) => x.status === 'completed', 'completed after the force');
        expect(r.forced, o.id).toBe(true);
        expect(count(agent, 'proceed-reboot'), o.id).toBe(1);
        expect(count(agent, 'cancel-reboot'), o.id).toBe(0);
      }
    }
  });

  it('five cancels (and five forces) at once: all 200, one command, one history entry', async () => {
    const [c, f] = await Promise.all([announce('k5'), announce('k6')]);
    await Promise.all([until(c, inNotice, 'in notice'), until(f, inNotice, 'in notice')]);
    const [cancels, forces] = await Promise.all([
      Promise.all(Array.from({ length: 5 }, (_, i) => control(c, 'cancel', OPERATOR_TOKEN, `operator ${i}`))),
      Promise.all(Array.from({ length: 5 }, (_, i) => control(f, 'force', OPERATOR_TOKEN, `operator ${i}`))),
    ]);
    expect(cancels.map((r) => r.status)).toEqual(Array(5).fill(200));
    expect(forces.map((r) => r.status)).toEqual(Array(5).fill(200));
    const cancelled = await until(c, (r) => r.status === 'cancelled', 'cancelled');
    await until(f, (r) => r.status === 'completed', 'completed');
    await sleep(500);
    expect(count('k5.dpu0', 'cancel-reboot')).toBe(1);
    expect(count('k6.dpu0', 'proceed-reboot')).toBe(1);
    expect(cancelled.history.filter((h: any) => h.phase === 'cancelled')).toHaveLength(1);
    expect((await get(f)).history.filter((h: any) => h.phase === 'forced')).toHaveLength(1);
  });

  it('cancel racing the reboot’s own end (its xPU goes down, or comes back): the answer agrees with what happened', async () => {
    const runs: Array<{ node: string; signal: 'xpu.down' | 'xpu.ready' }> = [
      { node: 'k7', signal: 'xpu.down' },
      { node: 'k1', signal: 'xpu.ready' },
      { node: 'k2', signal: 'xpu.down' },
      { node: 'k3', signal: 'xpu.ready' },
    ];
    await Promise.all(
      runs.map(async ({ node, signal }) => {
        const id = await announce(node);
        await until(id, inNotice, 'in notice');
        const cancelsBefore = count(`${node}.dpu0`, 'cancel-reboot');
        const [res] = await Promise.all([control(id, 'cancel'), post(node, `race-${id}`, signal, 'dpu0')]);
        expect([200, 409], `${node} ${signal}`).toContain(res.status);
        if (res.status === 200) {
          const r = await until(id, (x) => ENDED.has(x.status), 'ended');
          expect(r.status, `${node} ${signal}`).toBe('cancelled');
          expect(count(`${node}.dpu0`, 'cancel-reboot') - cancelsBefore).toBe(1);
          // The xPU went down before it heard the cancel: it comes back; whatever that outage is recorded as, it ends.
          if (signal === 'xpu.down') await post(node, `race-ready-${id}`, 'xpu.ready', 'dpu0');
        } else {
          expect(res.json.error).toBe('PastNoticePhase');
          // The outage goes on to its end; the reboot was never cancelled.
          if (signal === 'xpu.down') await post(node, `race-ready-${id}`, 'xpu.ready', 'dpu0');
          const r = await until(id, (x) => ENDED.has(x.status), 'ended');
          expect(r.status, `${node} ${signal}`).toBe('completed');
          expect(count(`${node}.dpu0`, 'cancel-reboot') - cancelsBefore).toBe(0);
        }
        // Whatever happened, nothing of the node is left in flight (no reboot queued or running behind it).
        await waitFor(`${node}: nothing in flight`, async () => (await rebootsOf(node)).every((r) => ENDED.has(r.status)), 20_000);
        expect(
          (await rebootsOf(node)).filter((r) => r.status === 'failed').map((r) => r.id),
          node,
        ).toEqual([]);
      }),
    );
  });

  it('cancel racing the deadline’s own timer: 200 means cancelled (never also forced), 409 means the watchdog’s reboot goes on', async () => {
    const offsets = [-800, -60, -20, 0, 20, 60, 150, 800];
    const nodes = ['k1', 'k2', 'k3', 'k4'];
    const outcomes: string[] = [];
    for (let round = 0; round < offsets.length / nodes.length; round++)
      await Promise.all(
        nodes.map(async (node, i) => {
          const offset = offsets[round * nodes.length + i];
          const before = new Set((await rebootsOf(node)).map((r) => r.id));
          await post(node, `dl-${node}-${round}`, 'xpu.reboot.pending', 'dpu0', { reason: 'deadline race', noticeSeconds: 2 });
          const r = await waitFor(`${node}: its reboot`, async () => (await rebootsOf(node)).find((x) => !before.has(x.id)));
          await sleep(Math.max(0, Date.parse(r.deadline) - Date.now() + offset));
          const res = await control(r.id, 'cancel');
          outcomes.push(`${offset}:${res.status}`);
          if (res.status === 200) {
            await sleep(1000);
            const after = await get(r.id);
            expect(after.status, `${r.id} ${offset}`).toBe('cancelled');
            expect(after.forced ?? false, `${r.id} ${offset}: cancelled and forced`).toBe(false);
            expect(after.history.map((h: any) => h.phase)).not.toContain('forced');
          } else {
            expect([res.status, res.json.error], `${r.id} ${offset}`).toEqual([409, 'PastNoticePhase']);
            await post(node, `dl-down-${r.id}`, 'xpu.down', 'dpu0');
            await post(node, `dl-ready-${r.id}`, 'xpu.ready', 'dpu0');
            const after = await until(r.id, (x) => ENDED.has(x.status), 'ended');
            // Never cancelled; forced when the deadline's timer saw it before the xPU's down did.
            expect(after.status, r.id).toBe('completed');
          }
        }),
      );
    // Well before the deadline a cancel is taken, well after it is refused.
    expect(outcomes).toContain('-800:200');
    expect(outcomes).toContain('800:409');
  });

  it('force while the xPU’s agent is away, and the xPU reboots by itself (only its ready is heard): the go it never took is withdrawn, not run after the boot', async () => {
    const id = await announce('nf');
    await until(id, inNotice, 'in notice');
    let release = () => {};
    gates.set('nf', new Promise<void>((r) => (release = r)));
    expect((await control(id, 'force')).status).toBe(200);
    await post('nf', `nf-ready-${id}`, 'xpu.ready', 'dpu0');
    // In recovery (the host restores PCIe): the agent comes back and is not told to reboot the xPU again.
    await until(id, (r) => r.history.some((h: any) => h.phase === 'recovering'), 'recovering');
    const polled = await api(url, '/v1/agents/nf.dpu0/commands?wait=0', { token: OPERATOR_TOKEN });
    release();
    expect(polled.json.map((c: any) => c.type)).not.toContain('proceed-reboot');
    const done = await until(id, (r) => r.status === 'completed', 'completed');
    expect(Object.values(done.commands).find((c: any) => c.type === 'proceed-reboot')).toMatchObject({ status: 'timed-out' });
  });

  it('force or cancel of a reboot already ended: 409 PastNoticePhase, and the reboot reads the same', async () => {
    const ended = (await listAll()).filter((r) => ['k1', 'k2', 'k5', 'k6'].includes(r.node) && ENDED.has(r.status));
    expect(ended.length).toBeGreaterThanOrEqual(4);
    for (const r of ended) {
      const before = await get(r.id);
      const [f, c] = await Promise.all([control(r.id, 'force'), control(r.id, 'cancel')]);
      // A cancel of a cancelled reboot, or a force of one the operator forced, is the idempotent repeat (200, docs/fleet-safety.md);
      // everything else is past its notice phase.
      if (before.status === 'cancelled') expect(c.status, r.id).toBe(200);
      else expect([c.status, c.json.error], r.id).toEqual([409, 'PastNoticePhase']);
      if (before.history.some((h: any) => h.phase === 'forced' && h.by === 'operator')) expect(f.status, r.id).toBe(200);
      else expect([f.status, f.json.error], r.id).toEqual([409, 'PastNoticePhase']);
      expect(await get(r.id)).toEqual(before);
    }
  });
});

// --- the queue ------------------------------------------------------------------------------------

describe('queued reboots wake oldest first', () => {
  it('in a rack of budget 1: each freed slot goes to the oldest queued reboot; a cancelled queued one is skipped', async () => {
    const q1 = await announce('q1');
    await until(q1, inNotice, 'in notice (holds the slot)');
    const queued: string[] = [];
    for (const n of ['q2', 'q3', 'q4', 'q5']) {
      const id = await announce(n);
      await until(id, (r) => r.status === 'queued', 'queued');
      queued.push(id);
      await sleep(50);
    }
    const [q2, q3, q4, q5] = queued;
    const status = async () => Promise.all(queued.map(async (id) => (await get(id)).status));
    // q1 ends (its xPU comes back) while an operator cancels q2, the oldest queued: q3 is next, not q4 or q5.
    await Promise.all([post('q1', 'q1-ready', 'xpu.ready', 'dpu0'), control(q2, 'cancel')]);
    await until(q1, (r) => r.status === 'completed', 'completed');
    await until(q3, (r) => r.status !== 'queued', 'next after q1');
    expect(await status()).toEqual(['cancelled', expect.not.stringMatching(/queued/), 'queued', 'queued']);
    await post('q3', 'q3-ready', 'xpu.ready', 'dpu0');
    await until(q4, (r) => r.status !== 'queued', 'next after q3');
    expect((await get(q5)).status).toBe('queued');
    // Force q5 out of the queue while q4 holds the slot: it counts beyond its budget, and says so.
    expect((await control(q5, 'force')).status).toBe(200);
    const q5r = await until(q5, (r) => r.status !== 'queued', 'forced out of the queue');
    expect(q5r.forced).toBe(true);
    await post('q4', 'q4-ready', 'xpu.ready', 'dpu0');
    await post('q5', 'q5-ready', 'xpu.ready', 'dpu0');
    await Promise.all([q4, q5].map((id) => until(id, (r) => r.status === 'completed', 'completed')));
    const history = (await get(q5)).history.map((h: any) => h.phase);
    expect(history).toContain('budget-exceeded');
  });
});

// --- budgets per failure domain -------------------------------------------------------------------

const byId = new Map(M_NODES.map((n) => [n.id, n]));
const domainsOf = (node: string) => {
  const n = byId.get(node)!;
  return [`rack:${n.rack}`, `zone:${n.zone}`, `tenant:${n.tenant}`, 'fleet:'];
};
const maxOf = (d: string) => MULTI[d.split(':')[0] as keyof typeof MULTI];
const inFlight = (r: any) => r.status !== 'queued' && !ENDED.has(r.status);

/**
 * Polls the API while `drive` runs and until every reboot of the multi-domain nodes ended: the nodes with a
 * reboot in flight (its notice to its end) never exceed a budget of theirs, nor does the fleet view's use.
 */
async function watchBudgets(drive: () => Promise<void>) {
  const violations: string[] = [];
  let peak = 0;
  let polling = true;
  const watcher = (async () => {
    while (polling) {
      const items = (await listAll()).filter((r) => byId.has(r.node));
      const unavailable = new Set(items.filter(inFlight).map((r) => r.node as string));
      const use = new Map<string, string[]>();
      for (const n of unavailable) for (const d of domainsOf(n)) use.set(d, [...(use.get(d) ?? []), n]);
      for (const [d, ns] of use)
        if (ns.length > maxOf(d))
          violations.push(
            `${d} had ${ns.join(',')} (max ${maxOf(d)}): ${items
              .filter((r) => ns.includes(r.node) && inFlight(r))
              .map((r) => `${r.id} ${r.node}.${r.xpu} ${r.status} ${r.mode}`)
              .join('; ')}`,
          );
      peak = Math.max(peak, unavailable.size);
      const fleet = (await api(url, '/v1/fleet', { token: OPERATOR_TOKEN })).json;
      for (const b of fleet.budgets ?? [])
        if (b.unavailable > b.maxUnavailable) violations.push(`fleet view: ${b.per} ${b.key} ${b.unavailable}/${b.maxUnavailable}`);
      await sleep(80);
    }
  })();
  try {
    await drive();
    // Every reboot of these nodes ends: the queue drains by itself.
    const all = await waitFor(
      'every reboot of the multi-domain nodes ended',
      async () => {
        const items = (await listAll()).filter((r) => byId.has(r.node));
        return items.every((r) => ENDED.has(r.status)) ? items : undefined;
      },
      180_000,
      500,
    );
    const exceeded: string[] = [];
    for (const r of all) if ((await get(r.id)).history.some((h: any) => h.phase === 'budget-exceeded')) exceeded.push(r.id);
    return { all, violations, peak, exceeded };
  } finally {
    polling = false;
    await watcher;
  }
}

describe('budgets per rack, zone, tenant and fleet, never exceeded at any instant', () => {
  it('random xPU announcements and host reboot requests across nine nodes in three racks, two zones and two tenants (seeded)', {
    timeout: 300_000,
  }, async () => {
    const xpus = M_NODES.flatMap((n) => n.xpus.map((x) => ({ node: n.id, xpu: x as string | null })));
    // A host reboot request of each node too: it is denied (budget, or its xPU rebooting) or runs its course.
    const targets = [...xpus, ...M_NODES.map((n) => ({ node: n.id, xpu: null as string | null }))];
    const seed = Number(process.env.FC_SEED ?? 8108);
    let run = 0;
    const hostEnds = new Set<string>();
    /** Drives the host reboot an event started (or joined) to its end, as the host and its xPUs would. */
    async function hostFlow(node: string, eventId: string) {
      const mine = (r: any) => r.kind === 'host' && r.history.some((h: any) => (h.detail ?? '').includes(eventId));
      const r = await waitFor(`${node}: the host reboot of ${eventId}`, async () => (await rebootsOf(node)).find(mine));
      const going = await until(r.id, (x) => x.status === 'rebooting' || ENDED.has(x.status), 'going or denied');
      if (ENDED.has(going.status)) return;
      await post(node, `${eventId}-down`, 'host.down', undefined);
      await post(node, `${eventId}-ready`, 'host.ready', undefined);
      for (const x of byId.get(node)!.xpus) await post(node, `${eventId}-${x}-ready`, 'xpu.ready', x);
    }
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ at: fc.integer({ min: 0, max: targets.length - 1 }), gapMs: fc.integer({ min: 0, max: 300 }) }), {
          minLength: 10,
          maxLength: 16,
        }),
        async (schedule) => {
          run++;
          const seen = new Set((await listAll()).map((r) => r.id));
          const hosts: Promise<void>[] = [];
          const { all, violations, peak, exceeded } = await watchBudgets(async () => {
            for (const [i, s] of schedule.entries()) {
              const { node, xpu } = targets[s.at];
              const id = `prop-${run}-${i}-${node}-${xpu ?? 'host'}`;
              const res = xpu
                ? await post(node, id, 'xpu.reboot.pending', xpu, { reason: `run ${run}` })
                : await post(node, id, 'host.reboot.requested', undefined, { method: 'shell' });
              expect(res.status).toBe(202);
              if (!xpu) hosts.push(hostFlow(node, id));
              await sleep(s.gapMs);
            }
            await Promise.all(hosts);
          });
          const failed = all
            .filter((r) => !seen.has(r.id) && r.status !== 'completed' && !(r.kind === 'host' && r.status === 'denied'))
            .map((r) => `${r.id} ${r.status}`);
          if (violations.length || failed.length || exceeded.length)
            throw new Error(`violations ${JSON.stringify(violations.slice(0, 5))} failed ${failed} exceeded ${exceeded}`);
          // The watcher saw nodes unavailable; how many at once depends on timing (a reboot may end before
          // the next is announced), so more than one is not required of a run.
          expect(peak).toBeGreaterThanOrEqual(1);
          for (const r of all) if (!seen.has(r.id) && r.kind === 'host') hostEnds.add(r.status);
        },
      ),
      { seed, numRuns: Number(process.env.FC_RUNS ?? 2), endOnFailure: true, verbose: true },
    );
    // Host reboots ran their course or were denied (which of the two depends on timing: an xPU rebooting
    // at that moment, a budget full), never anything else.
    expect(hostEnds.size).toBeGreaterThan(0);
    for (const end of hostEnds) expect(['completed', 'denied']).toContain(end);
  });

  it('a rollout over a zone with maxUnavailable 7 stays within every rack, zone, tenant and fleet budget by itself', {
    timeout: 300_000,
  }, async () => {
    let id = '';
    const { violations, peak, exceeded } = await watchBudgets(async () => {
      const res = await api(url, '/v1/rollouts', {
        token: OPERATOR_TOKEN,
        body: { selector: { zone: 'pz1' }, maxUnavailable: 7, reason: 'fw pz1' },
      });
      expect(res.status).toBe(201);
      id = res.json.id;
      expect(res.json.plan).toHaveLength(7);
      await untilRollout(id, 'completed', (r) => r.status === 'completed', 180_000);
    });
    expect(violations).toEqual([]);
    expect(exceeded).toEqual([]);
    expect(peak).toBeGreaterThan(1);
    const r = await rollout(id);
    expect(r.done).toHaveLength(7);
    // Held back by the rollout itself, not queued by the coordinator behind its own reboots.
    const queued = [];
    for (const d of r.done) if ((await get(d.rebootId)).history.some((h: any) => h.phase === 'queued')) queued.push(d.rebootId);
    expect(queued).toEqual([]);
  });
});

// --- rollouts -------------------------------------------------------------------------------------

const rollout = async (id: string) => (await api(url, `/v1/rollouts/${id}`, { token: OPERATOR_TOKEN })).json;
const untilRollout = (id: string, what: string, ok: (r: any) => boolean, ms = 60_000) =>
  waitFor(
    `rollout ${id}: ${what}`,
    async () => {
      const r = await rollout(id).catch(() => undefined);
      if (r && ok(r)) return r;
      throw new Error(JSON.stringify(r && { ...r, history: r.history?.slice(-6) }));
    },
    ms,
    100,
  );
const cli = (args: string[]) => rebootctl([...args, '--server', url, '--token', OPERATOR_TOKEN]);

describe('rollouts under operators and kill -9', () => {
  let paused: string;
  let cancelled: string;
  let killed: string;
  const bq: string[] = [];

  it('cancelled mid-wave through rebootctl: no further xPU is asked, the reboots under way finish, and the view adds up', async () => {
    for (const n of ['rc1', 'rc2', 'rc3', 'rc4']) rebootMs.set(`${n}.dpu0`, 1500);
    const started = await cli(['rollout', 'start', '--rack', 'rc', '--max-unavailable', '2', '--reason', 'fw rc', '--json']);
    expect(started.code, started.stderr).toBe(0);
    cancelled = JSON.parse(started.stdout).id;
    await untilRollout(cancelled, 'two in flight', (r) => r.pending.filter((p: any) => p.state !== 'pending').length === 2);
    const res = await cli(['rollout', 'cancel', cancelled, '--reason', 'bad image', '--json']);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout).status).toBe('cancelled');
    const again = await cli(['rollout', 'cancel', cancelled, '--json']);
    expect(again.code).not.toBe(0);
    expect(again.stderr + again.stdout).toMatch(/RolloutEnded|409/);
    const r = await untilRollout(
      cancelled,
      'nothing in flight',
      (x) => x.inFlight === 0 && x.pending.every((p: any) => p.state === 'pending'),
    );
    expect(r.status).toBe('cancelled');
    await sleep(2000);
    const asked = ['rc1', 'rc2', 'rc3', 'rc4'].filter((n) => count(`${n}.dpu0`, 'reboot-xpu') > 0);
    expect(asked).toEqual(['rc1', 'rc2']);
    expect(r.done.map((d: any) => d.node)).toEqual(['rc1', 'rc2']);
    expect(r.pending.map((d: any) => d.node)).toEqual(['rc3', 'rc4']);
    expect(r.failed).toEqual([]);
    for (const d of r.done) expect((await get(d.rebootId)).status).toBe('completed');
    const status = await cli(['rollout', 'status', cancelled]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('cancelled');
  });

  it('paused after a failed reboot, then cancelled: 200 once, 409 RolloutEnded after', async () => {
    const res = await api(url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { rack: 'rp' }, maxUnavailable: 1, reason: 'fw rp' },
    });
    expect(res.status).toBe(201);
    paused = res.json.id;
    const p = await untilRollout(paused, 'paused', (r) => r.status === 'paused', 60_000);
    expect(p.failed.map((f: any) => f.node)).toEqual(['rp1']);
    expect(count('rp2.dpu0', 'reboot-xpu')).toBe(0);
  });

  it('two operators start rollouts over the same xPUs: the second is 409 RolloutOverlap and stores nothing; after a cancel (which withdraws what was not delivered) it may start', async () => {
    const first = await api(url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { rack: 'rw' }, maxUnavailable: 2, reason: 'fw rw' },
    });
    expect(first.status).toBe(201);
    await untilRollout(first.json.id, 'both asked', (r) => r.pending.every((p: any) => p.state === 'sent'));
    const listed = (await api(url, '/v1/rollouts', { token: OPERATOR_TOKEN })).json;
    const second = await api(url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { node: 'rw2' }, maxUnavailable: 1, reason: 'again' },
    });
    expect([second.status, second.json.error]).toEqual([409, 'RolloutOverlap']);
    expect(second.json.message).toContain(first.json.id);
    expect((await api(url, '/v1/rollouts', { token: OPERATOR_TOKEN })).json).toEqual(listed);
    // A dry run still shows the plan.
    const dry = await api(url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { node: 'rw2' }, maxUnavailable: 1, reason: 'again', dryRun: true },
    });
    expect([dry.status, dry.json.plan]).toEqual([201, [{ node: 'rw2', xpu: 'dpu0' }]]);
    expect((await api(url, `/v1/rollouts/${first.json.id}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'wrong rack' } })).status).toBe(
      200,
    );
    const withdrawn = await untilRollout(first.json.id, 'withdrawn', (r) => r.inFlight === 0);
    expect(withdrawn.pending.map((p: any) => p.state)).toEqual(['pending', 'pending']);
    expect((await api(url, '/v1/agents/rw2.dpu0/commands?wait=0', { token: OPERATOR_TOKEN })).json).toEqual([]);
    const third = await api(url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { node: 'rw2' }, maxUnavailable: 1, reason: 'again' },
    });
    expect(third.status).toBe(201);
    expect((await api(url, `/v1/rollouts/${third.json.id}/cancel`, { token: OPERATOR_TOKEN, body: {} })).status).toBe(200);
  });

  it('kill -9 of the stack mid-wave, restarted with a raised budget: the rollout goes on without doubling or skipping, the paused one stays paused, the queue takes the new room', {
    timeout: 240_000,
  }, async () => {
    // A rack of budget 1 with two reboots queued behind the first.
    for (const n of ['bq1', 'bq2', 'bq3']) {
      const id = await announce(n);
      await until(id, (r) => (n === 'bq1' ? inNotice(r) : r.status === 'queued'), n === 'bq1' ? 'in notice' : 'queued');
      bq.push(id);
      await sleep(50);
    }
    for (const n of ['ro1', 'ro2', 'ro3', 'ro4']) rebootMs.set(`${n}.dpu0`, 2500);
    const res = await api(url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { rack: 'ro' }, maxUnavailable: 2, reason: 'fw ro' },
    });
    expect(res.status).toBe(201);
    killed = res.json.id;
    // Mid-wave: the first two done or going, the second wave asked.
    await untilRollout(
      killed,
      'the second wave under way',
      (r) => r.done.length >= 1 && r.pending.some((p: any) => p.state !== 'pending'),
      90_000,
    );
    await stack.stop('SIGKILL');
    writeInventory(dir, inventory(2));
    stack = await startStackProcess({ dataDir, nodesFile: join(dir, 'nodes.yaml'), env: { PORT: port } });
    url = stack.url;

    const done = await untilRollout(killed, 'completed after the restart', (r) => r.status === 'completed', 150_000);
    expect(done.done.map((d: any) => d.node)).toEqual(['ro1', 'ro2', 'ro3', 'ro4']);
    expect(done.failed).toEqual([]);
    for (const n of ['ro1', 'ro2', 'ro3', 'ro4']) {
      // One reboot-xpu each (command ids are stable across the restart) and one reboot each.
      expect(count(`${n}.dpu0`, 'reboot-xpu'), n).toBe(1);
      const rs = (await rebootsOf(n)).filter((r) => r.rolloutId === killed);
      expect(
        rs.map((r) => r.status),
        n,
      ).toEqual(['completed']);
    }
    // The paused rollout stayed paused through the restart and asked nobody.
    const p = await rollout(paused);
    expect(p.status).toBe('paused');
    expect(count('rp2.dpu0', 'reboot-xpu')).toBe(0);
    const c1 = await api(url, `/v1/rollouts/${paused}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'give up' } });
    expect([c1.status, c1.json.status]).toEqual([200, 'cancelled']);
    const c2 = await api(url, `/v1/rollouts/${paused}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'again' } });
    expect([c2.status, c2.json.error]).toEqual([409, 'RolloutEnded']);
    // The raised budget: the oldest queued (bq2) goes on, bq3 waits for the second slot's owner.
    await until(bq[1], (r) => r.status !== 'queued', 'goes on with the raised budget', 90_000);
    expect((await get(bq[2])).status).toBe('queued');
    await post('bq1', 'bq1-ready', 'xpu.ready', 'dpu0');
    await until(bq[2], (r) => r.status !== 'queued', 'goes on once bq1 ended', 30_000);
    await Promise.all([post('bq2', 'bq2-ready', 'xpu.ready', 'dpu0'), post('bq3', 'bq3-ready', 'xpu.ready', 'dpu0')]);
    await Promise.all(bq.map((id) => until(id, (r) => r.status === 'completed', 'completed')));
  });

  it('the compliance report (rebootctl report) agrees with the API: every reboot once, its status, forced and queue time; each rollout’s counts', async () => {
    const to = new Date(Date.now() + 60_000).toISOString();
    const out = join(dir, 'report.json');
    const res = await cli(['report', '--from', startedAt, '--to', to, '--format', 'json', '--out', out]);
    expect(res.code, res.stderr).toBe(0);
    const report = JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(out, 'utf8')));
    const all = await listAll();
    const rows = new Map<string, any>();
    for (const row of report.reboots) {
      expect(rows.has(row.id), `${row.id} twice`).toBe(false);
      rows.set(row.id, row);
    }
    const wrong: string[] = [];
    for (const r of all) {
      const row = rows.get(r.id);
      if (!row) {
        wrong.push(`${r.id} missing`);
        continue;
      }
      const full = await get(r.id);
      // A reboot still moving (a host reboot of an earlier test) may change between reads a moment apart.
      if (row.status !== full.status && ENDED.has(row.status)) wrong.push(`${r.id} status ${row.status} vs ${full.status}`);
      if (Boolean(row.forced) !== Boolean(full.forced)) wrong.push(`${r.id} forced ${row.forced} vs ${full.forced}`);
      const wasQueued = full.history.some((h: any) => h.phase === 'queued');
      if (wasQueued !== (row.budgetWaitSeconds !== null && row.budgetWaitSeconds !== undefined))
        wrong.push(`${r.id} queued ${wasQueued} but budgetWaitSeconds ${row.budgetWaitSeconds}`);
      const exceeded = full.history.some((h: any) => h.phase === 'budget-exceeded');
      const finding = (row.findings ?? []).some((f: any) => (f.code ?? f.type ?? f.id ?? f) === 'budget-exceeded');
      if (exceeded !== finding) wrong.push(`${r.id} budget-exceeded history ${exceeded} finding ${finding}`);
    }
    expect(wrong).toEqual([]);
    expect(rows.size).toBe(all.length);
    for (const id of [cancelled, paused, killed]) {
      const api_ = await rollout(id);
      const entry = report.rollouts.find((x: any) => x.id === id);
      expect(entry, id).toBeDefined();
      expect([entry.status, entry.done, entry.failed, entry.planned], id).toEqual([
        api_.status,
        api_.done.length,
        api_.failed.length,
        api_.plan.length,
      ]);
      expect(entry.rebootIds, id).toEqual(
        [...api_.done, ...api_.failed, ...api_.pending]
          .filter((x: any) => x.rebootId)
          .sort((a: any, b: any) => api_.plan.findIndex((p: any) => p.node === a.node) - api_.plan.findIndex((p: any) => p.node === b.node))
          .map((x: any) => x.rebootId),
      );
    }
    // The CSV of the same window has one row per reboot of the JSON, with the same statuses.
    const csv = await cli(['report', '--from', startedAt, '--to', to, '--format', 'csv']);
    expect(csv.code, csv.stderr).toBe(0);
    const [header, ...lines] = csv.stdout.trim().split('\n');
    const cols = header.split(',');
    expect(cols.slice(0, 9)).toEqual([
      'id',
      'kind',
      'node',
      'xpu',
      'status',
      'noticeSeconds',
      'extendedSeconds',
      'forced',
      'recoverySeconds',
    ]);
    const csvStatus = new Map(lines.map((l) => l.split(',')).map((c) => [c[0], c[cols.indexOf('status')]]));
    expect(csvStatus.size).toBe(rows.size);
    for (const [id, row] of rows) if (ENDED.has(row.status)) expect(csvStatus.get(id), id).toBe(row.status);
    // The fleet at a glance reads the same stack: every rack, the budgets, and nothing in flight.
    const status = await cli(['status']);
    expect(status.code, status.stderr).toBe(0);
    for (const rack of ['pr1', 'pr2', 'pr3', 'qa', 'bq']) expect(status.stdout).toContain(rack);
    writeFileSync(join(dir, 'report-checked'), 'ok');
  });
});
