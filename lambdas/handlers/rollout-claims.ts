// The per-xPU claims that make a rollout's overlap check exclusive across API instances
// (docs/fleet-safety.md, "Two starts at once"): taken before the rollout record, released at its end.
import { claimHolds, type RolloutClaim, type RolloutStatus } from '../core/rollout.ts';
import type { Clock } from '../ports/index.ts';
import type { RolloutStore } from '../ports/rollouts.ts';

/** Conditional puts in flight at once: a 1,000-xPU plan claims in well under a second, far below API Gateway's 30 s. */
const CLAIMS_AT_ONCE = 25;
/** Rounds of put / read / take-over for one xPU before its contention counts as a clash. */
const ATTEMPTS = 3;

export interface ClaimClash {
  node: string;
  xpu: string;
  rolloutId: string;
  /** The holder's status, or `starting`: its claim is there, its record not yet. */
  status: RolloutStatus | 'starting';
}

const byXpu = (a: { node: string; xpu: string }, b: { node: string; xpu: string }) =>
  a.node < b.node ? -1 : a.node > b.node ? 1 : a.xpu < b.xpu ? -1 : a.xpu > b.xpu ? 1 : 0;

/** Claims one xPU for `rolloutId`: true, or the rollout whose claim still holds it. */
async function claimOne(
  store: RolloutStore,
  p: { node: string; xpu: string },
  rolloutId: string,
  clock: Clock,
): Promise<true | ClaimClash> {
  let last: ClaimClash = { ...p, rolloutId: '(another start)', status: 'starting' };
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const claim: RolloutClaim = { ...p, rolloutId, at: clock.now().toISOString() };
    if (await store.claimXpu(claim)) return true;
    const held = await store.getXpuClaim(p.node, p.xpu);
    if (!held) continue; // released since the put: try again
    if (held.rolloutId === rolloutId) return true;
    const holder = await store.getRollout(held.rolloutId);
    if (claimHolds(held, holder, clock.now())) return { ...p, rolloutId: held.rolloutId, status: holder?.status ?? 'starting' };
    // Left behind (its rollout ended with it, or its start died before its record): take it over, unless
    // another start took it over first.
    if (await store.claimXpu(claim, held.rolloutId)) return true;
    last = { ...p, rolloutId: held.rolloutId, status: holder?.status ?? 'starting' };
  }
  return last;
}

/** Gives back the claims of `rolloutId` on these xPUs (a refused start, an ended rollout). */
export async function releasePlan(store: RolloutStore, plan: ReadonlyArray<{ node: string; xpu: string }>, rolloutId: string) {
  for (let i = 0; i < plan.length; i += CLAIMS_AT_ONCE)
    await Promise.all(plan.slice(i, i + CLAIMS_AT_ONCE).map((p) => store.releaseXpuClaim(p.node, p.xpu, rolloutId)));
}

/**
 * Claims every xPU of the plan for `rolloutId`, or none: on the first clash it gives back what it took
 * and names the clash. In a fixed order (node, xPU), the first xPU alone before the others go out in
 * batches: two starts whose plans begin with the same xPU meet there, and the one that got it gets all
 * (the other is refused before it took anything). Plans that overlap only further on meet within a
 * batch, where both may be refused: safe, and a retry settles it.
 */
export async function claimPlan(
  store: RolloutStore,
  plan: ReadonlyArray<{ node: string; xpu: string }>,
  rolloutId: string,
  clock: Clock,
): Promise<ClaimClash | undefined> {
  const order = [...plan].sort(byXpu);
  const mine: Array<{ node: string; xpu: string }> = [];
  const batches = order.length ? [order.slice(0, 1)] : [];
  for (let i = 1; i < order.length; i += CLAIMS_AT_ONCE) batches.push(order.slice(i, i + CLAIMS_AT_ONCE));
  for (const batch of batches) {
    const got = await Promise.all(batch.map((p) => claimOne(store, p, rolloutId, clock)));
    batch.forEach((p, j) => {
      if (got[j] === true) mine.push(p);
    });
    const clash = got.find((g): g is ClaimClash => g !== true);
    if (clash) {
      await releasePlan(store, mine, rolloutId);
      return clash;
    }
  }
  return undefined;
}
