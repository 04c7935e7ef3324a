// When a rollout's claim on an xPU keeps another rollout off it (docs/fleet-safety.md, "Two starts at once"):
// while its rollout still has to reboot the xPU, or, with no rollout record, while its start may still write one.
import { describe, expect, it } from 'vitest';
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
