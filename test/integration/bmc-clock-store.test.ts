// The node item keeps each BMC clock's estimate (core/bmc-clock.ts) with two conditional writes side by side that are
// the rules `supersedes` (the smallest gap) and `isLater` (the latest sample) themselves, no read: checked here on the
// embedded DynamoDB, as the ingest reads it back with the claims.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRebootStore } from '../../lambdas/adapters/dynamo-store.ts';
import { CLOCK_WINDOW_MS, type ClockEstimate, noteSample } from '../../lambdas/core/bmc-clock.ts';
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
  it('keeps the smallest gap and the latest sample, the smallest gives way after its window; two UpdateItems a sample, no read', async () => {
    const store = new DynamoRebootStore(dynamo.client, dynamo.table);
    calls.length = 0;
    expect(await store.noteClock('n1', SRC, { gapMs: 5000, at: T })).toBe(true);
    expect(await store.noteClock('n1', SRC, { gapMs: 6000, at: T + 1000 })).toBe(false);
    expect(await store.noteClock('n1', SRC, { gapMs: 4000, at: T + 2000 })).toBe(true);
    expect(calls).toEqual(Array(6).fill('UpdateItemCommand'));
    expect((await store.getNodeState('n1')).clocks).toEqual({
      [SRC]: { gapMs: 4000, at: T + 2000, latest: { gapMs: 4000, at: T + 2000 } },
    });
    // A larger gap received later (a clock set back 10 min?): the smallest stays, the latest shows it.
    expect(await store.noteClock('n1', SRC, { gapMs: 604_000, at: T + 3000 })).toBe(false);
    // An older sample delivered after it (writes out of order): neither.
    expect(await store.noteClock('n1', SRC, { gapMs: 4500, at: T + 2500 })).toBe(false);
    expect((await store.getNodeState('n1')).clocks?.[SRC]).toEqual({ gapMs: 4000, at: T + 2000, latest: { gapMs: 604_000, at: T + 3000 } });
    expect(await store.noteClock('n1', SRC, { gapMs: 9000, at: T + 2000 + CLOCK_WINDOW_MS })).toBe(false);
    expect(await store.noteClock('n1', SRC, { gapMs: 9000, at: T + 2001 + CLOCK_WINDOW_MS })).toBe(true);
    const sample = { gapMs: 9000, at: T + 2001 + CLOCK_WINDOW_MS };
    expect((await store.getNodeState('n1')).clocks?.[SRC]).toEqual({ ...sample, latest: sample });
  });

  it('samples written all at once land as the rules folded in any order', async () => {
    const store = new DynamoRebootStore(dynamo.client, dynamo.table);
    const samples = [
      { gapMs: 7000, at: T + 40 },
      { gapMs: 3000, at: T + 10 },
      { gapMs: 9000, at: T + 50 },
      { gapMs: 3500, at: T + 30 },
      { gapMs: 8000, at: T + 20 },
    ];
    await Promise.all(samples.map((x) => store.noteClock('n3', SRC, x)));
    let est: ClockEstimate | undefined;
    for (const x of samples) est = noteSample(est, x);
    expect((await store.getNodeState('n3')).clocks?.[SRC]).toEqual(est);
    expect(est).toEqual({ gapMs: 3000, at: T + 10, latest: { gapMs: 9000, at: T + 50 } });
  });

  it('comes back with the claims: a claim refused returns the node with it (the ingest places a notice from that)', async () => {
    const store = new DynamoRebootStore(dynamo.client, dynamo.table);
    await store.noteClock('n2', 'bmc:n2@n2', { gapMs: -3 * 86_400_000, at: T });
    expect((await store.claimXpu('n2', 'dpu0', 'xr-a')).ok).toBe(true);
    const refused = await store.claimXpu('n2', 'dpu0', 'xr-b');
    expect(refused.ok).toBe(false);
    expect(refused.state?.clocks).toEqual({ 'bmc:n2@n2': { gapMs: -3 * 86_400_000, at: T, latest: { gapMs: -3 * 86_400_000, at: T } } });
    expect(refused.state?.xpus).toEqual({ dpu0: 'xr-a' });
  });
});
