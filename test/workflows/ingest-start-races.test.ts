// The start of an xPU reboot (lambdas/handlers/reboot-ids.ts lookUpStart, handlers/ingest.ts) under every
// interleaving fast-check picks of two deliveries of one event, on the real store (dynalite) and engine: the id
// mapping is put beside the look-up, so these are the cases that ordering must survive. One delivery may die
// before or after any of its calls (a crash with the write done or not); a retry then runs alone. Each case
// must end with one reboot, under the id its event maps to, holding its xPU's claim, with one execution.
// Seeded; a failure prints the seed and the case (FC_SEED reproduces it).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIngestHandler, type IngestOutcome } from '../../lambdas/handlers/ingest.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { legacyRebootId } from '../../lambdas/core/ids.ts';
import { newXpuReboot } from '../../lambdas/core/reboot.ts';
import { startHarness, type Harness, oneXpuInventory } from './harness.ts';
import { CLAIM_AHEAD_LIFETIME_MS } from '../../lambdas/handlers/claim-ahead.ts';

const SEED = Number(process.env.FC_SEED ?? 20261206);
const RUNS = Number(process.env.FC_RUNS ?? 24);
const POOL = RUNS + 8;
const NODES = Array.from({ length: POOL }, (_, i) => `r${i}`);
const INVENTORY = oneXpuInventory(NODES);

let h: Harness;
let nextNode = 0;
beforeAll(async () => {
  h = await startHarness({ inventory: INVENTORY });
}, 30_000);
afterAll(async () => {
  await h?.close();
});

class Crash extends Error {
  override readonly name = 'Crash';
}

/**
 * Runs deliveries whose store and workflow calls each wait at a gate, and opens one gate at a time: the
 * one `choices` picks among those waiting, once no opened call is still running. So the order of every
 * call of every delivery is the choices' (a delivery that runs two calls side by side has two gates).
 */
class Interleaver {
  readonly #waiting: Array<{ who: number; what: string; open: () => void }> = [];
  #running = 0;
  readonly log: string[] = [];
  /** Claims taken ahead and given back: [who, reboot id], to tell a delivery's own give-back from a dangling claim's release. */
  readonly ahead: Array<{ who: number; what: string; id: unknown }> = [];

