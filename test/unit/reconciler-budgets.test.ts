// A reboot the reconciler ends (its workflow execution failed or is gone) gives its budget slots back, like
// every other end (docs/fleet-safety.md): else its rack stays full for good and what queues behind it goes
// only at its cap. Against a store that holds one reboot and notes every budget release.
import { describe, expect, it } from 'vitest';
import { createReconciler } from '../../lambdas/handlers/reconciler.ts';
import type { Deps } from '../../lambdas/handlers/deps.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { parseInventory, InventoryIndex } from '../../lambdas/core/inventory.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import type { WorkflowExecutionState } from '../../lambdas/ports/index.ts';

const inventory = parseInventory(`
policy:
  budgets: [{ per: rack, maxUnavailable: 1 }]
nodes:
  - { id: n1, rack: r1, xpus: [{ id: dpu0 }] }
`);
const T0 = Date.parse('2030-01-01T00:00:00.000Z');

function preparing(): StoredReboot {
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
  return { ...newXpuReboot('xr-1', inventory.nodes[0], 'dpu0', ev, 'planned'), status: 'preparing', budgetKeys: ['rack:r1'] };
}

function fakeDeps(initial: StoredReboot, state: WorkflowExecutionState) {
  let stored = structuredClone(initial);
  const released: Array<{ keys: readonly string[]; node: string; rebootId: string; status: string }> = [];
  const store = {
    listReboots: async (q: { status?: string }) => ({ items: q.status === stored.status ? [structuredClone(stored)] : [], next: null }),
    getReboot: async () => structuredClone(stored),
    updateReboot: async (_id: string, change: (r: StoredReboot) => StoredReboot | null) => {
      const next = change(structuredClone(stored));
      if (!next) return { reboot: structuredClone(stored), changed: false };
      stored = { ...next, version: stored.version + 1 };
      return { reboot: structuredClone(stored), changed: true };
    },
    updateCommand: async () => undefined,
    release: async () => false,
    releaseBudgets: async (keys: readonly string[], node: string, rebootId: string) => {
      released.push({ keys, node, rebootId, status: stored.status });
    },
    queuedReboots: async () => [],
  };
  const deps = {
    store,
    workflows: { describe: async () => state, wake: async () => {}, fail: async () => {} },
    queue: { send: async () => {} },
    clock: { now: () => new Date(T0 + 3600_000) },
    inventory: async () => new InventoryIndex(inventory),
    signal: { notify: async () => {} },
    metrics: { count: () => {} },
    logger: silentLogger,
  } as unknown as Deps;
  return { deps, released, stored: () => stored };
}

describe('the reconciler and budget slots', () => {
  it('a reboot it ends (its execution failed) gives its slots back, after the end is written', async () => {
    const { deps, released, stored } = fakeDeps(preparing(), { status: 'FAILED', error: 'States.Runtime' } as WorkflowExecutionState);
    const res = await createReconciler(deps)();
    expect(res.ended).toEqual([{ rebootId: 'xr-1', reason: 'workflow-failed' }]);
    expect(stored().status).toBe('failed');
    expect(released).toEqual([{ keys: ['rack:r1'], node: 'n1', rebootId: 'xr-1', status: 'failed' }]);
  });

  it('a running one keeps them', async () => {
    const { deps, released } = fakeDeps(preparing(), { status: 'RUNNING' } as WorkflowExecutionState);
    expect((await createReconciler(deps)()).ended).toEqual([]);
    expect(released).toEqual([]);
  });
});
