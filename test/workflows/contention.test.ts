// Many writers on one reboot at once (in-process stack): every valid request gets a documented answer, never a 5xx.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRebootStore } from '../../lambdas/adapters/dynamo-store.ts';
import { REBOOT_BOUNDS } from '../../lambdas/core/bounds.ts';
import { hashToken } from '../../lambdas/core/inventory.ts';
import { loadMapping } from '../../lambdas/core/redfish/mapping.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { createApiApp } from '../../lambdas/handlers/api.ts';
import { OPERATOR_TOKEN, phases, startHarness, tokenOf, type Harness } from './harness.ts';

/** Many extensions and seconds, so grants and refusals interleave; one node for the whole file. */
const POLICY = { maxExtensions: 12, maxExtensionSeconds: 2400 };
const NODE = 'busy';
const INVENTORY = `
policy:
  xpuReboot: { noticeSeconds: 300, maxExtensionSeconds: ${POLICY.maxExtensionSeconds}, maxExtensions: ${POLICY.maxExtensions}, recoverySeconds: 900, coredumpSeconds: 120, heartbeatSeconds: 60, commandSeconds: 120 }
  hostReboot: { denyWhile: [xpu-rebooting], returnSeconds: 1800, commandSeconds: 120, heartbeatSeconds: 60 }
nodes:
  - { id: ${NODE}, rack: r1, zone: z1, tenant: t1, trusted: true, agentToken: ${tokenOf(NODE)}, xpus: [{ id: dpu0, persistentPower: false }] }
`;
const SEED = 20261206;
/** Requests in flight at once, as in the report that found it (8 agents' retries on one reboot). */
const PARALLEL = 8;

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ inventory: INVENTORY });
});
afterAll(async () => {
  await h?.close();
});

let made = 0;
/**
 * A reboot in its notice phase with a history already at its cap (the "long history" of the report),
 * written straight to the store: the routes under test need no workflow behind it.
 */
async function busyReboot(): Promise<StoredReboot> {
  const node = (await h.stack.deps.inventory()).node(NODE)!;
  const at = h.now().toISOString();
  const ev: NativeEvent = {
    id: `contention-${++made}`,
    type: 'xpu.reboot.pending',
    node: NODE,
    xpu: 'dpu0',
    time: at,
    receivedAt: at,
    source: 'native',
    dedupKey: `native:${NODE}:contention-${made}`,
    data: { reason: 'firmware' },
  };
  const r = newXpuReboot(`xr-contention-${made}-${Date.now()}`, node, 'dpu0', ev, 'planned');
  const filler = 'x'.repeat(REBOOT_BOUNDS.detail);
  for (let i = 0; r.history.length < REBOOT_BOUNDS.historyHead + REBOOT_BOUNDS.historyTail; i++)
    r.history.push({ at, phase: 'heartbeat', detail: `${i} ${filler}`, by: 'coordinator' });
  expect(await h.stack.deps.store.createReboot(r)).toBe(true);
  return r;
}

interface Ask {
  seconds: number;
  /** An Idempotency-Key from a small pool, so repeats race each other. */
  key?: string;
}
interface Answer extends Ask {
  status: number;
  json: any;
  replayed: boolean;
}
type Send = (id: string, ask: Ask) => Promise<Answer>;