  /** `deps` for delivery `who`: store and workflows gated; `crash` says before/after which of its calls it dies. */
  deps(who: number, crash?: { at: number; after: boolean }) {
    let calls = 0;
    const gate = <T extends object>(target: T, kind: string): T =>
      new Proxy(target, {
        get: (t, prop) => {
          const value = Reflect.get(t, prop, t);
          if (typeof value !== 'function') return value;
          return async (...args: unknown[]) => {
            const n = calls++;
            const what = `${kind}.${String(prop)}`;
            await new Promise<void>((open) => this.#waiting.push({ who, what, open }));
            this.log.push(`${who}:${what}`);
            if (what === 'store.claimXpuAhead' || what === 'store.releaseAhead') this.ahead.push({ who, what, id: args[2] });
            if (crash && crash.at === n && !crash.after) throw new Crash(`delivery ${who} died before ${what}`);
            this.#running++;
            try {
              const out = await value.apply(t, args);
              if (crash && crash.at === n && crash.after) throw new Crash(`delivery ${who} died after ${what}`);
              return out;
            } finally {
              this.#running--;
            }
          };
        },
      });
    return { ...h.stack.deps, store: gate(h.stack.deps.store, 'store'), workflows: gate(h.stack.deps.workflows, 'workflows') };
  }

  /** Drives `runs` to their end, opening gates in the order `choices` say (cycled). */
  async drive<T>(runs: Array<Promise<T>>, choices: number[]): Promise<Array<PromiseSettledResult<T>>> {
    let done = false;
    const all = Promise.allSettled(runs).finally(() => {
      done = true;
    });
    for (let step = 0; !done; step++) {
      // Quiet: nothing opened is still running, and a turn of the loop passed (microtasks ran).
      await new Promise((r) => setImmediate(r));
      if (this.#running > 0 || this.#waiting.length === 0) continue;
      // Deterministic: waiting calls in the order (delivery, name) whatever order they arrived in.
      this.#waiting.sort((a, b) => a.who - b.who || a.what.localeCompare(b.what));
      const [next] = this.#waiting.splice(choices[step % choices.length] % this.#waiting.length, 1);
      next.open();
    }
    return all;
  }
}

function event(node: string, id: string): NativeEvent {
  const at = h.now().toISOString();
  return {
    id,
    type: 'xpu.reboot.pending',
    node,
    xpu: 'dpu0',
    time: at,
    receivedAt: at,
    source: 'native',
    dedupKey: `native:${node}:${id}`,
    data: {},
  };
}

/** What must hold once every delivery (and the retry) is done; empty when it does. */
async function violations(ev: NativeEvent, outcomes: IngestOutcome[]): Promise<string[]> {
  const bad: string[] = [];
  const mapped = await h.stack.deps.store.rebootIdOfEvent(ev.dedupKey);
  const reboots = await h.reboots(ev.node);
  if (reboots.length !== 1) bad.push(`${reboots.length} reboots: ${reboots.map((r) => r.id)}`);
  if (mapped !== reboots[0]?.id) bad.push(`event maps to ${mapped}, reboot is ${reboots[0]?.id}`);
  const state = await h.stack.deps.store.getNodeState(ev.node);
  const claim = state.xpus.dpu0;
  if (claim !== mapped) bad.push(`the claim is held by ${claim}, not ${mapped}`);
  // A claim taken ahead and not used is gone (the one left, if any, is the reboot's own, taken ahead by its minter).
  for (const [x, c] of Object.entries(state.claimsAhead ?? {}))
    if (state.xpus[x] !== mapped || c.key !== ev.dedupKey) bad.push(`a claim ahead on ${x} for ${c.key}, held by ${state.xpus[x]}`);
  if (claim && !(await h.stack.deps.store.getReboot(claim))) bad.push(`the claim's holder ${claim} is not stored`);
  for (const o of outcomes)
    if (o.kind !== 'duplicate' && !(o.kind === 'started' && o.rebootId === mapped)) bad.push(`outcome ${JSON.stringify(o)}`);
  const executions = h.stack.engine
    .listExecutions({ stateMachineArn: h.stack.workflowArns['xpu-reboot'], maxResults: 1000 })
    .executions.filter((e) => e.name === mapped);
  if (executions.length !== 1) bad.push(`${executions.length} executions named ${mapped}`);
  return bad;
}

describe('starting an xPU reboot: two deliveries of one event, interleaved, one maybe dying', () => {
  it(`one reboot, mapped, claimed and running, whatever the order (${RUNS} cases, seed ${SEED})`, async () => {
    let crashed = 0;
    let dangling = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
        fc.option(fc.record({ at: fc.nat({ max: 9 }), after: fc.boolean() }), { nil: undefined }),
        async (choices, crash) => {
          const node = NODES[nextNode++];
          const ev = event(node, `race-${nextNode}`);
          const il = new Interleaver();
          const [a, b] = await il.drive(
            [createIngestHandler(il.deps(0, crash))({ ...ev }), createIngestHandler(il.deps(1))({ ...ev })],
            choices,
          );
          const outcomes: IngestOutcome[] = [];
          for (const r of [a, b]) {
            if (r.status === 'fulfilled') outcomes.push(r.value);
            else if ((r.reason as Error).name !== 'Crash') {
              console.log(`case: choices ${JSON.stringify(choices)} crash ${JSON.stringify(crash)}\n  calls: ${il.log.join(' ')}`);
              throw r.reason;
            } else crashed++;
          }
          // A claim taken ahead by one delivery released by the other: the dangling claim's path ran.
          const took = (who: number) => il.ahead.find((a) => a.who === who && a.what === 'store.claimXpuAhead')?.id;
          if (il.ahead.some((a) => a.what === 'store.releaseAhead' && a.id === took(1 - a.who))) dangling++;
          // The queue's redelivery, alone: it must reach the reboot the others left (or make it).
          outcomes.push(await createIngestHandler(h.stack.deps)({ ...ev }));
          const bad = await violations(ev, outcomes);
          if (bad.length)
            console.log(`case: choices ${JSON.stringify(choices)} crash ${JSON.stringify(crash)}\n  calls: ${il.log.join(' ')}`);
          expect(bad).toEqual([]);
        },
      ),
      // Shrinking would need a fresh node per attempt: stop at the first failure and print it.
      { seed: SEED, numRuns: RUNS, endOnFailure: true, verbose: 1 },
    );
    // Some cases did die midway (the property is not only about clean runs). How many of them left a claim
    // taken ahead for the other delivery to release depends on the timing of the calls as well as the seed
    // (3–4 of 24 cases in runs alone, once 0 in a full-suite run): reported, not asserted. The dangling-claim tests
    // below force each kind of leftover claim.
    expect(crashed).toBeGreaterThan(0);
    console.log(`${crashed} deliveries died; in ${dangling} cases one released the other's claim taken ahead`);
  }, 120_000);
});

