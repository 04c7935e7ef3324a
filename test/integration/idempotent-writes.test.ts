// Retries and repeats against the real stack (node local/main.ts): writes act once, items stay small, ids never repeat.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, OPERATOR_TOKEN, startStackProcess, tempDir, waitFor, writeInventory, type RunningStack } from '../support/stack.ts';

const A = 'agent-token-node-a';
const B = 'agent-token-node-b';
const INVENTORY = `
policy:
  xpuReboot:
    noticeSeconds: 3600
    maxExtensionSeconds: 1800
    maxExtensions: 3
nodes:
  - id: node-a
    trusted: true
    agentToken: ${A}
    xpus: [{ id: dpu0 }, { id: dpu1 }, { id: dpu2 }]
  - id: node-b
    trusted: true
    agentToken: ${B}
    policy:
      xpuReboot:
        maxExtensions: 0
    xpus: [{ id: dpu0 }]
`;

let dir: string;
let nodesFile: string;
let stack: RunningStack;
const T_START = new Date(Date.now() - 60_000).toISOString();

async function announce(node: string, token: string, xpu: string, id: string): Promise<any> {
  expect((await api(stack.url, '/v1/events', { token, body: { id, type: 'xpu.reboot.pending', node, xpu } })).status).toBe(202);
  return waitFor(`reboot of ${node}/${xpu} preparing`, async () =>
    (await api(stack.url, `/v1/reboots?node=${node}`, { token: OPERATOR_TOKEN })).json.items.find(
      (r: any) => r.xpu === xpu && r.status === 'preparing',
    ),
  );
}

async function commandsOf(agent: string, token: string, count: number): Promise<any[]> {
  const seen = new Map<string, any>();
  await waitFor(`${count} commands for ${agent}`, async () => {
    for (const c of (await api(stack.url, `/v1/agents/${agent}/commands?wait=1`, { token })).json ?? []) seen.set(c.id, c);
    return seen.size >= count;
  });
  return [...seen.values()];
}

async function extend(id: string, token: string, seconds: number, reason: string, key?: string) {
  const res = await fetch(`${stack.url}/v1/reboots/${id}/extensions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify({ seconds, reason }),
  });
  return { status: res.status, json: (await res.json()) as any };
}

beforeAll(async () => {
  dir = tempDir('idem');
  nodesFile = writeInventory(dir, INVENTORY);
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile });
});

afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('idempotent writes on the real stack', () => {
  it('a result retried after a lost response is answered as a duplicate, recorded once, and the step goes on', async () => {
    const r = await announce('node-a', A, 'dpu0', 'res-1');
    const cmds = (await commandsOf('node-a', A, 2)).filter((c) => c.rebootId === r.id);
    for (const c of cmds) {
      const path = `/v1/agents/node-a/commands/${c.id}`;
      expect((await api(stack.url, path, { token: A, body: { status: 'succeeded' } })).json).toEqual({ id: c.id, status: 'succeeded' });
      // The response was lost: the agent sends the same result again.
      expect((await api(stack.url, path, { token: A, body: { status: 'succeeded' } })).json).toEqual({
        id: c.id,
        status: 'succeeded',
        duplicate: true,
      });
    }
    const go = await commandsOf('node-a.dpu0', A, 1);
    expect(go.map((c) => c.type)).toEqual(['proceed-reboot']);
    const after = (await api(stack.url, `/v1/reboots/${r.id}`, { token: A })).json;
    expect(after.history.filter((e: any) => e.phase === 'command-succeeded')).toHaveLength(2);
  });

  it('an extension retried with the same Idempotency-Key after a lost response grants once', async () => {
    const r = await announce('node-a', A, 'dpu1', 'ext-1');
    const tries = await Promise.all(Array.from({ length: 6 }, () => extend(r.id, A, 300, 'drain', 'f81d4fae-7dec')));
    const late = await extend(r.id, A, 300, 'drain', 'f81d4fae-7dec');
    for (const t of [...tries, late])
      expect(t).toEqual({ status: 200, json: { granted: 300, deadline: new Date(Date.parse(r.deadline) + 300_000).toISOString() } });
    const after = (await api(stack.url, `/v1/reboots/${r.id}`, { token: A })).json;
    expect(after.extensions).toHaveLength(1);
    expect(after.deadline).toBe(tries[0].json.deadline);
  });

  it('300 refused extensions with 1,000-character reasons keep the reboot under 64 KiB, and the report counts all 300', async () => {
    const r = await announce('node-b', B, 'dpu0', 'big-1');
    const reason = 'r'.repeat(1000);
    for (let i = 0; i < 300; i++) expect((await extend(r.id, B, 60, reason)).status).toBe(409);
    // A refusal with a key, repeated, counts once more only.
    for (let i = 0; i < 3; i++) expect((await extend(r.id, B, 60, reason, 'one-more')).json.error).toBe('MaxExtensions');
    const res = await api(stack.url, `/v1/reboots/${r.id}`, { token: B });
    expect(Buffer.byteLength(res.text)).toBeLessThan(64 * 1024);
    expect(res.json.refusalCount).toBe(301);
    expect(res.json.refusals).toHaveLength(20);
    const report = await api(
      stack.url,
      `/v1/reports/compliance?from=${T_START}&to=${new Date(Date.now() + 60_000).toISOString()}&format=json`,
      { token: OPERATOR_TOKEN },
    );
    const row = report.json.reboots.find((x: any) => x.id === r.id);
    expect(row).toMatchObject({ extensionsRefused: 301, extensionsRequested: 301, extensionSecondsRequested: 301 * 60 });
  });

  it('a wiped DATA_DIR issues reboot and command ids the agent never saw', async () => {
    const before = await announce('node-a', A, 'dpu2', 'same-event');
    const seen = (await commandsOf('node-a', A, 2)).filter((c) => c.rebootId === before.id).map((c) => c.id);
    expect(seen.length).toBe(2);
    await stack.stop();
    rmSync(join(dir, 'data'), { recursive: true, force: true });
    stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile });
    // The same BMC event again, as the first coordinator saw it.
    const after = await announce('node-a', A, 'dpu2', 'same-event');
    expect(after.id).not.toBe(before.id);
    const fresh = (await commandsOf('node-a', A, 2)).map((c) => c.id);
    expect(fresh.map((id) => id.split('.')[1]).sort()).toEqual(['migrate-workloads', 'protect-pcie']);
    expect(fresh.filter((id) => seen.includes(id))).toEqual([]);
    expect(after.id > before.id).toBe(true); // time-ordered
  });
});
