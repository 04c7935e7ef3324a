// Budget items stay small however many nodes are unavailable in one scope (a crash storm): beyond the head's cap
// nodes spill to items of their own, counted in the head. Against the real store (dynalite), with a small cap.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { budgetFullReason, type BudgetSlot } from '../../lambdas/core/budgets.ts';
import { DynamoRebootStore } from '../../lambdas/adapters/dynamo-store.ts';
import { ensureTable, startLocalDynamo, type LocalDynamo } from '../../local/dynamo.ts';
import { tempDir } from '../support/stack.ts';

let dynamo: LocalDynamo;
let doc: DynamoDBDocumentClient;
let tables = 0;
beforeAll(async () => {
  dynamo = await startLocalDynamo({ dataDir: join(tempDir('budgets-spill'), 'dynamodb') });
  doc = DynamoDBDocumentClient.from(dynamo.client);
}, 30_000);
afterAll(async () => {
  await dynamo?.close();
});

async function freshStore(budgetHeadCap: number): Promise<{ store: DynamoRebootStore; table: string }> {
  const table = `budgets-spill-${++tables}`;
  await ensureTable(dynamo.client, table);
  return { store: new DynamoRebootStore(dynamo.client, table, { budgetHeadCap }), table };
}

const zone = (max: number): BudgetSlot => ({ per: 'zone', value: 'z1', maxUnavailable: max, key: 'zone:z1' });

/** DynamoDB's size of an item (names plus values), near enough to compare with a bound. */
function itemBytes(item: Record<string, unknown>): number {
  const size = (v: unknown): number =>
    typeof v === 'string'
      ? Buffer.byteLength(v)
      : typeof v === 'number'
        ? Math.ceil(String(v).length / 2) + 1
        : v instanceof Set
          ? [...v].reduce((a: number, x) => a + size(x), 0)
          : typeof v === 'boolean'
            ? 1
            : Buffer.byteLength(JSON.stringify(v));
  return Object.entries(item).reduce((a, [k, v]) => a + Buffer.byteLength(k) + size(v), 0);
}

async function head(table: string, key: string) {
  return (await doc.send(new GetCommand({ TableName: table, Key: { pk: 'BUDGET', sk: key }, ConsistentRead: true }))).Item ?? {};
}

async function spilled(table: string, key: string) {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const res = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :p',
        ExpressionAttributeValues: { ':p': `BUDGETSPILL#${key}` },
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }),
    );
    items.push(...(res.Items ?? []));
    start = res.LastEvaluatedKey;
  } while (start);
  return items;
}

/** Slots in use as the head counts them: its set, or its count once nodes spilled. */
function countOf(h: Record<string, unknown>): number {
  const s = typeof h.s === 'number' ? h.s : 0;
  return s > 0 ? (h.n as number) : ((h.holders as Set<string> | undefined)?.size ?? 0);
}

/** Nothing held, nothing spilled, nothing in flight: every slot came back. */
async function expectAllBack(store: DynamoRebootStore, table: string, key: string) {
  const h = await head(table, key);
  expect((h.holders as Set<string> | undefined)?.size ?? 0).toBe(0);
  expect(h.s ?? 0).toBe(0);
  expect((h.tk as Set<string> | undefined)?.size ?? 0).toBe(0);
  expect((h.lv as Set<string> | undefined)?.size ?? 0).toBe(0);
  expect(await spilled(table, key)).toEqual([]);
  expect((await store.budgetUsage()).get(key) ?? []).toEqual([]);
}

async function inBatches<T>(items: readonly T[], width: number, f: (t: T) => Promise<unknown>) {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(f));
}

