// Claimed long polls on the real stack (API, dynalite, engine): the await Lambda takes a parked poll before
// writing the commands as delivered to it (docs/command-delivery.md). Under disorder no command is lost and
// none goes to two polls: a poll whose client goes away after the claim, two polls of one agent, a Task that
// fails between the claim and the write.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PollClaim, RebootStore, StoredCommand } from '../../lambdas/ports/index.ts';
import { eventually, startHarness, tokenOf, type Harness } from './harness.ts';

let h: Harness;
const opened = new Map<string, number>();
/** Each claim the signal gave out, newest last. */
const claims: PollClaim[] = [];
/** While set, putCommand waits for it (or throws, for `failPuts`). */
let gate: Promise<void> | undefined;
let failPuts = 0;
let putsSeen = 0;

beforeAll(async () => {
  h = await startHarness();
  const store = h.stack.deps.store as RebootStore;
  const openCommands = store.openCommands.bind(store);
  store.openCommands = (agent) => {
    opened.set(agent, (opened.get(agent) ?? 0) + 1);
    return openCommands(agent);
  };
  const putCommand = store.putCommand.bind(store);
  store.putCommand = async (c) => {
    putsSeen++;
    if (failPuts > 0) {
      failPuts--;
      throw new Error('injected: the await Lambda fails between the claim and the write');
    }
    await gate;
    return putCommand(c);
  };
  const signal = h.stack.deps.signal;
  const claim = signal.claim!.bind(signal);
  signal.claim = (agent) => {
    const c = claim(agent);
    if (c) claims.push(c);
    return c;
  };
  await h.stack.reconcile();
}, 60_000);
afterAll(async () => {
  await h?.close();
});

/** A long poll of `agent` with an AbortController, like an agent's HTTP client that may go away. */
function rawPoll(agent: string, wait: number) {
  const abort = new AbortController();
  const res = fetch(`${h.url}/v1/agents/${agent}/commands?wait=${wait}`, {
    headers: { authorization: `Bearer ${tokenOf(agent.split('.')[0])}` },
    signal: abort.signal,
  }).then(async (r) => (await r.json()) as Array<{ id: string; type: string }>);
  res.catch(() => undefined);
  return { res, abort };
}

/** Resolves once `agent` has `n` polls that have looked at least once (and so are parked). */
const parked = (agent: string, n: number) => eventually(`${n} poll(s) of ${agent} parked`, async () => (opened.get(agent) ?? 0) >= n);

/** The retried Task's waiter is stored (harness.waitForState follows the first attempt's token only). */
const registered = (id: string) =>
  eventually(`${id} waiting in prepare`, async () => {
    const r = await h.stack.deps.store.getReboot(id);
    return r?.waiter?.step === 'prepare' ? r : undefined;
  });

const commandsOf = async (agent: string, rebootId: string) =>
  (await h.stack.deps.store.openCommands(agent)).filter((c: StoredCommand) => c.rebootId === rebootId);

