// The end of a reboot gives its budget slots back only once the end is written (handlers/end.ts): a node
// is unavailable until its reboot's end (contract 7.3), so the queued reboot the release admits is never
// seen in flight beside the one whose slot it took. A replayed end (a crash between the write and the
// release) still gives them back.
import { describe, expect, it } from 'vitest';
import { endReboot } from '../../lambdas/handlers/end.ts';
import type { Deps } from '../../lambdas/handlers/deps.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { parseInventory, InventoryIndex } from '../../lambdas/core/inventory.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';

const inventory = parseInventory(`
policy:
  xpuReboot: { noticeSeconds: 300 }
  budgets: [{ per: rack, maxUnavailable: 1 }]
nodes:
  - { id: n1, rack: r1, xpus: [{ id: dpu0 }] }
`);
const node = inventory.nodes[0];
const T0 = Date.parse('2030-01-01T00:00:00.000Z');

function recovering(): StoredReboot {
  const ev: NativeEvent = {
    id: 'e',
    type: 'xpu.reboot.pending',
    node: 'n1',
    xpu: 'dpu0',
    time: new Date(T0).toISOString(),
    source: 'native',
    dedupKey: 'k',
    receivedAt: new Date(T0).toISOString(),
  };
  const r = newXpuReboot('xr-1', node, 'dpu0', ev, 'planned');
  return { ...r, status: 'recovering', budgetKeys: ['rack:r1'], readyAt: new Date(T0 + 60_000).toISOString() };
}

/** A store holding one reboot; it notes, at each budget release, the status the stored reboot had then. */
function fakeDeps(initial: StoredReboot) {
  let stored = structuredClone(initial);
  const releasedWhile: string[] = [];
  const store = {
    getReboot: async () => structuredClone(stored),
    updateReboot: async (_id: string, change: (r: StoredReboot) => StoredReboot | null) => {
      const next = change(structuredClone(stored));
      if (!next) return { reboot: structuredClone(stored), changed: false };
      stored = { ...next, version: stored.version + 1 };
      return { reboot: structuredClone(stored), changed: true };
    },
    updateCommand: async () => undefined,
    getCommand: async () => undefined,
    release: async () => false,
    releaseBudgets: async () => {
      releasedWhile.push(stored.status);
    },
    queuedReboots: async () => [],
  };
  const deps = {
    store,
    workflows: { wake: async () => {}, fail: async () => {} },
    queue: { send: async () => {} },
    clock: { now: () => new Date(T0 + 120_000) },
    inventory: async () => new InventoryIndex(inventory),
    signal: { notify: async () => {} },
    metrics: { count: () => {} },
    logger: silentLogger,
  } as unknown as Deps;
  return { deps, releasedWhile, stored: () => stored };
}

describe('ending a reboot and its budget slots', () => {
  it('writes the end first, then gives the slots back', async () => {
    const { deps, releasedWhile, stored } = fakeDeps(recovering());
    await endReboot(deps, recovering(), node, { failed: false });
    expect(stored().status).toBe('completed');
    expect(releasedWhile).toEqual(['completed']);
  });

  it('a failed end too', async () => {
    const { deps, releasedWhile } = fakeDeps(recovering());
    await endReboot(deps, recovering(), node, { failed: true, reason: 'the xPU did not come back' });
    expect(releasedWhile).toEqual(['failed']);
  });

  it('a replayed end (already written) still gives the slots back', async () => {
    const { deps, releasedWhile } = fakeDeps(recovering());
    await endReboot(deps, recovering(), node, { failed: false });
    await endReboot(deps, recovering(), node, { failed: false });
    expect(releasedWhile).toEqual(['completed', 'completed']);
  });
});
