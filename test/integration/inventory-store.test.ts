// The inventory as items (one per node, one per token hash): a batched push to dynalite, stale items removed on re-push,
// and what the AWS functions read: single items behind a short cache, every node only for the operator.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QueryCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushInventory } from '../../cli/commands/inventory.ts';
import { CachedInventory, DynamoInventory, INVENTORY_SHARDS, InventoryMissing } from '../../lambdas/adapters/dynamo-inventory.ts';
import { hashToken } from '../../lambdas/core/inventory.ts';
import { createAuthorizer, NOBODY } from '../../lambdas/handlers/authorizer.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { startLocalDynamo, type LocalDynamo } from '../../local/dynamo.ts';
import { fleetAgentToken, fleetBmcToken, fleetInventory, fleetNodeId } from '../../scripts/gen-inventory.ts';
import { tempDir } from '../support/stack.ts';

const OPERATOR = 'operator-token-inventory-test';
let dynamo: LocalDynamo;
let dir: string;

async function countItems(prefix: string, shards: string[]): Promise<number> {
  let n = 0;
  for (const s of shards) {
    let start: Record<string, never> | undefined;
    do {
      const res = await dynamo.client.send(
        new QueryCommand({
          TableName: dynamo.table,
          KeyConditionExpression: 'pk = :p',
          ExpressionAttributeValues: { ':p': { S: `${prefix}${s}` } },
          Select: 'COUNT',
          ExclusiveStartKey: start,
        }),
      );
      n += res.Count ?? 0;
      start = res.LastEvaluatedKey as never;
    } while (start);
  }
  return n;
}
const nodeShards = [...Array(INVENTORY_SHARDS).keys()].map(String);
const tokenShards = [...'0123456789abcdef'];

beforeAll(async () => {
  dir = tempDir('inventory-store');
  dynamo = await startLocalDynamo({ dataDir: join(dir, 'dynamodb') });
}, 30_000);
afterAll(async () => {
  await dynamo?.close();
});

describe('inventory push', () => {
  it('writes one item per node and per token hash, no plain token, and removes what a later push dropped', async () => {
    const file = join(dir, 'fleet.json');
    writeFileSync(file, JSON.stringify(fleetInventory(300)));
    const first = await pushInventory({
      table: dynamo.table,
      nodesFile: file,
      operatorToken: OPERATOR,
      endpoint: dynamo.url,
      concurrency: 4,
    });
    expect(first).toMatchObject({ nodes: 300, tokens: 600, deleted: 0 });
    // 900 items in 25s: 36 calls at least (more only when dynalite left items unprocessed).
    expect(first.calls).toBeGreaterThanOrEqual(36);
    expect(await countItems('INV#NODES#', nodeShards)).toBe(300);
    expect(await countItems('INV#TOKENS#', tokenShards)).toBe(600);

    const store = new DynamoInventory(dynamo.client, dynamo.table);
    const node = await store.node(fleetNodeId(299));
    expect(node).toMatchObject({ id: 'n00299', xpus: [{ id: 'dpu0' }, { id: 'dpu1' }] });
    expect(node!.agentToken).toBe(`sha256:${hashToken(fleetAgentToken('n00299'))}`);
    expect(JSON.stringify(await store.allNodes())).not.toContain('agent-token-');
    expect(await store.tokenOwner(hashToken(fleetBmcToken('n00007')))).toEqual({ node: 'n00007', kind: 'bmc' });
    expect((await store.meta())?.operatorTokenHash).toBe(hashToken(OPERATOR));

    writeFileSync(file, JSON.stringify(fleetInventory(200)));
    const second = await pushInventory({ table: dynamo.table, nodesFile: file, operatorToken: OPERATOR, endpoint: dynamo.url });
    expect(second).toMatchObject({ nodes: 200, tokens: 400, deleted: 300 });
    expect(await countItems('INV#NODES#', nodeShards)).toBe(200);
    expect(await store.node(fleetNodeId(250))).toBeUndefined();
    expect(await store.tokenOwner(hashToken(fleetAgentToken('n00250')))).toBeUndefined();
  }, 60_000);
});