/** Over HTTP to the stack's one API (one process: its writers share one store). */
const overHttp: Send = async (id, ask) => {
  const res = await fetch(`${h.url}/v1/reboots/${id}/extensions`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${tokenOf(NODE)}`,
      'content-type': 'application/json',
      ...(ask.key ? { 'idempotency-key': ask.key } : {}),
    },
    body: JSON.stringify({ seconds: ask.seconds, reason: 'draining takes longer' }),
  });
  return { ...ask, status: res.status, json: await res.json(), replayed: res.headers.get('idempotent-replayed') === 'true' };
};

/** Round robin over API apps with a store each, as separate Lambda instances in AWS: no writer of one sees another's. */
function overInstances(n: number): Send {
  const apps = Array.from({ length: n }, () =>
    createApiApp({
      ...h.stack.deps,
      store: new DynamoRebootStore(h.stack.dynamo.client, h.stack.dynamo.table),
      operatorTokenHash: hashToken(OPERATOR_TOKEN),
      mapping: loadMapping(null),
    }),
  );
  let next = 0;
  return async (id, ask) => {
    const app = apps[next++ % n];
    const res = await app.request(`/v1/reboots/${id}/extensions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokenOf(NODE)}`,
        'content-type': 'application/json',
        ...(ask.key ? { 'idempotency-key': ask.key } : {}),
      },
      body: JSON.stringify({ seconds: ask.seconds, reason: 'draining takes longer' }),
    });
    return { ...ask, status: res.status, json: await res.json(), replayed: res.headers.get('idempotent-replayed') === 'true' };
  };
}

/** Sends every ask, PARALLEL at a time, each worker taking the next as soon as its last was answered. */
async function fire(id: string, asks: Ask[], send: Send): Promise<Answer[]> {
  const answers: Answer[] = new Array(asks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < asks.length) {
        const i = next++;
        answers[i] = await send(id, asks[i]);
      }
    }),
  );
  return answers;
}

/** What the answers and the stored reboot must agree on, whatever the interleaving. */
function assess(before: StoredReboot, after: StoredReboot, answers: Answer[]) {
  const unexpected = answers.filter((a) => a.status !== 200 && a.status !== 409);
  expect(unexpected.map((a) => `${a.status} ${JSON.stringify(a.json)}`)).toEqual([]);
  for (const a of answers) {
    if (a.status === 200) {
      expect(a.json).toEqual({ granted: expect.any(Number), deadline: expect.any(String) });
      expect(a.json.granted).toBeGreaterThan(0);
      expect(a.json.granted).toBeLessThanOrEqual(a.seconds);
    } else
      expect(a.json).toEqual({ error: expect.stringMatching(/^(MaxExtensions|NoExtensionSecondsLeft)$/), message: expect.any(String) });
  }

  // A key answers its first answer, to every repeat, racing or not; and only one of them is the original.
  const byKey = Map.groupBy(
    answers.filter((a) => a.key),
    (a) => a.key!,
  );
  for (const [key, same] of byKey) {
    for (const a of same) expect({ key, status: a.status, json: a.json }).toEqual({ key, status: same[0].status, json: same[0].json });
    expect(same.filter((a) => !a.replayed).length, `originals of key ${key}`).toBeLessThanOrEqual(1);
  }

  // Every grant answered is on the reboot once, and nothing else is: keyed repeats grant nothing more.
  const firsts = [...answers.filter((a) => !a.key), ...[...byKey.values()].map((same) => same[0])];
  const grants = firsts.filter((a) => a.status === 200);
  const refusals = firsts.filter((a) => a.status === 409);
  expect(after.extensions.map((e) => e.granted).sort()).toEqual(grants.map((a) => a.json.granted).sort());
  expect(after.extensions.map((e) => e.deadline).sort()).toEqual(grants.map((a) => a.json.deadline).sort());
  const total = after.extensions.reduce((s, e) => s + e.granted, 0);
  expect(total).toBeLessThanOrEqual(POLICY.maxExtensionSeconds);
  expect(after.deadline).toBe(new Date(Date.parse(before.deadline!) + total * 1000).toISOString());
  const keyed = after.extensions.filter((e) => e.idempotencyKey).map((e) => e.idempotencyKey);
  expect(new Set(keyed).size).toBe(keyed.length);
  expect(after.refusalCount ?? 0).toBe(refusals.length);

  // Bounded however many asked, and every entry accounted for (kept or counted as dropped).
  expect(after.history.length).toBeLessThanOrEqual(REBOOT_BOUNDS.historyHead + REBOOT_BOUNDS.historyTail);
  expect(after.refusals.length).toBeLessThanOrEqual(REBOOT_BOUNDS.refusals);
  expect(after.history.length + (after.historyDropped ?? 0)).toBe(before.history.length + grants.length + refusals.length);
  expect(phases(after).slice(-1)[0]).toMatch(/^(extended|extension-refused)$/);
}

/** A key stands for one request of one agent: its repeats carry the same body. */
const KEYS: Record<string, number> = { k0: 30, k1: 90, k2: 200, k3: 400, k4: 7 };
const ask: fc.Arbitrary<Ask> = fc.oneof(
  // Unkeyed asks twice as often as each of the five keys: every key is repeated many times, often at once.
  { weight: 10, arbitrary: fc.record({ seconds: fc.integer({ min: 1, max: 400 }) }) },
  { weight: 5, arbitrary: fc.constantFrom(...Object.keys(KEYS)).map((key) => ({ seconds: KEYS[key], key })) },
);

describe('extensions racing on one reboot with a long history', () => {
  it('600 asks, 8 at a time, to one API: every answer is 200 or 409 and the grants add up', async () => {
    const asks = fc.sample(fc.array(ask, { minLength: 600, maxLength: 600 }), { seed: SEED, numRuns: 1 })[0];
    const before = await busyReboot();
    const answers = await fire(before.id, asks, overHttp);
    assess(before, await h.reboot(before.id), answers);
  });

  it('the same across 8 API instances with a store each (no shared process to queue them)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(ask, { minLength: 300, maxLength: 300 }), async (asks) => {
        const before = await busyReboot();
        const answers = await fire(before.id, asks, overInstances(PARALLEL));
        assess(before, await h.reboot(before.id), answers);
      }),
      // Each run is a fresh reboot; shrinking re-runs a few hundred requests a step, so it stops early.
      { seed: SEED, numRuns: 2, endOnFailure: true },
    );
  });
});
