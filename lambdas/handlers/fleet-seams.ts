// Where rollouts and the fleet view meet disruption budgets and holds (issue 16, built beside this): one seam each.
import type { InventoryIndex } from '../core/inventory.ts';
import type { StartGate } from '../core/rollout.ts';
import type { NodeDef } from '../core/types.ts';
import type { Deps } from './deps.ts';

export type BudgetGate = (node: NodeDef, index: InventoryIndex) => Promise<StartGate>;

/**
 * Until disruption budgets exist (policy.budgets, lambdas/core/budgets.ts) every start is within
 * budget; the rollout's own maxUnavailable still bounds it.
 */
export function rolloutBudgetGate(_deps: Deps): BudgetGate {
  return async () => ({ ok: true });
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

/** Budget use per domain; empty until budgets exist. */
export async function budgetUse(_deps: Deps, _index: InventoryIndex, _unavailable: ReadonlySet<string>): Promise<BudgetUse[]> {
  return [];
}

/** Active holds; empty until holds exist. */
export async function activeHolds(_deps: Deps): Promise<HoldView[]> {
  return [];
}
