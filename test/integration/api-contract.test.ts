// The HTTP contract's edges: who may call what, error shapes, pagination, and that a rejected request changes nothing.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { startStack, type Stack } from '../../local/stack.ts';
import { parseConfig } from '../../local/config.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { api, eventually, tempDir, waitFor } from '../support/stack.ts';

const OPERATOR = 'operator-token-contract';
const A = 'agent-token-node-a';
const B = 'agent-token-node-b';
const BMC_A = 'bmc-token-node-a';
const INVENTORY = `
nodes:
  - id: node-a
    trusted: true
    bmcToken: ${BMC_A}
    agentToken: ${A}
    xpus: [{ id: dpu0 }, { id: dpu1 }, { id: dpu2 }]
  - id: node-b
    trusted: false
    agentToken: ${B}
    xpus: [{ id: dpu0 }]
`;

let stack: Stack;
let ids: string[] = [];

async function snapshot() {
  const reboots = (await api(stack.url, '/v1/reboots?limit=1000', { token: OPERATOR })).json.items;
  const attrs = await stack.sqs.client.send(
    new GetQueueAttributesCommand({
      QueueUrl: stack.sqs.ingestQueueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return JSON.stringify({ reboots, attrs: attrs.Attributes });
}

beforeAll(async () => {
  const dir = tempDir('contract');
  writeFileSync(join(dir, 'nodes.yaml'), INVENTORY);
  stack = await startStack({
    config: parseConfig({ PORT: '0', DATA_DIR: join(dir, 'data'), NODES_FILE: join(dir, 'nodes.yaml'), OPERATOR_TOKEN: OPERATOR }),
    logger: silentLogger,
  });
  for (const x of ['dpu0', 'dpu1', 'dpu2']) {
    expect(
      (await api(stack.url, '/v1/events', { token: A, body: { id: `p-${x}`, type: 'xpu.reboot.pending', node: 'node-a', xpu: x } })).status,
    ).toBe(202);
    await waitFor(`reboot of ${x}`, async () =>
      (await api(stack.url, '/v1/reboots?node=node-a', { token: OPERATOR })).json.items.some(
        (r: any) => r.xpu === x && r.status === 'preparing',
      ),
    );
  }
  expect(
    (await api(stack.url, '/v1/events', { token: B, body: { id: 'p-b', type: 'xpu.reboot.pending', node: 'node-b', xpu: 'dpu0' } })).status,
  ).toBe(202);
  await waitFor(
    'reboot of node-b',
    async () => (await api(stack.url, '/v1/reboots?node=node-b', { token: OPERATOR })).json.items.length === 1,
  );
  ids = (await api(stack.url, '/v1/reboots?node=node-a', { token: OPERATOR })).json.items.map((r: any) => r.id);
});

afterAll(async () => {
  await stack?.close();
});

describe('HTTP contract', () => {
  it('answers health without a token and 401 without a valid one, in the error shape', async () => {
    expect((await api(stack.url, '/healthz')).json).toEqual({ ok: true });
    for (const token of [undefined, 'not-a-token']) {
      const res = await api(stack.url, '/v1/reboots', { token });
      expect(res.status).toBe(401);
      expect(res.json).toEqual({ error: 'Unauthorized', message: expect.any(String) });
    }
    const unknown = await api(stack.url, '/v1/nothing', { token: OPERATOR });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toBe('NotFound');
  });

  it('rejects bad native events with the contract codes and changes nothing', async () => {
    const before = await snapshot();
    const cases: Array<[number, string, unknown, string?]> = [
      [400, A, undefined, '{"id": '],
      [400, A, { id: 'x', type: 'xpu.melted', node: 'node-a', xpu: 'dpu0' }],
      [400, A, { type: 'xpu.ready', node: 'node-a', xpu: 'dpu0' }],
      [400, A, { id: 'x', type: 'xpu.ready', node: 'node-a' }],
      [400, A, { id: 'x', type: 'xpu.ready', node: 'node-a', xpu: 'dpu0', time: 'yesterday' }],
      [404, A, { id: 'x', type: 'xpu.ready', node: 'node-z', xpu: 'dpu0' }],
      [404, A, { id: 'x', type: 'xpu.ready', node: 'node-a', xpu: 'dpu9' }],
      [403, B, { id: 'x', type: 'xpu.ready', node: 'node-a', xpu: 'dpu0' }],
      [
        413,
        A,
        undefined,
        JSON.stringify({ id: 'x', type: 'xpu.ready', node: 'node-a', xpu: 'dpu0', data: { pad: 'x'.repeat(300 * 1024) } }),
      ],
    ];
    for (const [status, token, body, raw] of cases) {
      const res = await api(stack.url, '/v1/events', { token, body, raw });
      expect(res.status, JSON.stringify(body ?? raw?.slice(0, 40))).toBe(status);
      expect(typeof res.json.error).toBe('string');
      expect(typeof res.json.message).toBe('string');
    }
    expect(await snapshot()).toBe(before);
  });

  it('lists newest first with a working cursor, and scopes agents to their own node', async () => {
    const page1 = await api(stack.url, '/v1/reboots?node=node-a&limit=2', { token: OPERATOR });
    expect(page1.json.items).toHaveLength(2);
    expect(page1.json.next).toEqual(expect.any(String));
    const page2 = await api(stack.url, `/v1/reboots?node=node-a&limit=2&cursor=${encodeURIComponent(page1.json.next)}`, {
      token: OPERATOR,
    });
    expect(page2.json.items).toHaveLength(1);
    expect(page2.json.next).toBeNull();
    const all = [...page1.json.items, ...page2.json.items];
    expect(all.map((r: any) => r.xpu)).toEqual(['dpu2', 'dpu1', 'dpu0']);
    expect((await api(stack.url, '/v1/reboots?status=preparing&limit=10', { token: OPERATOR })).json.items).toHaveLength(4);
    expect((await api(stack.url, '/v1/reboots?status=bogus', { token: OPERATOR })).status).toBe(400);
    expect((await api(stack.url, '/v1/reboots?cursor=garbage', { token: OPERATOR })).status).toBe(400);
    const mine = await api(stack.url, '/v1/reboots', { token: B });
    expect(mine.json.items.map((r: any) => r.node)).toEqual(['node-b']);
    expect((await api(stack.url, '/v1/reboots?node=node-a', { token: B })).status).toBe(403);
    expect((await api(stack.url, '/v1/reboots', { token: BMC_A })).status).toBe(403);
    expect((await api(stack.url, `/v1/reboots/${ids[0]}`, { token: B })).status).toBe(403);
    expect((await api(stack.url, `/v1/reboots/${ids[0]}`, { token: A })).status).toBe(200);
    expect((await api(stack.url, '/v1/reboots/xr-doesnotexist', { token: OPERATOR })).status).toBe(404);
  });

  it('extension: 403 for another node or an untrusted host before any 409, and a grant trimmed to the cap', async () => {
    const before = await snapshot();
    expect((await api(stack.url, `/v1/reboots/${ids[0]}/extensions`, { token: B, body: { seconds: 60, reason: 'x' } })).status).toBe(403);
    expect((await api(stack.url, `/v1/reboots/${ids[0]}/extensions`, { token: OPERATOR, body: { seconds: 60, reason: 'x' } })).status).toBe(
      403,
    );
    expect((await api(stack.url, `/v1/reboots/${ids[0]}/extensions`, { token: A, body: { seconds: -5 } })).status).toBe(400);
    expect((await api(stack.url, '/v1/reboots/xr-doesnotexist/extensions', { token: A, body: { seconds: 5 } })).status).toBe(404);
    expect(await snapshot()).toBe(before);
    const bReboot = (await api(stack.url, '/v1/reboots', { token: B })).json.items[0];
    const beforeUntrusted = await snapshot();
    const untrusted = await api(stack.url, `/v1/reboots/${bReboot.id}/extensions`, { token: B, body: { seconds: 60, reason: 'please' } });
    expect(untrusted.status).toBe(403);
    expect(untrusted.json).toEqual({ error: 'Forbidden', message: expect.any(String) });
    // Only a 409 is counted on the reboot: a 403 changes nothing.
    expect(await snapshot()).toBe(beforeUntrusted);
    const trimmed = await api(stack.url, `/v1/reboots/${ids[0]}/extensions`, { token: A, body: { seconds: 99999, reason: 'big drain' } });
    expect(trimmed.status).toBe(200);
    expect(trimmed.json.granted).toBe(1800);
    expect(Date.parse(trimmed.json.deadline)).toBeGreaterThan(Date.now() + 1800_000);
    const none = await api(stack.url, `/v1/reboots/${ids[0]}/extensions`, { token: A, body: { seconds: 10, reason: 'more' } });
    expect(none.status).toBe(409);
    const r = (await api(stack.url, `/v1/reboots/${ids[0]}`, { token: A })).json;
    expect(r.status).toBe('extended');
    expect(r.extensions).toHaveLength(1);
    expect(r.history.map((h: any) => h.phase)).toEqual(expect.arrayContaining(['extended', 'extension-refused']));
  });

  it('agent routes: own node only, 404 for unknown agents and commands, repeated final results accepted once', async () => {
    expect((await api(stack.url, '/v1/agents/node-a/commands?wait=0', { token: B })).status).toBe(403);
    expect((await api(stack.url, '/v1/agents/node-a.dpu9/commands?wait=0', { token: A })).status).toBe(404);
    const badWait = await api(stack.url, '/v1/agents/node-a/commands?wait=abc', { token: A });
    expect([badWait.status, badWait.json?.error]).toEqual([400, 'ValidationError']);
    // Collected until all are there (the workflows may still be writing them when the test runs alone);
    // a delivered command is not handed out again for a while, so none is counted twice.
    const cmds: any[] = [];
    await eventually('the 6 host commands of node-a (2 per xPU reboot)', async () => {
      cmds.push(...(await api(stack.url, '/v1/agents/node-a/commands?wait=0', { token: A })).json);
      return cmds.length >= 6;
    });
    expect(cmds.length).toBe(6);
    for (const c of cmds) expect(Object.keys(c).sort()).toEqual(['args', 'deadline', 'id', 'node', 'rebootId', 'type', 'xpu']);
    // Delivered again only after the agent has been silent on it for a while, never in a busy loop.
    expect((await api(stack.url, '/v1/agents/node-a/commands?wait=0', { token: A })).json).toEqual([]);
    const id = cmds[0].id;
    expect((await api(stack.url, `/v1/agents/node-a/commands/${id}`, { token: A, body: { status: 'exploded' } })).status).toBe(400);
    expect((await api(stack.url, '/v1/agents/node-a/commands/nope', { token: A, body: { status: 'succeeded' } })).status).toBe(404);
    expect((await api(stack.url, `/v1/agents/node-a/commands/${id}`, { token: B, body: { status: 'succeeded' } })).status).toBe(403);
    expect((await api(stack.url, `/v1/agents/node-a/commands/${id}`, { token: A, body: { status: 'running' } })).status).toBe(200);
    const first = await api(stack.url, `/v1/agents/node-a/commands/${id}`, {
      token: A,
      body: { status: 'failed', output: 'drain script exit 3' },
    });
    const again = await api(stack.url, `/v1/agents/node-a/commands/${id}`, { token: A, body: { status: 'succeeded', output: 'late' } });
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    const r = (await api(stack.url, `/v1/reboots/${cmds[0].rebootId}`, { token: A })).json;
    expect(r.commands[id].status).toBe('failed');
    expect(r.history.filter((h: any) => h.phase.startsWith('command-') && h.detail.includes(cmds[0].type))).toHaveLength(1);
  });
});
