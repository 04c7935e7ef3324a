// The xPU claim a starting event takes beside its look-up (reboot-ids.ts lookUpStart), and how a claim
// so taken by a delivery that died before giving it back is recognised and released
// (docs/idempotency.md, "The claim beside the look-up").
import { legacyRebootId } from '../core/ids.ts';
import type { Clock, RebootStore } from '../ports/index.ts';
import type { ClaimAhead } from './reboot-ids.ts';

/**
 * How long the delivery that took a claim ahead may still use it: longer than an ingest Lambda can
 * run (15 minutes at most) and than a signed DynamoDB request stays valid (15 minutes), with room
 * for clock skew. Past it, its minter is gone, and so is any request of its still on the way.
 */
export const CLAIM_AHEAD_LIFETIME_MS = 20 * 60_000;

/** Where a claim's reboot was looked for, the claim was dangling (released now) or given back: the caller starts over. */
export class ClaimReleased extends Error {
  override readonly name = 'ClaimReleased';
}

export function claimAhead(deps: { store: RebootStore; clock: Clock }, node: string, xpu: string, key: string): ClaimAhead {
  return {
    take: (candidate) => deps.store.claimXpuAhead(node, xpu, candidate, key, deps.clock.now()),
    giveBack: (candidate) => deps.store.releaseAhead(node, xpu, candidate, key),
  };
}

/**
 * Releases the claim `holder` has on an xPU of `node` when it was taken ahead (it carries its event key)
 * and no one will ever store its reboot; true when the caller should start over: released now, or the
 * claim is no longer as first read (given back, or confirmed). Only the delivery that minted `holder`
 * took it so (claimXpuAhead takes only a free xPU, and no one else knows the id before its mapping is
 * written), and anyone else using `holder` confirms the claim (claimXpu removes the key); releaseAhead
 * gives it back only while the key is still on it. So the minter alone decides, and it uses the claim
 * only when its mapping put won (the key maps to `holder`). Hence it never will:
 * - when the key maps to another id: its put lost (a mapping, once written, stays);
 * - when the key maps to `holder` but the claim is older than the minter can live: a later delivery
 *   with that id confirms the claim before it stores the reboot, or claims the xPU anew once it is free.
 * - when the key maps to nothing and the claim is older than the minter can live: its put never landed
 *   and no request of its is still on the way (a landed put stays mapped for 7 days), so no one knows
 *   `holder`; a later delivery of the event mints an id of its own.
 * Younger, a key mapped to nothing is left alone (the minter's put may be on its way). The reboot is read
 * after the look-up, in case it was stored after all.
 */
export async function releaseIfDangling(deps: { store: RebootStore; clock: Clock }, node: string, holder: string): Promise<boolean> {
  const state = await deps.store.getNodeState(node);
  // Given back since it was seen (a claim taken ahead and not used, say): it holds nothing to wait for.
  if (state.host !== holder && !Object.values(state.xpus).includes(holder)) return true;
  const xpu = Object.keys(state.xpus).find((x) => state.xpus[x] === holder && state.claimsAhead?.[x]);
  if (!xpu) return false; // a confirmed claim (or one from before claims ahead): its reboot is on its way
  const { key, at } = state.claimsAhead![xpu];
  const look = await deps.store.lookUpEvent(key, legacyRebootId('xpu', key));
  const expired = deps.clock.now().getTime() - Date.parse(at) > CLAIM_AHEAD_LIFETIME_MS;
  if ((look.rebootId === undefined || look.rebootId === holder) && !expired) return false;
  if (await deps.store.getReboot(holder)) return false;
  // Released, or not as read any more (given back or confirmed meanwhile): either way, start over.
  await deps.store.releaseAhead(node, xpu, holder, key);
  return true;
}
