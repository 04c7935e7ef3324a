// Issue 14: the quiet-BMC watchdog reads node states in batches (BatchGetItem), not one GetItem per node.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InventoryIndex, loadInventoryFile } from '../../lambdas/core/inventory.ts';
import { DynamoRebootStore } from '../../lambdas/adapters/dynamo-store.ts';
import { silentLogger, type Deps } from '../../lambdas/handlers/deps.ts';
import { quietBmcs } from '../../lambdas/handlers/watchdog.ts';
import { startLocalDynamo, type LocalDynamo } from '../../local/dynamo.ts';
import { tempDir } from '../support/stack.ts';

const NODES = 250;
let dynamo: LocalDynamo;
let index: InventoryIndex;
const calls: string[] = [];

beforeAll(async () => {
  const dir = tempDir('watchdog');
  const nodes = Array.from(
    { length: NODES },
    (_, i) => `  - id: n${i}\n    trusted: true\n    bmcToken: bmc-token-n${i}\n    xpus: [{ id: dpu0 }]\n`,
  ).join('');
  writeFileSync(join(dir, 'nodes.yaml'), `nodes:\n${nodes}`);
  index = new InventoryIndex(loadInventoryFile(join(dir, 'nodes.yaml')));
  dynamo = await startLocalDynamo({ dataDir: join(dir, 'dynamodb') });
  dynamo.client.middlewareStack.add(
    (next, context) => (args) => {
      calls.push(context.commandName as string);
      return next(args);
    },
    { step: 'initialize' },
  );
});
afterAll(async () => {
  await dynamo?.close();
});

describe('quiet-BMC watchdog', () => {
  it('finds the quiet BMCs among 250 nodes with 3 BatchGetItem calls and no GetItem', async () => {
    const store = new DynamoRebootStore(dynamo.client, dynamo.table);
    const now = new Date('2030-01-01T12:00:00Z');
    await store.touchBmc('n1', '2030-01-01T11:59:00Z'); // recent
    await store.touchBmc('n2', '2030-01-01T10:00:00Z'); // quiet for 2 h
    calls.length = 0;
    const deps = { store, inventory: async () => index, clock: { now: () => now }, logger: silentLogger } as unknown as Deps;
    const quiet = await quietBmcs(deps, 3600);
    expect(quiet).toHaveLength(NODES - 1);
    expect(quiet).not.toContain('n1');
    expect(quiet).toContain('n2');
    expect(calls.filter((c) => c === 'GetItemCommand')).toHaveLength(0);
    expect(calls.filter((c) => c === 'BatchGetItemCommand')).toHaveLength(3);
  });
});
