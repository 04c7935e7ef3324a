// Many writers on one reboot at once (in-process stack): every valid request gets a documented answer, never a 5xx.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRolloutStore } from '../../lambdas/adapters/dynamo-rollouts.ts';
import { DynamoRebootStore } from '../../lambdas/adapters/dynamo-store.ts';
import { REBOOT_BOUNDS } from '../../lambdas/core/bounds.ts';
import { hashToken } from '../../lambdas/core/inventory.ts';
import { loadMapping } from '../../lambdas/core/redfish/mapping.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { createApiApp } from '../../lambdas/handlers/api.ts';
import { eventually, OPERATOR_TOKEN, phases, startHarness, tokenOf, type Harness } from './harness.ts';

/** Many extensions and seconds, so grants and refusals interleave; one node for the whole file. */
const POLICY = { maxExtensions: 12, maxExtensionSeconds: 2400 };
const NODE = 'busy';
const INVENTORY = `
policy:
  xpuReboot: { noticeSeconds: 300, maxExtensionSeconds: ${POLICY.maxExtensionSeconds}, maxExtensions: ${POLICY.maxExtensions}, recoverySeconds: 900, coredumpSeconds: 120, heartbeatSeconds: 60, commandSeconds: 120 }
  hostReboot: { denyWhile: [xpu-rebooting], returnSeconds: 1800, commandSeconds: 120, heartbeatSeconds: 60 }
nodes:
${[NODE, 'race1', 'race2', 'race3'].map((n) => `  - { id: ${n}, rack: r1, zone: z1, tenant: t1, trusted: true, agentToken: ${tokenOf(n)}, xpus: [{ id: dpu0, persistentPower: false }] }`).join('\n')}
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

/** The extension request of one ask, as the node's host agent sends it. */
const extensionRequest = (node: string, ask: Ask): RequestInit => ({
  method: 'POST',
  headers: {
    authorization: `Bearer ${tokenOf(node)}`,
    'content-type': 'application/json',
    ...(ask.key ? { 'idempotency-key': ask.key } : {}),
  },
  body: JSON.stringify({ seconds: ask.seconds, reason: 'draining takes longer' }),
});
const answerOf = async (ask: Ask, res: Response): Promise<Answer> => ({
  ...ask,
  status: res.status,
  json: await res.json(),
  replayed: res.headers.get('idempotent-replayed') === 'true',
});

/** Over HTTP to the stack's one API (one process: its writers share one store). */
const overHttp =
  (node = NODE): Send =>
  async (id, ask) =>
    answerOf(ask, await fetch(`${h.url}/v1/reboots/${id}/extensions`, extensionRequest(node, ask)));

/** Round robin over API apps with a store each, as separate Lambda instances in AWS: no writer of one sees another's. */
function overInstances(n: number, node = NODE): Send {
  const apps = Array.from({ length: n }, () =>
    createApiApp({
      ...h.stack.deps,
      store: new DynamoRebootStore(h.stack.dynamo.client, h.stack.dynamo.table),
      operatorTokenHash: hashToken(OPERATOR_TOKEN),
      mapping: loadMapping(null),
    }),
  );
  let next = 0;
  return async (id, ask) => answerOf(ask, await apps[next++ % n].request(`/v1/reboots/${id}/extensions`, extensionRequest(node, ask)));
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

/**
 * What the answers and the stored reboot must agree on, whatever the interleaving. `others`: other
 * writers (a cancel, results) raced the asks: the notice phase may end under them, and the history
 * has their entries too.
 */
function assess(before: StoredReboot, after: StoredReboot, answers: Answer[], others = false) {
  const unexpected = answers.filter((a) => a.status !== 200 && a.status !== 409);
  expect(unexpected.map((a) => `${a.status} ${JSON.stringify(a.json)}`)).toEqual([]);
  for (const a of answers) {
    if (a.status === 200) {
      expect(a.json).toEqual({ granted: expect.any(Number), deadline: expect.any(String) });
      expect(a.json.granted).toBeGreaterThan(0);
      expect(a.json.granted).toBeLessThanOrEqual(a.seconds);
    } else
      expect(a.json).toEqual({
        error: expect.stringMatching(
          others ? /^(MaxExtensions|NoExtensionSecondsLeft|PastNoticePhase)$/ : /^(MaxExtensions|NoExtensionSecondsLeft)$/,
        ),
        message: expect.any(String),
      });
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
  const entries = after.history.length + (after.historyDropped ?? 0);
  if (others) expect(entries).toBeGreaterThan(before.history.length + grants.length + refusals.length);
  else {
    expect(entries).toBe(before.history.length + grants.length + refusals.length);
    expect(phases(after).slice(-1)[0]).toMatch(/^(extended|extension-refused)$/);
  }
}

/** A key stands for one request of one agent: its repeats carry the same body. */
const KEYS: Record<string, number> = { k0: 30, k1: 90, k2: 200, k3: 400, k4: 7 };
const ask: fc.Arbitrary<Ask> = fc.oneof(
  // Two asks in three unkeyed, the rest over five keys: each key is repeated many times, often at once.
  { weight: 10, arbitrary: fc.record({ seconds: fc.integer({ min: 1, max: 400 }) }) },
  { weight: 5, arbitrary: fc.constantFrom(...Object.keys(KEYS)).map((key) => ({ seconds: KEYS[key], key })) },
);

describe('extensions racing on one reboot with a long history', () => {
  it('600 asks, 8 at a time, to one API: every answer is 200 or 409 and the grants add up', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(ask, { minLength: 600, maxLength: 600 }), async (asks) => {
        const before = await busyReboot();
        const answers = await fire(before.id, asks, overHttp());
        assess(before, await h.reboot(before.id), answers);
      }),
      // One seeded plan; the interleaving is the machine's. No shrinking: each step is 600 more requests.
      { seed: SEED, numRuns: 1, endOnFailure: true },
    );
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

describe('a repeat held up while refusals pile on', () => {
  it("still answers its key's first refusal, replayed, and is not counted again once that refusal left the reboot", async () => {
    const before = await busyReboot();
    const send = overHttp();
    expect((await send(before.id, { seconds: POLICY.maxExtensionSeconds })).status).toBe(200); // nothing left to grant

    // B looks its key up (nothing stored yet), then is held before it decides.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let lookedUp!: () => void;
    const afterLookUp = new Promise<void>((r) => (lookedUp = r));
    const heldStore = new Proxy(h.stack.deps.store, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        const bound = value.bind(target); // its private fields are the target's
        if (prop === 'getIdempotentAnswer')
          return async (...args: unknown[]) => {
            const out = await bound(...args);
            lookedUp();
            return out;
          };
        if (prop === 'updateReboot')
          return async (...args: unknown[]) => {
            await held;
            return bound(...args);
          };
        return bound;
      },
    });
    const b = createApiApp({ ...h.stack.deps, store: heldStore, operatorTokenHash: hashToken(OPERATOR_TOKEN), mapping: loadMapping(null) });
    const ask = { authorization: `Bearer ${tokenOf(NODE)}`, 'content-type': 'application/json', 'idempotency-key': 'held' };
    const repeat = b.request(`/v1/reboots/${before.id}/extensions`, {
      method: 'POST',
      headers: ask,
      body: JSON.stringify({ seconds: 60 }),
    });
    await afterLookUp;

    // A, the same request, is refused and stores its answer; then more refusals push A's off the reboot.
    const first = await send(before.id, { seconds: 60, key: 'held' });
    expect(first).toMatchObject({ status: 409, replayed: false, json: { error: 'NoExtensionSecondsLeft' } });
    for (let i = 0; i < REBOOT_BOUNDS.refusals + 5; i++) expect((await send(before.id, { seconds: 1 })).status).toBe(409);
    const crowded = await h.reboot(before.id);
    expect(crowded.refusals.some((x) => x.idempotencyKey?.endsWith(' held'))).toBe(false);

    release();
    const res = await repeat;
    expect({ status: res.status, json: await res.json(), replayed: res.headers.get('idempotent-replayed') }).toEqual({
      status: first.status,
      json: first.json,
      replayed: 'true',
    });
    expect((await h.reboot(before.id)).refusalCount).toBe(1 + REBOOT_BOUNDS.refusals + 5);
  });
});

describe('extensions racing the other writers of one reboot', () => {
  /**
   * A reboot announced for real (its workflow waits in PrepareHost), then at once: 120 asks 8 at a
   * time; the host's agent posting heartbeats and (repeated) results for both prep commands; and,
   * once 20 asks were answered, three `control` requests of the operator's at once.
   */
  async function race(node: string, control: 'cancel' | 'force') {
    const posted = await h.event(node, 'xpu.reboot.pending', { xpu: 'dpu0', data: { reason: 'firmware' } });
    expect(posted.status).toBe(202);
    await h.drain();
    const before = await h.rebootOf(node, 'xpu', 'dpu0');
    await h.waitForState(before.id, 'PrepareHost');
    const host = h.agent(node);
    const prep = await host.poll();
    expect(prep.map((c) => c.type).sort()).toEqual(['migrate-workloads', 'protect-pcie']);

    const asks = fc.sample(fc.array(ask, { minLength: 120, maxLength: 120 }), {
      seed: SEED + (control === 'cancel' ? 1 : 2),
      numRuns: 1,
    })[0];
    let answered = 0;
    const send = overHttp(node);
    const counted: Send = async (id, a) => {
      const out = await send(id, a);
      answered++;
      return out;
    };
    const results = Promise.all(
      prep.map(async (c) => {
        const beats = [];
        for (let i = 0; i < 10; i++) beats.push(await host.post(c.id, 'running'));
        return [...beats, ...(await Promise.all([0, 1, 2].map(() => host.post(c.id, 'succeeded'))))];
      }),
    );
    const controls = (async () => {
      await eventually('20 asks answered', async () => answered >= 20);
      return Promise.all([0, 1, 2].map(() => h.request(`/v1/reboots/${before.id}/${control}`, { body: { reason: 'racing' } })));
    })();
    const [answers, posts, controlled] = await Promise.all([fire(before.id, asks, counted), results, controls]);

    for (const p of posts.flat())
      expect({ status: p.status, json: p.json }).toEqual({ status: 200, json: expect.objectContaining({ id: expect.any(String) }) });
    for (const c of controlled) expect([200, 409], JSON.stringify(c.json)).toContain(c.status);
    // Repeats of one operator's control answer as the first did (a repeated cancel or force is a 200 again).
    expect(new Set(controlled.map((c) => c.status)).size).toBe(1);
    for (const c of controlled.filter((x) => x.status === 409)) expect(c.json.error).toBe('PastNoticePhase');
    const after = await h.reboot(before.id);
    assess(before, after, answers, true);
    return { after, controlled };
  }

  it("a cancel and the host agent's results: every answer is documented, the grants add up, the reboot ends cancelled", async () => {
    const { after, controlled } = await race('race1', 'cancel');
    // A cancel repeated answers as the first; one refused came after the xPU was told to reboot.
    if (controlled.some((c) => c.status === 200)) expect(after.status).toBe('cancelled');
    expect(phases(after).filter((p) => p === 'cancelled').length).toBe(controlled.some((c) => c.status === 200) ? 1 : 0);
  });

  it("a force and the host agent's results: the same, and the reboot is forced once", async () => {
    const { after, controlled } = await race('race2', 'force');
    if (controlled.some((c) => c.status === 200)) expect(after.forced).toBe(true);
    expect(phases(after).filter((p) => p === 'forced').length).toBeLessThanOrEqual(1);
  });
});

describe('grants racing on a reboot whose host is preparing', () => {
  it('the open prep commands end at the last deadline granted, not at one a slower request computed', async () => {
    const posted = await h.event('race3', 'xpu.reboot.pending', { xpu: 'dpu0', data: { reason: 'firmware' } });
    expect(posted.status).toBe(202);
    await h.drain();
    const before = await h.rebootOf('race3', 'xpu', 'dpu0');
    await h.waitForState(before.id, 'PrepareHost');
    const prep = await h.agent('race3').poll();
    expect(prep).toHaveLength(2);

    // A's grant is written first, then its move of the commands is held until B's grant and move are done.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const slowStore = new Proxy(h.stack.deps.store, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        if (prop !== 'moveNoticeDeadline') return value.bind(target); // its private fields are the target's
        return async (...args: unknown[]) => {
          await held;
          return value.apply(target, args);
        };
      },
    });
    const api = (store: typeof slowStore) =>
      createApiApp({ ...h.stack.deps, store, operatorTokenHash: hashToken(OPERATOR_TOKEN), mapping: loadMapping(null) });
    const ask = (app: ReturnType<typeof api>) =>
      app.request(`/v1/reboots/${before.id}/extensions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokenOf('race3')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ seconds: 60, reason: 'draining' }),
      });
    const slow = ask(api(slowStore));
    await eventually('the slow grant written', async () => (await h.reboot(before.id)).extensions.length === 1);
    const fast = await ask(api(h.stack.deps.store));
    expect(fast.status).toBe(200);
    release();
    expect((await slow).status).toBe(200);

    const after = await h.reboot(before.id);
    expect(after.deadline).toBe(new Date(Date.parse(before.deadline!) + 120_000).toISOString());
    for (const c of prep) expect((await h.stack.deps.store.getCommand('race3', c.id))?.deadline, c.type).toBe(after.deadline);
  });
});