describe('a crash storm in one scope', () => {
  it('keeps the head item bounded by its cap: 200 crashed nodes of a zone with maxUnavailable 20, head cap 8', async () => {
    const { store, table } = await freshStore(8);
    const slot = zone(20);
    const nodes = Array.from({ length: 200 }, (_, i) => `host-us-east-1a-rack${String(i % 40).padStart(3, '0')}-slot${i}`);
    const overshoot: string[] = [];
    await inBatches(nodes, 16, async (n) => {
      const res = await store.acquireBudgets([slot], n, `xr-01jcrash${n}`, { force: true });
      expect(res.ok).toBe(true);
      if (res.ok && res.overshoot.length) overshoot.push(n);
    });
    // Every crash beyond the 20th says it went beyond the budget.
    expect(overshoot).toHaveLength(180);
    const h = await head(table, slot.key);
    expect(countOf(h)).toBe(200);
    expect((h.holders as Set<string>).size).toBe(8);
    // The head names 8 nodes and their reboots (~70 bytes each) plus its counters: nowhere near 200 nodes' worth.
    expect(itemBytes(h)).toBeLessThan(2_000);
    const markers = await spilled(table, slot.key);
    expect(markers).toHaveLength(192);
    for (const m of markers) expect(itemBytes(m)).toBeLessThan(250);
    expect((await store.budgetUsage([slot.key])).get(slot.key)).toEqual([...nodes].sort());

    // A planned reboot is refused, its reason counts them all and names a few.
    const refused = await store.acquireBudgets([slot], 'another', 'xr-planned', { force: false });
    expect(refused).toMatchObject({ ok: false, unavailable: 200 });
    if (!refused.ok) {
      const reason = budgetFullReason(refused.slot, refused.holders, refused.unavailable);
      expect(reason).toMatch(/^zone z1 has 200 of 20 nodes unavailable \(.*, and 19\d more\)$/);
      expect(reason.length).toBeLessThan(1_000);
    }
    // A second reboot of a spilled node joins its slot: no second slot, no overshoot.
    const spilledNode = markers[0].sk as string;
    expect(await store.acquireBudgets([slot], spilledNode, 'xr-second', { force: false })).toEqual({ ok: true, overshoot: [] });
    expect(countOf(await head(table, slot.key))).toBe(200);

    // The storm ends: every slot comes back, each given back twice (the workflow's end and the reconciler).
    await store.releaseBudgets([slot.key], spilledNode, 'xr-second');
    await inBatches(nodes, 16, (n) =>
      Promise.all([store.releaseBudgets([slot.key], n, `xr-01jcrash${n}`), store.releaseBudgets([slot.key], n, `xr-01jcrash${n}`)]),
    );
    await expectAllBack(store, table, slot.key);
    // And the budget admits planned reboots up to its maximum again.
    for (let i = 0; i < 20; i++) expect((await store.acquireBudgets([slot], `p${i}`, `xr-p${i}`, { force: false })).ok).toBe(true);
    expect((await store.acquireBudgets([slot], 'p20', 'xr-p20', { force: false })).ok).toBe(false);
  }, 120_000);

  it('a take or give-back stopped between its writes is finished by its retry, counted once', async () => {
    const { store, table } = await freshStore(1);
    const slot = zone(5);
    expect((await store.acquireBudgets([slot], 'a', 'xr-a', { force: false })).ok).toBe(true);
    // Stop the spilled take after the head counted it, before its item says held.
    const failOnce = (match: (input: Record<string, unknown>) => boolean) => {
      let armed = true;
      const name = `fail-${Math.random()}`;
      dynamo.client.middlewareStack.add(
        (next) => async (args) => {
          const input = args.input as Record<string, unknown>;
          if (armed && input.TableName === table && match(input)) {
            armed = false;
            throw Object.assign(new Error('killed'), { name: 'Killed' });
          }
          return next(args);
        },
        { step: 'initialize', name },
      );
      return () => dynamo.client.middlewareStack.remove(name);
    };
    let undo = failOnce((i) => String(i.UpdateExpression).startsWith('SET st = :held'));
    await expect(store.acquireBudgets([slot], 'b', 'xr-b', { force: false })).rejects.toThrow('killed');
    undo();
    expect(countOf(await head(table, slot.key))).toBe(2);
    // A sibling reboot of the node and the retry of the take: still one slot.
    expect(await store.acquireBudgets([slot], 'b', 'xr-b2', { force: false })).toEqual({ ok: true, overshoot: [] });
    expect(await store.acquireBudgets([slot], 'b', 'xr-b', { force: false })).toEqual({ ok: true, overshoot: [] });
    expect(countOf(await head(table, slot.key))).toBe(2);
    await store.releaseBudgets([slot.key], 'b', 'xr-b2');
    // Stop the give-back after the head uncounted it, before its item went.
    undo = failOnce((i) => i.ConditionExpression === 'g = :g AND st = :leaving');
    await expect(store.releaseBudgets([slot.key], 'b', 'xr-b')).rejects.toThrow('killed');
    undo();
    expect(countOf(await head(table, slot.key))).toBe(1);
    await store.releaseBudgets([slot.key], 'b', 'xr-b');
    expect(countOf(await head(table, slot.key))).toBe(1);
    await store.releaseBudgets([slot.key], 'a', 'xr-a');
    await expectAllBack(store, table, slot.key);
  }, 60_000);
});

