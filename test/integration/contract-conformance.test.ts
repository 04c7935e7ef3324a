// Contract section 3 route by route: the error shape and status of every route family, the one body limit
// (413 over 256 KiB everywhere), that a rejected request changes nothing, and the public shape of a reboot.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRebootId } from '../../lambdas/core/ids.ts';
import { newXpuReboot } from '../../lambdas/core/reboot.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { parseConfig } from '../../local/config.ts';
import { type Stack, startStack } from '../../local/stack.ts';
import { api, tempDir, waitFor } from '../support/stack.ts';

const OPERATOR = 'operator-token-conformance';
const AGENT = 'agent-token-conf-a';
const BMC = 'bmc-token-conf-a';
const INVENTORY = `
nodes:
  - id: node-a
    rack: r1
    zone: z1
    tenant: t1
    trusted: true
    redfishSystem: /redfish/v1/Systems/system
    bmcToken: ${BMC}
    agentToken: ${AGENT}
    xpus: [{ id: dpu0, redfishSystem: /redfish/v1/Systems/Bluefield }]
`;

let stack: Stack;
let rebootId: string;

/** Everything a rejected request must leave as it was: reboots (with history), holds, rollouts. */
async function snapshot(): Promise<string> {
  const [reboots, holds, rollouts] = await Promise.all(
    ['/v1/reboots?limit=1000', '/v1/holds', '/v1/rollouts'].map(async (p) => (await api(stack.url, p, { token: OPERATOR })).json),
  );
  return JSON.stringify({ reboots, holds, rollouts });
}

beforeAll(async () => {
  const dir = tempDir('conformance');
  writeFileSync(join(dir, 'nodes.yaml'), INVENTORY);
  stack = await startStack({
    config: parseConfig({ PORT: '0', DATA_DIR: join(dir, 'data'), NODES_FILE: join(dir, 'nodes.yaml'), OPERATOR_TOKEN: OPERATOR }),
    logger: silentLogger,
  });
  const posted = await api(stack.url, '/v1/events', {
    token: AGENT,
    body: { id: 'conf-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0', data: { reason: 'firmware' } },
  });
  expect(posted.status).toBe(202);
  rebootId = await waitFor('the reboot in its notice phase', async () => {
    const r = (await api(stack.url, '/v1/reboots?node=node-a', { token: OPERATOR })).json.items[0];
    return r?.status === 'preparing' ? (r.id as string) : undefined;
  });
});

afterAll(async () => {
  await stack?.close();
});

/** Every authenticated route of the contract (sections 3 and 7), with a body where it takes one. */
function routes(): Array<[string, string, unknown?]> {
  const r = rebootId;
  return [
    ['POST', '/v1/events/redfish', { Events: [] }],
    ['POST', '/v1/events', { id: 'x', type: 'xpu.ready', node: 'node-a', xpu: 'dpu0' }],
    ['GET', '/v1/reboots'],
    ['GET', `/v1/reboots/${r}`],
    ['POST', `/v1/reboots/${r}/extensions`, { seconds: 10, reason: 'x' }],
    ['POST', `/v1/reboots/${r}/cancel`, { reason: 'x' }],
    ['POST', `/v1/reboots/${r}/force`, { reason: 'x' }],
    ['GET', '/v1/agents/node-a/commands?wait=0'],
    ['POST', '/v1/agents/node-a/commands/some-command', { status: 'succeeded', output: '' }],
    ['GET', '/v1/reports/compliance?from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z'],
    ['GET', '/v1/nodes/node-a'],
    ['POST', '/v1/holds', { selector: { node: 'node-a' }, reason: 'x' }],
    ['GET', '/v1/holds'],
    ['DELETE', '/v1/holds/hold-x'],
    ['POST', '/v1/rollouts', { selector: { node: 'node-a' }, maxUnavailable: 1, reason: 'x' }],
    ['GET', '/v1/rollouts/ro-x'],
    ['POST', '/v1/rollouts/ro-x/cancel', { reason: 'x' }],
  ];
}

