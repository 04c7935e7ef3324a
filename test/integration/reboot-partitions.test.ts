// Reboot listings without hot partitions, against the local stack: day-sharded fleet listing (newest first, cursor),
// a node's reboots through the node index, the report window, and a TTL on ended reboots only.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RETENTION_DAYS, DAY_SHARDS } from '../../lambdas/adapters/reboot-index.ts';
import type { StoredReboot } from '../../lambdas/core/reboot.ts';
import type { RebootStatus } from '../../lambdas/core/types.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { parseConfig } from '../../local/config.ts';
import { startStack, type Stack } from '../../local/stack.ts';
import { api, tempDir } from '../support/stack.ts';

const OPERATOR = 'operator-token-partitions';
let stack: Stack;
const all: StoredReboot[] = [];

function reboot(i: number): StoredReboot {
  // 40 reboots over 4 days and 3 nodes; every third has ended.
  const notifiedAt = new Date(Date.UTC(2026, 10, 1 + (i % 4), 3, i, 7)).toISOString();
  const ended = i % 3 === 0;
  const status: RebootStatus = ended ? 'completed' : 'preparing';
  return {
    id: `r-${String(i).padStart(3, '0')}`,
    kind: 'xpu',
    node: `node-${'abc'[i % 3]}`,
    xpu: 'dpu0',
    status,
    notifiedAt,
    deadline: notifiedAt,
    extensions: [],
    refusals: [],
    commands: {},
    history: [],
    version: 1,
    ...(ended ? { endedAt: notifiedAt } : {}),
  } as unknown as StoredReboot;
}

const newestFirst = (rs: StoredReboot[]) =>
  [...rs].sort((a, b) => (a.notifiedAt === b.notifiedAt ? (a.id < b.id ? 1 : -1) : a.notifiedAt < b.notifiedAt ? 1 : -1)).map((r) => r.id);

async function pages(query: string, limit: number): Promise<string[][]> {
  const out: string[][] = [];
  let cursor: string | null = null;
  do {
    const res = await api(stack.url, `/v1/reboots?limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ''}`, { token: OPERATOR });
    expect(res.status).toBe(200);
    out.push(res.json.items.map((r: { id: string }) => r.id));
    cursor = res.json.next;
  } while (cursor && out.length < 50);
  return out;
}

beforeAll(async () => {
  const dir = tempDir('partitions');
  const nodesFile = join(dir, 'nodes.yaml');
  writeFileSync(
    nodesFile,
    'nodes:\n' +
      ['a', 'b', 'c'].map((n) => `  - id: node-${n}\n    agentToken: agent-token-node-${n}\n    xpus: [{ id: dpu0 }]\n`).join(''),
  );
  stack = await startStack({
    config: parseConfig({ PORT: '0', DATA_DIR: join(dir, 'data'), NODES_FILE: nodesFile, OPERATOR_TOKEN: OPERATOR }),
    logger: silentLogger,
  });
  for (let i = 0; i < 40; i++) {
    all.push(reboot(i));
    expect(await stack.deps.store.createReboot(reboot(i))).toBe(true);
  }
}, 30_000);

afterAll(async () => {
  await stack?.close();
});

describe('GET /v1/reboots over day shards', () => {
  it('lists the fleet newest first across days and shards, page by page, each reboot once', async () => {
    const got = await pages('', 7);
    expect(got.slice(0, -1).every((p) => p.length === 7)).toBe(true);
    expect(got.flat()).toEqual(newestFirst(all));
  });

  it('filters by status across pages', async () => {
    expect((await pages('&status=completed', 4)).flat()).toEqual(newestFirst(all.filter((r) => r.status === 'completed')));
  });

  it("lists a node's reboots through the node index, also for the node's own agent", async () => {
    const expected = newestFirst(all.filter((r) => r.node === 'node-b'));
    expect((await pages('&node=node-b', 5)).flat()).toEqual(expected);
    const own = await api(stack.url, '/v1/reboots', { token: 'agent-token-node-b' });
    expect(own.json.items.map((r: { id: string }) => r.id)).toEqual(expected);
  });

  it('a cursor that is not ours is 400', async () => {
    expect((await api(stack.url, '/v1/reboots?cursor=bm9wZQ', { token: OPERATOR })).status).toBe(400);
  });
});

describe('reports and retention', () => {
  it('finds the reboots notified in a window, oldest first', async () => {
    const from = new Date(Date.UTC(2026, 10, 2));
    const to = new Date(Date.UTC(2026, 10, 3, 3, 20));
    const got = (await stack.deps.store.rebootsNotifiedBetween(from, to)).map((r) => r.id);
    const expected = all
      .filter((r) => r.notifiedAt >= from.toISOString() && r.notifiedAt < to.toISOString())
      .sort((a, b) => (a.notifiedAt < b.notifiedAt ? -1 : 1))
      .map((r) => r.id);
    expect(expected.length).toBeGreaterThan(5);
    expect(got).toEqual(expected);
  });

  it('spreads a day over its shards and sets a TTL only once a reboot ended', async () => {
    const doc = DynamoDBDocumentClient.from(stack.dynamo.client);
    const item = async (id: string) =>
      (await doc.send(new GetCommand({ TableName: stack.dynamo.table, Key: { pk: `R#${id}`, sk: 'R' } }))).Item!;
    const ended = await item('r-003');
    expect(ended.ttl).toBe(Math.floor(Date.parse(all[3].notifiedAt) / 1000) + DEFAULT_RETENTION_DAYS * 86400);
    expect(ended.gsi2pk).toBe('NODE#node-a');
    expect((await item('r-001')).ttl).toBeUndefined();
    const shards = new Set<string>();
    for (const r of all) shards.add((await item(r.id)).gsi1pk);
    expect([...shards].every((pk) => /^REBOOTS#2026-11-0[1-4]#[0-9]+$/.test(pk))).toBe(true);
    expect(shards.size).toBeGreaterThan(4);
    expect(shards.size).toBeLessThanOrEqual(4 * DAY_SHARDS);
    // The API does not show index attributes.
    const shown = (await api(stack.url, '/v1/reboots/r-003', { token: OPERATOR })).json;
    expect(shown).not.toHaveProperty('ttl');
    expect(shown).not.toHaveProperty('gsi2pk');
  });
});
