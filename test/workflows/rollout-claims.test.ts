// Two rollout starts over the same xPUs at the same moment, on two API instances (as two Lambdas): one is
// started, the other refused (409 RolloutOverlap), and a start killed between its claims and its record
// does not lock its xPUs for ever (docs/fleet-safety.md, "Two rollout starts at once"). Also: GET
// /v1/rollouts checks its limit as GET /v1/reboots does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRolloutStore } from '../../lambdas/adapters/dynamo-rollouts.ts';
import { hashToken } from '../../lambdas/core/inventory.ts';
import { loadMapping } from '../../lambdas/core/redfish/mapping.ts';
import { ROLLOUT_CLAIM_LIFETIME_MS, type Rollout } from '../../lambdas/core/rollout.ts';
import { createApiApp } from '../../lambdas/handlers/api.ts';
import { eventually, OPERATOR_TOKEN, oneXpuInventory, startHarness, type Harness } from './harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ inventory: oneXpuInventory(['a', 'b', 'c', 'd', 'e', 'f', 'g']) });
});
afterAll(async () => {
  await h?.close();
});

/**
 * Stores of two API instances whose starts both read the rollout list before either writes its record:
 * the interleaving in which overlapOf alone lets both through.
 */
function racingStores(): DynamoRolloutStore[] {
  let listed = 0;
  let open!: () => void;
  const bothListed = new Promise<void>((resolve) => {
    open = resolve;
  });
  class Racing extends DynamoRolloutStore {
    override async listRollouts(limit: number): Promise<Rollout[]> {
      const found = await super.listRollouts(limit);
      if (++listed === 2) open();
      return found;
    }
    override async createRollout(r: Rollout): Promise<boolean> {
      await bothListed;
      return super.createRollout(r);
    }
  }
  return [0, 1].map(() => new Racing(h.stack.dynamo.client, h.stack.dynamo.table));
}

const instance = (rollouts: DynamoRolloutStore) =>
  createApiApp({ ...h.stack.deps, rollouts, operatorTokenHash: hashToken(OPERATOR_TOKEN), mapping: loadMapping(null) });
const start = async (app: ReturnType<typeof instance>, selector: Record<string, string>) => {
  const res = await app.request('/v1/rollouts', {
    method: 'POST',
    headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ selector, maxUnavailable: 1, reason: 'claims' }),
  });
  return { status: res.status, json: (await res.json()) as any };
};
const cancel = (id: string) => h.request(`/v1/rollouts/${id}/cancel`, { body: { reason: 'test over' } });

describe('two starts at once', () => {
  it('over the same xPU on two instances: one 201, one 409 RolloutOverlap, and one rollout stored', async () => {
    const [s1, s2] = racingStores();
    const answers = await Promise.all([start(instance(s1), { node: 'a' }), start(instance(s2), { node: 'a' })]);
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409]);
    const refused = answers.find((a) => a.status === 409)!;
    const started = answers.find((a) => a.status === 201)!;
    expect(refused.json.error).toBe('RolloutOverlap');
    expect(refused.json.message).toContain(started.json.id);
    const stored = (await h.stack.deps.rollouts!.listRollouts(100)).filter((r) => r.items.some((it) => it.node === 'a'));
    expect(stored.map((r) => r.id)).toEqual([started.json.id]);
    expect((await h.stack.deps.rollouts!.getXpuClaim('a', 'dpu0'))?.rolloutId).toBe(started.json.id);
    expect((await cancel(started.json.id)).status).toBe(200);
  });

  it('over the whole fleet: one gets every xPU, the refused start leaves none of its claims behind', async () => {
    const [s1, s2] = racingStores();
    const answers = await Promise.all([start(instance(s1), {}), start(instance(s2), {})]);
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409]);
    const started = answers.find((a) => a.status === 201)!;
    const all = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
    for (const n of all) expect((await h.stack.deps.rollouts!.getXpuClaim(n, 'dpu0'))?.rolloutId, n).toBe(started.json.id);
    // Cancelled, its workflow ends and gives every claim back.
    expect((await cancel(started.json.id)).status).toBe(200);
    for (const n of all) await eventually(`${n} released`, async () => (await h.stack.deps.rollouts!.getXpuClaim(n, 'dpu0')) === undefined);
  });
});

describe('a start killed between its claims and its record', () => {
  it('keeps the xPU while it could still write its record, and frees it once its claim outlived that', async () => {
    // What a kill -9 after the claim leaves: a claim whose rollout was never written.
    const ghost = 'ro-killed-before-its-record';
    expect(await h.stack.deps.rollouts!.claimXpu({ node: 'g', xpu: 'dpu0', rolloutId: ghost, at: h.now().toISOString() })).toBe(true);
    const app = instance(new DynamoRolloutStore(h.stack.dynamo.client, h.stack.dynamo.table));
    const early = await start(app, { node: 'g' });
    expect(early.status).toBe(409);
    expect(early.json.error).toBe('RolloutOverlap');
    expect(early.json.message).toContain(ghost);
    await h.advance(ROLLOUT_CLAIM_LIFETIME_MS + 1000);
    const later = await start(app, { node: 'g' });
    expect(later.status).toBe(201);
    expect((await h.stack.deps.rollouts!.getXpuClaim('g', 'dpu0'))?.rolloutId).toBe(later.json.id);
    expect((await cancel(later.json.id)).status).toBe(200);
  });
});

describe('GET /v1/rollouts?limit=', () => {
  it('a limit that is not a whole number from 1 is a 400 ValidationError, worded as on /v1/reboots; above 100, 100 at most', async () => {
    for (const bad of ['abc', '0', '-1', '1.5', '%20']) {
      const rollouts = await h.request(`/v1/rollouts?limit=${bad}`);
      const reboots = await h.request(`/v1/reboots?limit=${bad}`);
      expect([rollouts.status, rollouts.json.error], bad).toEqual([400, 'ValidationError']);
      expect(rollouts.json.message, bad).toBe(reboots.json.message);
    }
    for (const n of [1, 2]) expect((await h.request(`/v1/rollouts?limit=${n}`)).json.items).toHaveLength(n);
    const many = await h.request('/v1/rollouts?limit=500');
    expect(many.status).toBe(200);
    expect(many.json.items.length).toBeGreaterThanOrEqual(3);
    expect(many.json.items.length).toBeLessThanOrEqual(100);
  });

  it('an empty parameter is one not given: the route table written out (?node=&status=&limit=&cursor=) answers the default page', async () => {
    const all = await h.request('/v1/reboots');
    const empty = await h.request('/v1/reboots?node=&status=&limit=&cursor=');
    expect(empty.status).toBe(200);
    expect(empty.json).toEqual(all.json);
    const rollouts = await h.request('/v1/rollouts?limit=');
    expect(rollouts.status).toBe(200);
    expect(rollouts.json).toEqual((await h.request('/v1/rollouts')).json);
    // Given and wrong is still a 400.
    expect((await h.request('/v1/reboots?status=nope')).status).toBe(400);
  });
});
