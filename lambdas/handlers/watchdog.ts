// Finds nodes whose BMC sent nothing for a while: their event subscription may be gone.
import type { Deps } from './deps.ts';

export async function quietBmcs(deps: Deps, quietAfterSeconds: number): Promise<string[]> {
  const index = await deps.inventory();
  const now = deps.clock.now().getTime();
  const quiet: string[] = [];
  for (const node of index.inventory.nodes) {
    if (!node.bmcToken) continue;
    const state = await deps.store.getNodeState(node.id);
    const last = state.lastBmcEventAt ? Date.parse(state.lastBmcEventAt) : NaN;
    if (!Number.isFinite(last) || now - last > quietAfterSeconds * 1000) quiet.push(node.id);
  }
  return quiet;
}
