// The node item keeps each BMC clock's estimate (core/bmc-clock.ts) with one conditional write that is the rule
// `supersedes` itself, no read: checked here on the embedded DynamoDB, as the ingest reads it back with the claims.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRebootStore } from '../../lambdas/adapters/dynamo-store.ts';
import { CLOCK_WINDOW_MS } from '../../lambdas/core/bmc-clock.ts';
import { startLocalDynamo, type LocalDynamo } from '../../local/dynamo.ts';
import { tempDir } from '../support/stack.ts';

let dynamo: LocalDynamo;
const calls: string[] = [];
const T = Date.parse('2030-01-01T12:00:00Z');
const SRC = 'bmc:n1@n1';

beforeAll(async () => {
  dynamo = await startLocalDynamo({ dataDir: join(tempDir('bmc-clock'), 'dynamodb') });
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

describe("a BMC clock's estimate on the node item", () => {
  it('keeps the smallest gap, gives way after its window, costs one UpdateItem and no read', async () => {
    const store = new DynamoRebootStore(dynamo.client, dynamo.table);
    calls.length = 0;
    expect(await store.noteClock('n1', SRC, { gapMs: 5000, at: T })).toBe(true);
    expect(await store.noteClock('n1', SRC, { gapMs: 6000, at: T + 1000 })).toBe(false);
    expect(await store.noteClock('n1', SRC, { gapMs: 4000, at: T + 2000 })).toBe(true);
    expect(calls).toEqual(['UpdateItemCommand', 'UpdateItemCommand', 'UpdateItemCommand']);
    expect((await store.getNodeState('n1')).clocks).toEqual({ [SRC]: { gapMs: 4000, at: T + 2000 } });
    expect(await store.noteClock('n1', SRC, { gapMs: 9000, at: T + 2000 + CLOCK_WINDOW_MS })).toBe(false);
    expect(await store.noteClock('n1', SRC, { gapMs: 9000, at: T + 2001 + CLOCK_WINDOW_MS })).toBe(true);
    expect((await store.getNodeState('n1')).clocks?.[SRC]).toEqual({ gapMs: 9000, at: T + 2001 + CLOCK_WINDOW_MS });
  });

  it('comes back with the claims: a claim refused returns the node with it (the ingest places a notice from that)', async () => {
    const store = new DynamoRebootStore(dynamo.client, dynamo.table);
    await store.noteClock('n2', 'bmc:n2@n2', { gapMs: -3 * 86_400_000, at: T });
    expect((await store.claimXpu('n2', 'dpu0', 'xr-a')).ok).toBe(true);
    const refused = await store.claimXpu('n2', 'dpu0', 'xr-b');
    expect(refused.ok).toBe(false);
    expect(refused.state?.clocks).toEqual({ 'bmc:n2@n2': { gapMs: -3 * 86_400_000, at: T } });
    expect(refused.state?.xpus).toEqual({ dpu0: 'xr-a' });
  });
});