type Op = { node: number; kind: 'planned' | 'host' | 'crash'; holdMs: number; sibling: boolean; twice: boolean };

describe('concurrent takes and give-backs with spilling', () => {
  it('never count more than maxUnavailable but by crashes, never lose a slot (fast-check, seeded)', async () => {
    const opArb: fc.Arbitrary<Op> = fc.record({
      node: fc.integer({ min: 0, max: 7 }),
      kind: fc.constantFrom('planned' as const, 'planned' as const, 'host' as const, 'crash' as const),
      holdMs: fc.integer({ min: 0, max: 12 }),
      sibling: fc.boolean(),
      twice: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 2, maxLength: 14 }),
        fc.constantFrom(1, 2),
        fc.constantFrom(2, 3),
        async (ops, cap, max) => {
          const { store, table } = await freshStore(cap);
          const slot = zone(max);
          // Crashes started and finished so far: during a read, at most started(after) - finished(before) are in flight.
          let forcedStarted = 0;
          let forcedFinished = 0;
          // A planned reboot of a node a crash made unavailable joins the crash's slot: only nodes without crashes are checked here.
          const crashNodes = new Set(ops.filter((o) => o.kind === 'crash').map((o) => `n${o.node}`));
          const plannedHeld = new Map<string, number>();
          const violations: string[] = [];
          let running = true;
          const sampler = (async () => {
            while (running) {
              const finished = forcedFinished;
              const n = countOf(await head(table, slot.key));
              const inFlight = forcedStarted - finished;
              // Crashes still taking or holding may be beyond the budget; nothing else is.
              if (n > max + inFlight) violations.push(`count ${n} > ${max} + ${inFlight} crashes in flight`);
            }
          })();
          await Promise.all(
            ops.map(async (op, i) => {
              const node = `n${op.node}`;
              const ids = [`r-${i}`, ...(op.sibling ? [`r-${i}-s`] : [])];
              const forced = op.kind === 'crash';
              if (forced) forcedStarted++;
              const res = await Promise.all(ids.map((id) => store.acquireBudgets([slot], node, id, { force: forced })));
              const admitted = ids.filter((_, k) => res[k].ok);
              const checked = !forced && admitted.length > 0 && !crashNodes.has(node);
              if (checked) {
                plannedHeld.set(node, (plannedHeld.get(node) ?? 0) + 1);
                const planned = [...plannedHeld.values()].filter((v) => v > 0).length;
                if (planned > max) violations.push(`${planned} planned nodes held at once, max ${max}`);
              }
              await new Promise((r) => setTimeout(r, op.holdMs));
              if (checked) plannedHeld.set(node, plannedHeld.get(node)! - 1);
              await Promise.all(
                admitted.flatMap((id) => (op.twice ? [id, id] : [id]).map((rid) => store.releaseBudgets([slot.key], node, rid))),
              );
              if (forced) forcedFinished++;
            }),
          );
          running = false;
          await sampler;
          expect(violations).toEqual([]);
          await expectAllBack(store, table, slot.key);
        },
      ),
      // fast-check's failure message carries the seed and the shrunk case.
      { seed: 20261207, numRuns: 25, endOnFailure: true },
    );
  }, 180_000);
});
