// An agent with more open commands than one Query page: the store lists them all, and a poll hands out
// those behind the oldest ones still in flight (they were starved when a fetch stopped at 100).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { InventoryIndex, parseInventory } from '../../lambdas/core/inventory.ts';
import { DynamoRebootStore } from '../../lambdas/adapters/dynamo-store.ts';
import { PollingCommandSignal } from '../../lambdas/adapters/polling-signal.ts';
import { createApiApp, type ApiDeps } from '../../lambdas/handlers/api.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { noMetrics, type StoredCommand } from '../../lambdas/ports/index.ts';
import { ensureTable, startLocalDynamo, type LocalDynamo } from '../../local/dynamo.ts';
import { tempDir } from '../support/stack.ts';

const NOW = new Date('2030-01-01T00:00:00.000Z');
let dynamo: LocalDynamo;
let tables = 0;
beforeAll(async () => {
  dynamo = await startLocalDynamo({ dataDir: join(tempDir('open-commands'), 'dynamodb') });
}, 30_000);
afterAll(async () => {
  await dynamo?.close();
});

async function freshStore(opts: { commandPage?: number } = {}): Promise<DynamoRebootStore> {
  const name = `open-commands-${++tables}`;
  await ensureTable(dynamo.client, name);
  return new DynamoRebootStore(dynamo.client, name, opts);
}

/** `n` open commands of agent n1, one a second (oldest first); the first `inFlight` handed out just now. */
async function seed(store: DynamoRebootStore, n: number, inFlight: number): Promise<StoredCommand[]> {
  const cmds: StoredCommand[] = [];
  for (let i = 0; i < n; i++) {
    const at = new Date(NOW.getTime() - (n - i) * 1000).toISOString();
    cmds.push({
      id: `c-${String(i).padStart(4, '0')}`,
      type: 'protect-pcie',
      args: {},
      deadline: NOW.toISOString(),
      rebootId: `xr-${i}`,
      node: 'n1',
      xpu: 'dpu0',
      agent: 'n1',
      step: 'prepare',
      status: i < inFlight ? 'delivered' : 'pending',
      ...(i < inFlight ? { seenAt: NOW.toISOString() } : {}),
      noticePhase: true,
      createdAt: at,
    });
  }
  for (let i = 0; i < cmds.length; i += 25) await Promise.all(cmds.slice(i, i + 25).map((c) => store.putCommand(c)));
  return cmds;
}

describe('open commands beyond one page', () => {
  it('are all listed, oldest first, whatever the page size', async () => {
    for (const page of [undefined, 7]) {
      const store = await freshStore({ commandPage: page });
      const cmds = await seed(store, 130, 0);
      const open = await store.openCommands('n1');
      expect(
        open.map((c) => c.id),
        `page ${page ?? '1 MB'}`,
      ).toEqual(cmds.map((c) => c.id));
    }
  }, 60_000);

  it('a poll hands out the pending commands queued behind 110 still in flight, then nothing is left behind', async () => {
    const store = await freshStore();
    const cmds = await seed(store, 130, 110);
    const index = new InventoryIndex(parseInventory('nodes:\n  - { id: n1, agentToken: agent-token-n1, xpus: [{ id: dpu0 }] }\n'));
    const app = createApiApp({
      mapping: { rules: [] },
      inventory: async () => index,
      logger: silentLogger,
      metrics: noMetrics,
      clock: { now: () => NOW },
      store,
      signal: new PollingCommandSignal(),
      workflows: { heartbeat: async () => {} },
    } as unknown as ApiDeps);
    const poll = async () =>
      (await (await app.request('/v1/agents/n1/commands?wait=0', { headers: { authorization: 'Bearer agent-token-n1' } })).json()) as {
        id: string;
      }[];
    const first = await poll();
    expect(first.map((c) => c.id)).toEqual(cmds.slice(110).map((c) => c.id));
    // Handed out now: the next poll has nothing due, and every command is delivered.
    expect(await poll()).toEqual([]);
    const open = await store.openCommands('n1');
    expect(open).toHaveLength(130);
    expect(open.filter((c) => c.status === 'pending')).toEqual([]);
  }, 60_000);
});