describe('the other items many write at once', () => {
  const EACH = 50;
  /** Each of `writers` (a store each, as Lambda instances) makes `each` changes one after another; all at once. */
  async function hammer<S>(stores: S[], each: number, write: (store: S, writer: number, i: number) => Promise<unknown>) {
    const outcomes = await Promise.allSettled(
      stores.map(async (store, w) => {
        for (let i = 0; i < each; i++) await write(store, w, i);
      }),
    );
    expect(outcomes.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason))).toEqual([]);
  }

  it('a rollout changed by 8 instances at once keeps every change', async () => {
    const stores = Array.from({ length: PARALLEL }, () => new DynamoRolloutStore(h.stack.dynamo.client, h.stack.dynamo.table));
    const id = `ro-contention-${Date.now()}`;
    const at = h.now().toISOString();
    expect(
      await stores[0].createRollout({
        id,
        status: 'running',
        selector: {},
        maxUnavailable: 1,
        maxFailures: 1,
        reason: 'contention',
        createdAt: at,
        items: [],
        history: [],
        version: 0,
      }),
    ).toBe(true);
    await hammer(stores, EACH, (store, w, i) =>
      store.updateRollout(id, (r) => ({ ...r, history: [...r.history, { at, phase: 'note', detail: `${w}.${i}` }] })),
    );
    const after = await stores[0].getRollout(id);
    expect(after?.history).toHaveLength(PARALLEL * EACH);
    expect(after?.version).toBe(PARALLEL * EACH);
  });

  it('a command changed by 8 instances at once keeps every change', async () => {
    const stores = Array.from({ length: PARALLEL }, () => new DynamoRebootStore(h.stack.dynamo.client, h.stack.dynamo.table));
    const r = await busyReboot();
    const cmd = {
      id: `${r.id}-cmd`,
      type: 'migrate-workloads' as const,
      rebootId: r.id,
      node: NODE,
      xpu: null,
      args: {},
      agent: NODE,
      step: 'prepare',
      status: 'pending' as const,
      noticePhase: true,
      createdAt: h.now().toISOString(),
      deadline: r.deadline!,
    };
    expect(await h.stack.deps.store.putCommand(cmd)).toBe(true);
    await hammer(stores, EACH, (store, w, i) =>
      store.updateCommand(NODE, cmd.id, (c) => ({ ...c, output: `${c.output ?? ''}${w}.${i};` })),
    );
    const after = await h.stack.deps.store.getCommand(NODE, cmd.id);
    expect(after?.output?.split(';').filter(Boolean)).toHaveLength(PARALLEL * EACH);
  });
});
