// Where rollouts and the fleet view meet disruption budgets and holds: one seam each.
import { budgetSlotsOf, type Hold } from '../core/budgets.ts';
import type { InventoryIndex } from '../core/inventory.ts';
import type { StartGate } from '../core/rollout.ts';
import type { NodeDef } from '../core/types.ts';
import type { Deps } from './deps.ts';
import { activeHolds as storedActiveHolds, mayNodeStartReboot, provisionedNodes } from './fleet.ts';

/** `starting`: nodes the caller has just told to reboot (their reboots have not taken their slots yet). */
export type BudgetGate = (node: NodeDef, index: InventoryIndex, starting?: readonly string[]) => Promise<StartGate>;

/**
 * May a rollout start this node's reboot now: no hold on it and room in each of its budgets
 * (lambdas/core/budgets.ts), each node in the tenant it is provisioned for. The answer of a reader:
 * a reboot started anyway beyond a budget is queued by the coordinator, never let through.
 */
export function rolloutBudgetGate(deps: Deps): BudgetGate {
  return async (node, index, starting = []) => {
    const others = [...new Set(starting)].filter((id) => id !== node.id).flatMap((id) => index.node(id) ?? []);
    const [placed, ...placedOthers] = await provisionedNodes(deps, [node, ...others]);
    const a = await mayNodeStartReboot(deps, placed, startingIn(placed, placedOthers));
    if (a.kind === 'admit') return { ok: true };
    if (a.kind === 'hold') return { ok: false, why: `hold: ${a.reason}`, ...(a.hold.until ? { retryAt: a.hold.until } : {}) };
    return { ok: false, why: `budget: ${a.reason}` };
  };
}

/** The budget keys of this node that each starting node (another, as provisioned) will take a slot of. */
function startingIn(node: NodeDef, starting: readonly NodeDef[]): Map<string, string[]> {
  const mine = budgetSlotsOf(node).map((s) => s.key);
  const out = new Map<string, string[]>();
  for (const other of starting)
    for (const s of budgetSlotsOf(other)) if (mine.includes(s.key)) out.set(s.key, [...(out.get(s.key) ?? []), other.id]);
  return out;
}

/** A budget as the fleet view shows it: its domain, its cap and how many nodes of it are unavailable now. */
export interface BudgetUse {
  per: string;
  key: string;
  maxUnavailable: number;
  unavailable: number;
}

export interface HoldView {
  id: string;
  selector: Record<string, string>;
  reason?: string;
  until?: string;
}

/**
 * Budget use per domain, from the budget items the coordinator takes and gives back (the
 * authority), for every budget some node of the inventory is in (`nodes` as provisioned: a tenant's
 * budget is there once a node is provisioned for it). `_unavailable` (the nodes with a
 * reboot in flight, as the view counts them) is not needed: the items count exactly that.
 */
export async function budgetUse(deps: Deps, nodes: readonly NodeDef[], _unavailable: ReadonlySet<string>): Promise<BudgetUse[]> {
  const budgets = new Map<string, BudgetUse>();
  for (const n of nodes)
    for (const s of budgetSlotsOf(n))
      if (!budgets.has(s.key)) budgets.set(s.key, { per: s.per, key: s.key, maxUnavailable: s.maxUnavailable, unavailable: 0 });
  if (!budgets.size) return [];
  const usage = await deps.store.budgetUsage([...budgets.keys()]);
  for (const b of budgets.values()) b.unavailable = usage.get(b.key)?.length ?? 0;
  return [...budgets.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
}

/** Active holds, oldest first. */
export async function activeHolds(deps: Deps): Promise<HoldView[]> {
  const holds: Hold[] = await storedActiveHolds(deps);
  return holds
    .sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1))
    .map((h) => ({
      id: h.id,
      selector: Object.fromEntries(Object.entries(h.selector).filter((e): e is [string, string] => typeof e[1] === 'string')),
      reason: h.reason,
      ...(h.until ? { until: h.until } : {}),
    }));
}
