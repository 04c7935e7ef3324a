// When a rollout's claim on an xPU keeps another rollout off it (docs/fleet-safety.md, "Two starts at once"):
// while its rollout still has to reboot the xPU, or, with no rollout record, while its start may still write one.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { claimPlan } from '../../lambdas/handlers/rollout-claims.ts';
import type { RolloutStore } from '../../lambdas/ports/rollouts.ts';
import {
  claimHolds,
  claimIsFresh,
  ROLLOUT_CLAIM_LIFETIME_MS,
  type Rollout,
  type RolloutClaim,
  type RolloutItem,
} from '../../lambdas/core/rollout.ts';

const T = Date.parse('2030-01-01T00:00:00.000Z');
const claim: RolloutClaim = { node: 'a', xpu: 'dpu0', rolloutId: 'ro-a', at: new Date(T).toISOString() };
const rollout = (status: Rollout['status'], state: RolloutItem['state']): Rollout => ({
  id: 'ro-a',
  status,
  selector: {},
  maxUnavailable: 1,
  maxFailures: 1,
  reason: 'fw',
  createdAt: claim.at,
  items: [{ node: 'a', xpu: 'dpu0', state }],
  history: [],
  version: 0,
});
const at = (ms: number) => new Date(T + ms);

describe('claimHolds', () => {
  it('without its rollout record: until the lifetime has passed (a start killed between claim and record frees the xPU)', () => {
    expect(claimHolds(claim, undefined, at(0))).toBe(true);
    expect(claimHolds(claim, undefined, at(ROLLOUT_CLAIM_LIFETIME_MS))).toBe(true);
    expect(claimHolds(claim, undefined, at(ROLLOUT_CLAIM_LIFETIME_MS + 1))).toBe(false);
  });

  it('with its rollout: as long as that rollout still has to reboot the xPU, however old the claim', () => {
    const late = at(10 * ROLLOUT_CLAIM_LIFETIME_MS);
    for (const state of ['pending', 'sent', 'rebooting'] as const)
      expect(claimHolds(claim, rollout('running', state), late), state).toBe(true);
    for (const state of ['done', 'failed'] as const) expect(claimHolds(claim, rollout('running', state), at(0)), state).toBe(false);
    expect(claimHolds(claim, rollout('paused', 'sent'), late)).toBe(true);
    expect(claimHolds(claim, rollout('paused', 'pending'), at(0))).toBe(false);
    for (const status of ['completed', 'cancelled'] as const)
      expect(claimHolds(claim, rollout(status, 'pending'), at(0)), status).toBe(false);
  });
});

describe('claimIsFresh', () => {
  it('a start writes its record only while others would still honour its claims, with half the lifetime to spare', () => {
    expect(claimIsFresh(at(0), at(ROLLOUT_CLAIM_LIFETIME_MS / 2))).toBe(true);
    expect(claimIsFresh(at(0), at(ROLLOUT_CLAIM_LIFETIME_MS / 2 + 1))).toBe(false);
  });
});

describe('claimPlan: two starts over the same plan at once', () => {
  /** Claims in memory, each call answered when the scheduler says: every interleaving of the two starts. */
  function scheduledStore(s: fc.Scheduler) {
    const claims = new Map<string, RolloutClaim>();
    const key = (node: string, xpu: string) => `${node}/${xpu}`;
    // Each call takes effect when the scheduler lets it, not when it is made.
    const turn = () => s.schedule(Promise.resolve());
    const store = {
      getRollout: async (_id: string) => {
        await turn();
        return undefined;
      },
      claimXpu: async (c: RolloutClaim, replacing?: string) => {
        await turn();
        const held = claims.get(key(c.node, c.xpu));
        if (held && held.rolloutId !== replacing) return false;
        claims.set(key(c.node, c.xpu), c);
        return true;
      },
      getXpuClaim: async (node: string, xpu: string) => {
        await turn();
        return claims.get(key(node, xpu));
      },
      releaseXpuClaim: async (node: string, xpu: string, rolloutId: string) => {
        await turn();
        if (claims.get(key(node, xpu))?.rolloutId === rolloutId) claims.delete(key(node, xpu));
      },
    } as unknown as RolloutStore;
    return { store, claims };
  }

  it('whatever the order the store answers in, one gets every xPU and the other none (they meet at the first)', async () => {
    const plan = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((node) => ({ node, xpu: 'dpu0' }));
    const clock = { now: () => at(0) };
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const { store, claims } = scheduledStore(s);
        const both = Promise.all([claimPlan(store, plan, 'ro-1', clock), claimPlan(store, plan, 'ro-2', clock)]);
        await s.waitFor(both);
        const [one, two] = await both;
        expect([one === undefined, two === undefined].sort()).toEqual([false, true]);
        const winner = one === undefined ? 'ro-1' : 'ro-2';
        expect([...claims.values()].map((c) => c.rolloutId)).toEqual(plan.map(() => winner));
      }),
      { seed: 4242, numRuns: 200 },
    );
  });
});