describe('the mapping put beside the look-up', () => {
  it('a seen event: the put writes nothing and the event is a duplicate', async () => {
    const node = NODES[nextNode++];
    const ev = event(node, 'seen');
    const ingest = createIngestHandler(h.stack.deps);
    const first = await ingest({ ...ev });
    expect(first.kind).toBe('started');
    const mapped = await h.stack.deps.store.rebootIdOfEvent(ev.dedupKey);
    expect(first).toEqual({ kind: 'started', rebootId: mapped });
    expect(await ingest({ ...ev })).toEqual({ kind: 'duplicate' });
    expect(await h.stack.deps.store.rebootIdOfEvent(ev.dedupKey)).toBe(mapped);
    expect((await h.reboots(node)).map((r) => r.id)).toEqual([mapped]);
  });

  it('an event that started a reboot under a legacy id keeps it, though the put maps the key to a new id', async () => {
    const node = NODES[nextNode++];
    const ev = event(node, 'legacy');
    const old = legacyRebootId('xpu', ev.dedupKey);
    const def = (await h.stack.deps.inventory()).node(node)!;
    expect(await h.stack.deps.store.createReboot(newXpuReboot(old, def, 'dpu0', ev, 'planned'))).toBe(true);
    expect((await h.stack.deps.store.claimXpu(node, 'dpu0', old)).ok).toBe(true);
    // Twice, unmarked (the seen mark lost): the second look-up finds the first's mapping and still the legacy reboot.
    for (let i = 0; i < 2; i++) {
      const ingest = createIngestHandler({ ...h.stack.deps, store: withoutSeenMarks(h.stack.deps.store) });
      expect(await ingest({ ...ev })).toEqual({ kind: 'started', rebootId: old });
    }
    const mapped = await h.stack.deps.store.rebootIdOfEvent(ev.dedupKey);
    expect(mapped).toMatch(/^xr-[0-9a-z]{26}$/);
    expect(await h.stack.deps.store.getReboot(mapped!)).toBeUndefined();
    expect((await h.reboots(node)).map((r) => r.id)).toEqual([old]);
    expect((await h.stack.deps.store.getNodeState(node)).xpus.dpu0).toBe(old);
  });
});