describe('contract section 3, route by route', () => {
  it('every authenticated route answers 401 {"error","message"} without a token or with an unknown one, and changes nothing', async () => {
    const before = await snapshot();
    for (const [method, path, body] of routes())
      for (const token of [undefined, 'not-a-known-token']) {
        const res = await api(stack.url, path, { method, token, body });
        expect(res.status, `${method} ${path} with token ${token}`).toBe(401);
        expect(res.json, `${method} ${path}`).toEqual({ error: 'Unauthorized', message: expect.any(String) });
      }
    expect(await snapshot()).toBe(before);
  });

  it('every route that takes a body answers 413 over 256 KiB, in the error shape, and changes nothing', async () => {
    const before = await snapshot();
    const tokens: Record<string, string> = {
      '/v1/events/redfish': BMC,
      '/v1/events': AGENT,
      [`/v1/reboots/${rebootId}/extensions`]: AGENT,
      '/v1/agents/node-a/commands/some-command': AGENT,
    };
    for (const [method, path, body] of routes()) {
      if (body === undefined) continue;
      const raw = JSON.stringify({ ...(body as object), pad: 'x'.repeat(256 * 1024) });
      const res = await api(stack.url, path, { method, token: tokens[path] ?? OPERATOR, raw });
      expect(res.status, `${method} ${path}`).toBe(413);
      expect(res.json, `${method} ${path}`).toEqual({ error: expect.any(String), message: expect.any(String) });
    }
    // Under the limit a body is read and judged on its content (400 here), never refused for its size.
    const big = await api(stack.url, '/v1/rollouts', {
      token: OPERATOR,
      raw: JSON.stringify({ selector: { node: 'node-a' }, maxUnavailable: 1, reason: 'x', pad: 'x'.repeat(100 * 1024) }),
    });
    expect(big.status).toBe(400);
    expect(await snapshot()).toBe(before);
  });

  it('a token of the node on a route that is not its own is 403 {"error","message"} and changes nothing', async () => {
    const before = await snapshot();
    const cases: Array<[string, string, string, unknown?]> = [
      [AGENT, 'POST', '/v1/events/redfish', { Events: [] }],
      [OPERATOR, 'POST', '/v1/events/redfish', { Events: [] }],
      [BMC, 'GET', '/v1/reboots'],
      [BMC, 'GET', `/v1/reboots/${rebootId}`],
      [BMC, 'POST', `/v1/reboots/${rebootId}/extensions`, { seconds: 10, reason: 'x' }],
      [OPERATOR, 'POST', `/v1/reboots/${rebootId}/extensions`, { seconds: 10, reason: 'x' }],
      [BMC, 'GET', '/v1/agents/node-a/commands?wait=0'],
      [AGENT, 'GET', '/v1/reports/compliance?from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z'],
      [BMC, 'GET', '/v1/nodes/node-a'],
      [AGENT, 'POST', '/v1/holds', { selector: { node: 'node-a' }, reason: 'x' }],
      [AGENT, 'GET', '/v1/holds'],
      [AGENT, 'POST', `/v1/reboots/${rebootId}/force`, { reason: 'x' }],
      [AGENT, 'POST', '/v1/rollouts', { selector: { node: 'node-a' }, maxUnavailable: 1, reason: 'x' }],
    ];
    for (const [token, method, path, body] of cases) {
      const res = await api(stack.url, path, { method, token, body });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.json, `${method} ${path}`).toEqual({ error: expect.any(String), message: expect.any(String) });
    }
    expect(await snapshot()).toBe(before);
  });

  it('GET /v1/reboots takes any limit from 1 (a larger one answers at most a page), and 400 below 1', async () => {
    const big = await api(stack.url, '/v1/reboots?limit=5000', { token: OPERATOR });
    expect(big.status).toBe(200);
    expect(big.json).toEqual({ items: [expect.objectContaining({ id: rebootId })], next: null });
    for (const bad of ['0', '-1', 'ten', '1.5']) {
      const res = await api(stack.url, `/v1/reboots?limit=${bad}`, { token: OPERATOR });
      expect(res.status, bad).toBe(400);
      expect(res.json).toEqual({ error: expect.any(String), message: expect.any(String) });
    }
  });

  it('a long poll asking for more than 30 s is answered (capped), not refused; a negative wait is 400', async () => {
    const cmds = await api(stack.url, '/v1/agents/node-a/commands?wait=60', { token: AGENT });
    expect(cmds.status).toBe(200);
    expect(cmds.json.map((c: { type: string }) => c.type).sort()).toEqual(['migrate-workloads', 'protect-pcie']);
    expect((await api(stack.url, '/v1/agents/node-a/commands?wait=-1', { token: AGENT })).status).toBe(400);
  });

  it('GET /v1/reboots/{id} has the contract fields, history entries say who, and no internals', async () => {
    const r = (await api(stack.url, `/v1/reboots/${rebootId}`, { token: AGENT })).json;
    for (const key of ['id', 'kind', 'node', 'xpu', 'status', 'deadline', 'extensions', 'history']) expect(r).toHaveProperty(key);
    expect(r).toMatchObject({ id: rebootId, kind: 'xpu', node: 'node-a', xpu: 'dpu0', status: 'preparing' });
    expect(Number.isFinite(Date.parse(r.deadline))).toBe(true);
    expect(r.history.length).toBeGreaterThan(0);
    for (const h of r.history) {
      expect(Object.keys(h)).toEqual(expect.arrayContaining(['at', 'phase', 'detail', 'by']));
      expect(h.by).toMatch(/^(bmc:node-a|agent:node-a(\.dpu0)?|operator|coordinator)$/);
    }
    expect(r.history[0].by).toBe('agent:node-a.dpu0');
    expect(r).not.toHaveProperty('waiter');
    expect(JSON.stringify(r)).not.toMatch(/taskToken|"token"/);
  });

  it('GET /v1/reboots answers 100 by default, newest first, and the cursor goes on from there', async () => {
    // Past reboots of the node, written straight to the store (a listing only reads them).
    const node = (await stack.deps.inventory()).node('node-a')!;
    const base = Date.parse('2020-01-01T00:00:00Z');
    for (let i = 0; i < 101; i++) {
      const at = new Date(base + i * 60_000);
      const ev = { id: `old-${i}`, type: 'xpu.reboot.pending' as const, node: 'node-a', xpu: 'dpu0', time: at.toISOString() };
      const r = newXpuReboot(
        newRebootId('xpu', at),
        node,
        'dpu0',
        { ...ev, source: 'native', dedupKey: `k-${i}`, receivedAt: ev.time },
        'planned',
      );
      Object.assign(r, { status: 'completed', endedAt: at.toISOString() });
      expect(await stack.deps.store.createReboot(r)).toBe(true);
    }
    const first = await api(stack.url, '/v1/reboots?node=node-a', { token: OPERATOR });
    expect(first.json.items).toHaveLength(100);
    expect(first.json.items[0].id).toBe(rebootId);
    expect(first.json.next).toEqual(expect.any(String));
    const rest = await api(stack.url, `/v1/reboots?node=node-a&cursor=${encodeURIComponent(first.json.next)}`, { token: OPERATOR });
    expect(rest.json.items).toHaveLength(2);
    expect(rest.json.next).toBeNull();
    const ids = [...first.json.items, ...rest.json.items].map((r: { id: string }) => r.id);
    expect(new Set(ids).size).toBe(102);
    const times = [...first.json.items, ...rest.json.items].map((r: { notifiedAt: string }) => Date.parse(r.notifiedAt));
    expect(times).toEqual([...times].sort((a, b) => b - a));
  });
});
