// Issue 19: the store calls the hot path leans on, against the real store (dynalite): an update seeded with the
// caller's copy (no read unless it is stale) and the one-request event lookup.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseInventory } from '../../lambdas/core/inventory.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { DynamoRebootStore } from '../../lambdas/adapters/dynamo-store.ts';
import { startLocalDynamo, type LocalDynamo } from '../../local/dynamo.ts';
import { tempDir } from '../support/stack.ts';

const node = parseInventory(`
nodes:
  - { id: n1, xpus: [{ id: dpu0 }] }
`).nodes[0];
const ev = (id: string): NativeEvent =>
  ({
    id,
    type: 'xpu.reboot.pending',
    node: 'n1',
    xpu: 'dpu0',
    time: '2026-12-06T10:00:00.000Z',
    receivedAt: '2026-12-06T10:00:00.000Z',
    data: {},
    source: 'native',
    dedupKey: `native:n1:${id}`,
  }) as NativeEvent;

let dynamo: LocalDynamo;
let store: DynamoRebootStore;
const gets: string[] = [];
beforeAll(async () => {
  dynamo = await startLocalDynamo({ dataDir: join(tempDir('store-hot-path'), 'dynamodb') });
  store = new DynamoRebootStore(dynamo.client, dynamo.table);
  dynamo.client.middlewareStack.add(
    (next, context) => async (args) => {
      gets.push(String((context as { commandName?: string }).commandName));
      return next(args);
    },
    { step: 'initialize', name: 'countCommands' },
  );
}, 30_000);
afterAll(async () => {
  await dynamo?.close();
});

const note = (text: string) => (r: StoredReboot) =>
  ({ ...r, history: [...r.history, { at: r.notifiedAt, phase: 'note', detail: text }] }) as StoredReboot;

describe('updateReboot seeded with the caller’s copy', () => {
  it('writes without reading when the copy is current', async () => {
    const r = newXpuReboot('xr-seed-1', node, 'dpu0', ev('s1'), 'planned');
    expect(await store.createReboot(r)).toBe(true);
    const loaded = (await store.getReboot(r.id))!;
    gets.length = 0;
    const res = await store.updateReboot(r.id, note('one'), loaded);
    expect(res?.changed).toBe(true);
    expect(gets).toEqual(['PutItemCommand']);
    expect((await store.getReboot(r.id))!.version).toBe(loaded.version + 1);
  });

  it('a stale copy loses the conditional put, reads and applies the change on the current reboot', async () => {
    const r = newXpuReboot('xr-seed-2', node, 'dpu0', ev('s2'), 'planned');
    await store.createReboot(r);
    const stale = (await store.getReboot(r.id))!;
    await store.updateReboot(r.id, note('meanwhile'));
    const res = await store.updateReboot(r.id, note('mine'), stale);
    expect(res?.changed).toBe(true);
    const now = (await store.getReboot(r.id))!;
    expect(now.history.map((h) => h.detail).slice(-2)).toEqual(['meanwhile', 'mine']);
    expect(now.version).toBe(stale.version + 2);
  });

  it('"nothing to change" on the copy is decided again on a fresh read', async () => {
    const r = newXpuReboot('xr-seed-3', node, 'dpu0', ev('s3'), 'planned');
    await store.createReboot(r);
    const stale = (await store.getReboot(r.id))!;
    await store.updateReboot(r.id, note('flag'));
    // Changes only a reboot that has the note: the stale copy has not, the stored one has.
    const res = await store.updateReboot(r.id, (x) => (x.history.some((h) => h.detail === 'flag') ? note('seen')(x) : null), stale);
    expect(res?.changed).toBe(true);
    expect((await store.getReboot(r.id))!.history.at(-1)?.detail).toBe('seen');
  });
});

describe('lookUpEvent', () => {
  it('answers seen, mapped id and legacy reboot in one BatchGetItem', async () => {
    const key = 'native:n1:look-1';
    const legacy = newXpuReboot('xr-legacy-1', node, 'dpu0', ev('look-1'), 'planned');
    gets.length = 0;
    expect(await store.lookUpEvent(key, legacy.id)).toEqual({ seen: false, rebootId: undefined, legacy: undefined });
    expect(gets).toEqual(['BatchGetItemCommand']);
    await store.createReboot(legacy);
    await store.mapEventToReboot(key, 'xr-mapped-1', 3600);
    await store.markEventSeen(key, 3600);
    const got = await store.lookUpEvent(key, legacy.id);
    expect(got.seen).toBe(true);
    expect(got.rebootId).toBe('xr-mapped-1');
    expect(got.legacy?.id).toBe(legacy.id);
    expect(got.seen).toBe(await store.isEventSeen(key));
    expect(got.rebootId).toBe(await store.rebootIdOfEvent(key));
  });
});
