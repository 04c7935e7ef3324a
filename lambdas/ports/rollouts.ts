// The store rollouts need; kept apart from RebootStore so the reboot path never loads it.
import type { Rollout, RolloutClaim } from '../core/rollout.ts';

export interface RolloutStore {
  /** false when a rollout with that id exists already. */
  createRollout(r: Rollout): Promise<boolean>;
  getRollout(id: string): Promise<Rollout | undefined>;
  /** Optimistic read-modify-write like updateReboot: `change` may run several times, null changes nothing. */
  updateRollout(id: string, change: (r: Rollout) => Rollout | null): Promise<{ rollout: Rollout; changed: boolean } | undefined>;
  /** Newest first. */
  listRollouts(limit: number): Promise<Rollout[]>;
  /** Rollouts created in [from, to), oldest first (the compliance report's section). */
  rolloutsCreatedBetween(from: Date, to: Date): Promise<Rollout[]>;
  /**
   * Writes the claim when its xPU has none, has one of the same rollout already, or (with `replacing`)
   * has exactly that rollout's claim; false otherwise. Atomic across processes.
   */
  claimXpu(claim: RolloutClaim, replacing?: string): Promise<boolean>;
  getXpuClaim(node: string, xpu: string): Promise<RolloutClaim | undefined>;
  /** Removes the claim if `rolloutId` still holds it. */
  releaseXpuClaim(node: string, xpu: string, rolloutId: string): Promise<void>;
}
