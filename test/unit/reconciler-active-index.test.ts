// The reconciler reads the reboots not ended from a sparse index (gsi3), a few Queries however long the
// fleet's history, instead of the day-sharded fleet listing once per active status. Against dynalite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { parseInventory } from '../../lambdas/core/inventory.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { DynamoRebootStore } from '../../lambdas/adapters/dynamo-store.ts';
import { GSI1_ATTRIBUTES, GSI2_ATTRIBUTES } from '../../lambdas/adapters/table-schema.ts';
import { silentLogger, type Deps } from '../../lambdas/handlers/deps.ts';
import { createReconciler } from '../../lambdas/handlers/reconciler.ts';
import type { WorkflowExecutionState } from '../../lambdas/ports/index.ts';
import { ensureTable, startLocalDynamo, type LocalDynamo } from '../../local/dynamo.ts';
import { tempDir } from '../support/stack.ts';

const node = parseInventory('nodes:\n  - { id: n1, xpus: [{ id: dpu0 }] }\n').nodes[0];
const NOW = new Date('2030-01-20T00:00:00.000Z');

let dynamo: LocalDynamo;
let tables = 0;
/** Queries sent, by index ('table' for none). */
const queries = new Map<string, number>();
beforeAll(async () => {
  dynamo = await startLocalDynamo({ dataDir: join(tempDir('reconciler-active'), 'dynamodb') });
  dynamo.client.middlewareStack.add(
    (next, context) => async (args) => {
      if ((context as { commandName?: string }).commandName === 'QueryCommand') {
        const index = String((args.input as { IndexName?: string }).IndexName ?? 'table');
        queries.set(index, (queries.get(index) ?? 0) + 1);
      }
      return next(args);
    },
    { step: 'initialize', name: 'countQueries' },
  );
}, 30_000);
afterAll(async () => {
  await dynamo?.close();
});

/** A reboot notified `day` days into January 2030, in `status` (ended ones with their end). */
function reboot(i: number, day: number, status: StoredReboot['status']): StoredReboot {
  const at = `2030-01-${String(day).padStart(2, '0')}T10:00:00.000Z`;
  const ev = {
    id: `e${i}`,
    type: 'xpu.reboot.pending',
    node: 'n1',
    xpu: 'dpu0',
    time: at,
    receivedAt: at,
    data: {},
    source: 'native',
    dedupKey: `native:n1:e${i}`,
  } as NativeEvent;
  const r = newXpuReboot(`xr-active-${String(i).padStart(3, '0')}`, node, 'dpu0', ev, 'planned');
  r.status = status;
  if (status === 'completed' || status === 'failed') r.endedAt = at;
  return r;
}

/** 60 reboots over 12 days: 54 ended, 5 running in different phases, 1 queued. */
async function seed(store: DynamoRebootStore): Promise<string[]> {
  const active: string[] = [];
  for (let i = 0; i < 60; i++) {
    const status: StoredReboot['status'] =
      i % 10 === 3
        ? i === 53
          ? 'queued'
          : (['preparing', 'notified', 'rebooting', 'recovering', 'extended'] as const)[i % 5]
        : i % 7
          ? 'completed'
          : 'failed';
    const r = reboot(i, 1 + (i % 12), status);
    expect(await store.createReboot(r)).toBe(true);
    if (status !== 'completed' && status !== 'failed' && status !== 'queued') active.push(r.id);
  }
  return active.sort();
}

function depsOver(store: DynamoRebootStore, described: string[]): Deps {
  return {
    store,
    workflows: {
      describe: async (_kind: string, name: string): Promise<WorkflowExecutionState> => {
        described.push(name);
        return { status: 'RUNNING' } as WorkflowExecutionState;
      },
    },
    clock: { now: () => NOW },
    metrics: { count: () => {} },
    logger: silentLogger,
  } as unknown as Deps;
}

describe('the reconciler over the sparse index of reboots not ended', () => {
  it('checks exactly the active reboots with one Query per index shard, none of the fleet listing', async () => {
    const table = `reconciler-active-${++tables}`;
    await ensureTable(dynamo.client, table);
    const store = new DynamoRebootStore(dynamo.client, table);
    const active = await seed(store);
    expect(active).toHaveLength(5);
    const described: string[] = [];
    queries.clear();
    const res = await createReconciler(depsOver(store, described))();
    expect(described.sort()).toEqual(active);
    expect(res.checked).toBe(5);
    // 8 shards of gsi3 and the one read of the budget queue (wakeQueued), none of the listing: that read
    // 12 days x 8 shards for each of the active statuses.
    expect(Object.fromEntries(queries)).toEqual({ gsi3: 8, table: 1 });

    // An ended reboot leaves the index; the queued one is in it but not checked (it has no execution yet).
    expect((await store.activeReboots())?.map((r) => r.id).sort()).toEqual([...active, 'xr-active-053'].sort());
    await store.updateReboot(active[0], (r) => ({ ...r, status: 'completed', endedAt: NOW.toISOString() }));
    const after = await store.activeReboots();
    expect(after?.map((r) => r.id)).not.toContain(active[0]);
    expect(after?.find((r) => r.id === active[1])).toEqual({ id: active[1], kind: 'xpu', status: expect.any(String) });
  }, 60_000);

  it('a table from before the index (a local DATA_DIR) still reconciles, through the listing', async () => {
    const table = `reconciler-old-${++tables}`;
    await dynamo.client.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: ['pk', 'sk', 'gsi1pk', 'gsi1sk', 'gsi2pk', 'gsi2sk'].map((AttributeName) => ({
          AttributeName,
          AttributeType: 'S',
        })),
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [1, 2].map((n) => ({
          IndexName: `gsi${n}`,
          KeySchema: [
            { AttributeName: `gsi${n}pk`, KeyType: 'HASH' },
            { AttributeName: `gsi${n}sk`, KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...(n === 1 ? GSI1_ATTRIBUTES : GSI2_ATTRIBUTES)] },
        })),
      }),
    );
    await ensureTable(dynamo.client, table);
    const store = new DynamoRebootStore(dynamo.client, table);
    const active = await seed(store);
    expect(await store.activeReboots()).toBeNull();
    const described: string[] = [];
    const res = await createReconciler(depsOver(store, described))();
    expect(described.sort()).toEqual(active);
    expect(res.checked).toBe(5);
  }, 60_000);
});