describe('what the functions read', () => {
  it('a token reads its node only; the operator and hint-less callers read every node; reads are cached', async () => {
    const store = new DynamoInventory(dynamo.client, dynamo.table);
    const reads: string[] = [];
    const counting = {
      meta: () => {
        reads.push('meta');
        return store.meta();
      },
      node: (id: string) => {
        reads.push(`node:${id}`);
        return store.node(id);
      },
      tokenOwner: (h: string) => {
        reads.push('token');
        return store.tokenOwner(h);
      },
      allNodes: () => {
        reads.push('all');
        return store.allNodes();
      },
    };
    let now = 0;
    const inv = new CachedInventory(counting, 60_000, () => now);
    const agent = await inv.index({ tokenHash: hashToken(fleetAgentToken('n00042')) });
    expect(agent.inventory.nodes.map((n) => n.id)).toEqual(['n00042']);
    expect(agent.nodeByAgentTokenHash(hashToken(fleetAgentToken('n00042')))?.id).toBe('n00042');
    expect(reads).toEqual(['meta', 'token', 'node:n00042']);
    await inv.index({ tokenHash: hashToken(fleetAgentToken('n00042')), nodes: ['n00043'] });
    expect(reads).toEqual(['meta', 'token', 'node:n00042', 'node:n00043']);
    now += 61_000;
    await inv.index({ nodes: ['n00042'] });
    expect(reads.slice(4)).toEqual(['meta', 'node:n00042']);
    expect((await inv.index({ tokenHash: hashToken(OPERATOR) })).inventory.nodes).toHaveLength(200);
    expect((await inv.index()).inventory.nodes).toHaveLength(200);
    expect(reads.filter((r) => r === 'all')).toHaveLength(1);
  });

  it('no inventory pushed yet is InventoryMissing', async () => {
    const inv = new CachedInventory(
      { meta: async () => undefined, node: async () => undefined, tokenOwner: async () => undefined, allNodes: async () => [] },
      1000,
    );
    await expect(inv.index()).rejects.toBeInstanceOf(InventoryMissing);
  });
});

describe('authorizer', () => {
  const inv = () => new CachedInventory(new DynamoInventory(dynamo.client, dynamo.table), 60_000);

  it('allows a known token, refuses an unknown or missing one', async () => {
    const authorize = createAuthorizer({ inventory: (h) => inv().index(h), logger: silentLogger });
    await expect(authorize({ headers: { authorization: `Bearer ${fleetAgentToken('n00001')}` } })).resolves.toMatchObject({
      isAuthorized: true,
      context: { principal: 'agent', node: 'n00001', agent: '' },
    });
    await expect(authorize({ queryStringParameters: { access_token: fleetBmcToken('n00002') } })).resolves.toMatchObject({
      isAuthorized: true,
      context: { principal: 'bmc' },
    });
    // Unknown or missing: through as nobody, so the API answers 401 in the contract's shape (not API Gateway's 403).
    await expect(authorize({ headers: { authorization: 'Bearer not-a-known-token' } })).resolves.toEqual(NOBODY);
    await expect(authorize({ headers: {} })).resolves.toEqual(NOBODY);
  });

  it('a throttled or timed-out table is an error (API Gateway: 500, retried), never a refusal (403, fatal for agents)', async () => {
    const throttled = Object.assign(new Error('Rate of requests exceeds the allowed throughput'), { name: 'ThrottlingException' });
    const authorize = createAuthorizer({ inventory: async () => Promise.reject(throttled), logger: silentLogger });
    await expect(authorize({ headers: { authorization: `Bearer ${fleetAgentToken('n00001')}` } })).rejects.toMatchObject({
      name: 'AuthorizerUnavailable',
    });
  });
});