describe('a claim taken ahead by a delivery that died before giving it back (docs/idempotency.md)', () => {
  const store = () => h.stack.deps.store;
  const other = (node: string) => ({ ...event(node, 'next'), type: 'xpu.crashed' as const });

  it('its event maps to another id: the next event of that xPU releases it and starts its own reboot', async () => {
    const node = NODES[nextNode++];
    const ev = event(node, 'lost');
    // What the dead delivery left: its put lost to id `won`, its claim ahead under `dead` went through.
    expect(await store().tryMapEventToReboot(ev.dedupKey, 'xr-won', 3600)).toBe(true);
    expect((await store().claimXpuAhead(node, 'dpu0', 'xr-dead', ev.dedupKey, h.now())).ok).toBe(true);
    const next = await createIngestHandler(h.stack.deps)(other(node));
    expect(next.kind).toBe('started');
    const state = await store().getNodeState(node);
    expect(state.xpus.dpu0).toBe((next as { rebootId: string }).rebootId);
    expect(state.claimsAhead?.dpu0?.key).not.toBe(ev.dedupKey);
    expect((await h.reboots(node)).map((r) => r.id)).toEqual([state.xpus.dpu0]);
  });

  it('a host reboot request is not denied for it', async () => {
    const node = NODES[nextNode++];
    const ev = event(node, 'lost-host');
    expect(await store().tryMapEventToReboot(ev.dedupKey, 'xr-won', 3600)).toBe(true);
    expect((await store().claimXpuAhead(node, 'dpu0', 'xr-dead', ev.dedupKey, h.now())).ok).toBe(true);
    const req = { ...event(node, 'host'), type: 'host.reboot.requested' as const, xpu: undefined };
    const out = await createIngestHandler(h.stack.deps)(req);
    expect(out.kind).toBe('started');
    const state = await store().getNodeState(node);
    expect(state.xpus.dpu0).toBeUndefined();
    expect(state.host).toBe((out as { rebootId: string }).rebootId);
  });

  it('its event maps to its id but was seen: kept while its minter may live, released after', async () => {
    const node = NODES[nextNode++];
    const ev = event(node, 'seen-ahead');
    // The dead delivery's put won, its look-up found the event seen, and it died before giving the claim back.
    expect(await store().tryMapEventToReboot(ev.dedupKey, 'xr-mine', 3600)).toBe(true);
    await store().markEventSeen(ev.dedupKey, 3600);
    expect((await store().claimXpuAhead(node, 'dpu0', 'xr-mine', ev.dedupKey, h.now())).ok).toBe(true);
    // Within the minter's lifetime it could still be storing that reboot: left alone, the event retried.
    await expect(createIngestHandler(h.stack.deps)(other(node))).rejects.toMatchObject({ name: 'HolderNotStored' });
    expect((await store().getNodeState(node)).xpus.dpu0).toBe('xr-mine');
    await h.advance(CLAIM_AHEAD_LIFETIME_MS + 1000);
    const next = await createIngestHandler(h.stack.deps)(other(node));
    expect(next.kind).toBe('started');
    expect((await store().getNodeState(node)).xpus.dpu0).toBe((next as { rebootId: string }).rebootId);
  });

  it('its event maps to nothing (the put never landed): kept while its minter may live, released after', async () => {
    const node = NODES[nextNode++];
    const ev = event(node, 'unmapped');
    // The dead delivery's claim went through, its put failed without writing, and the event was never retried.
    expect((await store().claimXpuAhead(node, 'dpu0', 'xr-unmapped', ev.dedupKey, h.now())).ok).toBe(true);
    await expect(createIngestHandler(h.stack.deps)(other(node))).rejects.toMatchObject({ name: 'HolderNotStored' });
    expect((await store().getNodeState(node)).xpus.dpu0).toBe('xr-unmapped');
    await h.advance(CLAIM_AHEAD_LIFETIME_MS + 1000);
    const next = await createIngestHandler(h.stack.deps)(other(node));
    expect(next.kind).toBe('started');
    expect((await store().getNodeState(node)).xpus.dpu0).toBe((next as { rebootId: string }).rebootId);
    expect(await store().getReboot('xr-unmapped')).toBeUndefined();
  });

  it('a claim of a live delivery (its put won, not seen) is not released while it may live, only waited for', async () => {
    const node = NODES[nextNode++];
    const ev = event(node, 'live');
    expect(await store().tryMapEventToReboot(ev.dedupKey, 'xr-live', 3600)).toBe(true);
    expect((await store().claimXpuAhead(node, 'dpu0', 'xr-live', ev.dedupKey, h.now())).ok).toBe(true);
    await h.advance(CLAIM_AHEAD_LIFETIME_MS - 60_000);
    await expect(createIngestHandler(h.stack.deps)(other(node))).rejects.toMatchObject({ name: 'HolderNotStored' });
    expect((await store().getNodeState(node)).xpus.dpu0).toBe('xr-live');
    // Its event's retry confirms the claim and starts that reboot.
    expect(await createIngestHandler(h.stack.deps)({ ...ev })).toEqual({ kind: 'started', rebootId: 'xr-live' });
    const state = await store().getNodeState(node);
    expect(state.xpus.dpu0).toBe('xr-live');
    expect(state.claimsAhead?.dpu0).toBeUndefined();
  });
});

/** The store with `markEventSeen` doing nothing: every delivery looks like the first. */
function withoutSeenMarks<T extends object>(store: T): T {
  return new Proxy(store, {
    get(t, prop) {
      if (prop === 'markEventSeen') return async () => {};
      const value = Reflect.get(t, prop, t);
      return typeof value === 'function' ? value.bind(t) : value;
    },
  });
}
