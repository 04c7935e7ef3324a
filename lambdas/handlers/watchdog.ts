// Finds nodes whose BMC sent nothing for a while: their event subscription may be gone.
import type { Deps } from './deps.ts';

export async function quietBmcs(deps: Deps, quietAfterSeconds: number): Promise<string[]> {
  const index = await deps.inventory();
  const now = deps.clock.now().getTime();
  const quiet: string[] = [];
  const watched = index.inventory.nodes.filter((n) => n.bmcToken).map((n) => n.id);
  // Batched: 10,000 nodes are 100 BatchGetItem calls, not 10,000 strongly consistent GetItems.
  const states = await deps.store.getNodeStates(watched);
  for (const node of watched) {
    const at = states.get(node)?.lastBmcEventAt;
    const last = at ? Date.parse(at) : NaN;
    if (!Number.isFinite(last) || now - last > quietAfterSeconds * 1000) quiet.push(node);
  }
  return quiet;
}