describe('claimed long polls under disorder', () => {
  it('a poll whose client goes away after the claim: its commands go to the next poll at once, not after the redelivery delay', async () => {
    opened.clear();
    const poll = rawPoll('solo', 20);
    await parked('solo', 1);
    let open!: () => void;
    gate = new Promise((r) => {
      open = r;
    });
    const claimsBefore = claims.length;
    const puts = putsSeen;
    expect((await h.event('solo', 'xpu.reboot.pending', { data: { reason: 'claim then abort' } })).status).toBe(202);
    await eventually('the await Lambda writing, with the poll claimed', async () => putsSeen >= puts + 2 && claims.length > claimsBefore);
    const claim = claims.at(-1)!;
    poll.abort.abort();
    await eventually('the server to see the client gone', async () => !claim.live);
    gate = undefined;
    open();
    const r = await h.rebootOf('solo', 'xpu');
    await eventually('both commands flagged for redelivery', async () => {
      const cmds = await commandsOf('solo', r.id);
      return cmds.length === 2 && cmds.every((c) => c.status === 'delivered' && c.redeliver);
    });
    // The manual clock has not moved: without the flag they would wait REDELIVER_AFTER_MS.
    const got = await h.agent('solo').poll(0);
    expect(got.map((c) => c.type)).toEqual(['migrate-workloads', 'protect-pcie']);
    expect(await h.agent('solo').poll(0)).toEqual([]);
    await h.waitForState(r.id, 'PrepareHost');
  });

  it('two polls of one agent parked: exactly one gets the commands', async () => {
    opened.clear();
    // 20 s, not 2: the event must go through the queue, the engine and PrepareHost's Lambda while both
    // polls are still parked, seconds at load. The poll that gets nothing answers [] only at its end.
    const a = rawPoll('lax', 20);
    const b = rawPoll('lax', 20);
    await parked('lax', 2);
    expect((await h.event('lax', 'xpu.reboot.pending', { data: { reason: 'two polls' } })).status).toBe(202);
    const answers = await Promise.all([a.res, b.res]);
    expect(answers.map((x) => x.length).sort()).toEqual([0, 2]);
    expect(answers.flat().map((c) => c.type)).toEqual(['migrate-workloads', 'protect-pcie']);
    const r = await h.rebootOf('lax', 'xpu');
    const cmds = await commandsOf('lax', r.id);
    expect(cmds.map((c) => c.status)).toEqual(['delivered', 'delivered']);
    expect(await h.agent('lax').poll(0)).toEqual([]);
  });

  it('the await Lambda fails between the claim and the write: the poll is released, and the retry hands it the commands', async () => {
    opened.clear();
    const poll = rawPoll('strict', 20);
    await parked('strict', 1);
    failPuts = 2; // both writes fail: nothing was written
    const claimsBefore = claims.length;
    expect((await h.event('strict', 'xpu.reboot.pending', { data: { reason: 'crash after claim' } })).status).toBe(202);
    await eventually('the failed attempt, with a claim taken', async () => failPuts === 0 && claims.length > claimsBefore);
    // Released: the poll looked again (and parked again, finding nothing).
    await parked('strict', 2);
    expect(claims[claimsBefore].live).toBe(false);
    const r = await h.rebootOf('strict', 'xpu');
    // The Task's retry (IntervalSeconds 1, full jitter) on the manual clock.
    await h.advance(2_000);
    const got = await poll.res;
    expect(got.map((c) => c.type)).toEqual(['migrate-workloads', 'protect-pcie']);
    expect(claims.length).toBe(claimsBefore + 2);
    expect(await h.agent('strict').poll(0)).toEqual([]);
    await registered(r.id);
  });

  it('one of two writes fails: the one written goes to the claimed poll, the retry sends the other; none lost, none twice', async () => {
    opened.clear();
    const poll = rawPoll('wary', 20);
    await parked('wary', 1);
    failPuts = 1; // the first write (migrate-workloads) fails, protect-pcie is written as delivered to the poll
    expect((await h.event('wary', 'xpu.reboot.pending', { data: { reason: 'half written' } })).status).toBe(202);
    const first = await poll.res;
    expect(first.map((c) => c.type)).toEqual(['protect-pcie']);
    const r = await h.rebootOf('wary', 'xpu');
    const next = rawPoll('wary', 20);
    await parked('wary', 2);
    await h.advance(2_000); // the Task's retry
    const second = await next.res;
    expect(second.map((c) => c.type)).toEqual(['migrate-workloads']);
    expect(await h.agent('wary').poll(0)).toEqual([]);
    const cmds = await commandsOf('wary', r.id);
    expect(cmds.map((c) => [c.type, c.status]).sort()).toEqual([
      ['migrate-workloads', 'delivered'],
      ['protect-pcie', 'delivered'],
    ]);
    const reboot = await registered(r.id);
    expect(
      Object.values(reboot.commands)
        .map((c) => c.type)
        .sort(),
    ).toEqual(['migrate-workloads', 'protect-pcie']);
  });
});
