// Where rollouts and the fleet view read disruption budgets and holds (lambdas/core/budgets.ts): one seam each.
import { budgetSlotsOf, isHoldActive, mayStartReboot } from '../core/budgets.ts';
import type { InventoryIndex } from '../core/inventory.ts';
import type { StartGate } from '../core/rollout.ts';
import type { NodeDef } from '../core/types.ts';
import type { Deps } from './deps.ts';

/** `asked`: nodes this rollout has asked and whose reboot the store does not count yet: they take their slots too. */
export type BudgetGate = (node: NodeDef, index: InventoryIndex, asked: readonly NodeDef[]) => Promise<StartGate>;

/**
 * May a rollout ask this node's xPU to reboot now? No while a hold matches the node (until it is
 * released or ends) or while one of its budgets is full with other nodes. This is a reader's
 * answer: the reboot itself takes its budget slots with conditional writes, and queues if it lost a race.
 */
export function rolloutBudgetGate(deps: Deps): BudgetGate {
  return async (node, _index, asked) => {
    const slots = budgetSlotsOf(node);
    const [holds, stored] = await Promise.all([deps.store.listHolds(), slots.length ? deps.store.budgetUsage(slots.map((s) => s.key)) : new Map<string, string[]>()]);
    const usage = new Map<string, string[]>();
    for (const s of slots) {
      const holders = new Set(stored.get(s.key) ?? []);
      for (const a of asked) if (budgetSlotsOf(a).some((x) => x.key === s.key)) holders.add(a.id);
      usage.set(s.key, [...holders]);
    }
    const adm = mayStartReboot(node, holds, usage, deps.clock.now());
    if (adm.kind === 'admit') return { ok: true };
    // Released holds and freed slots wake nothing here: the rollout looks again on its own (30 s).
    return { ok: false, why: adm.reason };
  };
}

/** A budget as the fleet view shows it: its domain, its cap and how many nodes of it are unavailable now. */
export interface BudgetUse {
  per: string;
  key: string;
  maxUnavailable: number;
  unavailable: number;
  nodes: string[];
}

export interface HoldView {
  id: string;
  selector: Record<string, string>;
  reason?: string;
  until?: string;
}

/** Every budget that applies to some node of the inventory, with its use (from the budget items). */
export async function budgetUse(deps: Deps, index: InventoryIndex, _unavailable: ReadonlySet<string>): Promise<BudgetUse[]> {
  const slots = new Map<string, { per: string; value: string; maxUnavailable: number }>();
  for (const n of index.inventory.nodes) for (const s of budgetSlotsOf(n)) if (!slots.has(s.key)) slots.set(s.key, s);
  if (slots.size === 0) return [];
  const usage = await deps.store.budgetUsage([...slots.keys()]);
  return [...slots]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, s]) => ({ per: s.per, key: s.value, maxUnavailable: s.maxUnavailable, unavailable: usage.get(key)?.length ?? 0, nodes: [...(usage.get(key) ?? [])].sort() }));
}

/** Holds in force now. */
export async function activeHolds(deps: Deps): Promise<HoldView[]> {
  const now = deps.clock.now();
  return (await deps.store.listHolds())
    .filter((h) => isHoldActive(h, now))
    .map((h) => ({ id: h.id, selector: h.selector as Record<string, string>, ...(h.reason ? { reason: h.reason } : {}), ...(h.until ? { until: h.until } : {}) }));
}
