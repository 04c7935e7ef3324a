// Signals of an xPU's next outage that reach its previous reboot (model.ts ofNextOutage): the xPU is
// back, but its reboot holds the xPU until it registers recovery, so the ingest hands it a notice,
// crash or down meant for the next one. Kept there and ingested again when the reboot lets go of
// the xPU, they start that next reboot instead of joining one that is over. Each test forces one
// interleaving: a wake-up held back, a store call held until the other side has moved.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Workflows } from '../../lambdas/ports/index.ts';
import { eventually, phases, startHarness, type Harness } from './harness.ts';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h?.close();
});

const SECOND = 1000;

/** Workflows whose wake-ups are held until `let()`: the reboot changes, its workflow does not move yet. */
function heldWakes(real: Workflows) {
  const held: (() => Promise<unknown>)[] = [];
  const workflows: Workflows = {
    ...real,
    start: (...a) => real.start(...a),
    describe: (...a) => real.describe(...a),
    heartbeat: (t) => real.heartbeat(t),
    wake: async (token, output) => {
      held.push(() => real.wake(token, output));
      return true;
    },
    fail: async (token, error, cause) => {
      held.push(() => real.fail(token, error, cause));
      return true;
    },
  };
  return { workflows, held, let: async () => Promise.all(held.splice(0).map((w) => w())) };
}

/** An announced reboot taken to WaitForXpuDown, then its down: the xPU is rebooting. */
async function rebooting() {
  expect((await h.event('solo', 'xpu.reboot.pending', { xpu: 'dpu0', data: { reason: 'fw stage 1' } })).status).toBe(202);
  await h.drain();
  const r = await h.rebootOf('solo', 'xpu', 'dpu0');
  await h.waitForState(r.id, 'PrepareHost');
  await h.agent('solo').answerAll();
  await h.waitForState(r.id, 'WaitForXpuDown');
  await h.agent('solo.dpu0').answerAll();
  await h.ingestDirect({ id: 'down-1', type: 'xpu.down', node: 'solo', xpu: 'dpu0' });
  await h.waitForState(r.id, 'WaitForXpuReady');
  return r;
}

/** The first reboot recovers and completes; the second is the announced reboot `noticeId` started. */
async function bothReboots(firstId: string, noticeId: string) {
  await h.drain();
  await h.waitForState(firstId, 'RestorePcie');
  await h.agent('solo').answerAll();
  await h.waitForState(firstId, 'ResumeWorkloads');
  await h.agent('solo').answerAll();
  const first = await h.waitForStatus(firstId, 'completed');
  const second = await next(firstId);
  expect(second.mode).toBe('planned');
  expect(second.history[0].phase).toBe('notified');
  expect(second.history[0].detail).toContain(`event ${noticeId})`);
  // (The host agent's answers above took it through its own PrepareHost as well.)
  expect(second.endedAt).toBeUndefined();
  // The first reboot kept it and says so; it did not take it as its own.
  const kept = first.history.filter((e) => e.detail.endsWith(`event ${noticeId})`)).map((e) => e.phase);
  expect(kept.at(-1)).toBe('deferred');
  return { first, second };
}

/** The node's reboot other than `firstId`, once the ingest has started it. */
function next(firstId: string) {
  return eventually('the next reboot of solo/dpu0', async () => (await h.reboots('solo')).find((r) => r.id !== firstId));
}

describe("signals of the xPU's next outage", () => {
  it('a notice sent after the ready, while the reboot still holds the xPU, starts the next reboot once it lets go', async () => {
    const r = await rebooting();
    const wakes = heldWakes(h.stack.deps.workflows);
    await h.ingestDirect({ id: 'ready-1', type: 'xpu.ready', node: 'solo', xpu: 'dpu0' }, { deps: { workflows: wakes.workflows } });
    expect(wakes.held.length).toBe(1);
    await h.advance(SECOND);
    // The workflow has not moved: the reboot still holds the xPU, so the notice reaches it.
    const outcome = await h.ingestDirect({
      id: 'stage-2',
      type: 'xpu.reboot.pending',
      node: 'solo',
      xpu: 'dpu0',
      data: { reason: 'fw stage 2' },
    });
    expect(outcome).toEqual({ kind: 'joined', rebootId: r.id });
    expect((await h.reboots('solo')).length).toBe(1);
    const held = await h.reboot(r.id);
    expect(held.deferred?.map((e) => e.id)).toEqual(['stage-2']);
    // Not in what the API shows.
    const shown = await h.request(`/v1/reboots/${r.id}`);
    expect(shown.json.deferred).toBeUndefined();
    expect(shown.json.history.map((e: { phase: string }) => e.phase)).toContain('deferred');
    // Its release (RestorePcie registers) sends it to the ingest again.
    await wakes.let();
    const { second } = await bothReboots(r.id, 'stage-2');
    expect(second.reason).toBe('fw stage 2');
    // A redelivery of the notice changes nothing more.
    await h.ingestDirect({ id: 'stage-2', type: 'xpu.reboot.pending', node: 'solo', xpu: 'dpu0', data: { reason: 'fw stage 2' } });
    await h.drain();
    expect((await h.reboots('solo')).length).toBe(2);
  });

  it('a notice that reaches the reboot just after it let go of the xPU is sent on at once', async () => {
    const r = await rebooting();
    const wakes = heldWakes(h.stack.deps.workflows);
    await h.ingestDirect({ id: 'ready-1', type: 'xpu.ready', node: 'solo', xpu: 'dpu0' }, { deps: { workflows: wakes.workflows } });
    await h.advance(SECOND);
    // The notice finds the claim held, then its write to the reboot waits until recovery released it.
    let claimed!: () => void;
    const sawHolder = new Promise<void>((resolve) => (claimed = resolve));
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const notice = h.ingestDirect(
      { id: 'stage-2', type: 'xpu.reboot.pending', node: 'solo', xpu: 'dpu0', data: { reason: 'fw stage 2' } },
      { delays: { updateReboot: () => gate }, returned: (m) => m === 'claimXpu' && claimed() },
    );
    await sawHolder;
    await wakes.let();
    await h.waitForState(r.id, 'RestorePcie');
    // The await Lambda of RestorePcie lets go of the xPU as it registers: a moment after the state is entered.
    await eventually('recovery let go of the xPU', async () => (await h.stack.deps.store.getNodeState('solo')).xpus.dpu0 === undefined);
    open();
    expect(await notice).toEqual({ kind: 'joined', rebootId: r.id });
    await bothReboots(r.id, 'stage-2');
  });

  it('a notice applied before a ready sent earlier (a retried delivery) moves on to the next reboot when the ready lands', async () => {
    const r = await rebooting();
    await h.advance(2 * SECOND);
    const readySent = new Date(h.now().getTime() - SECOND).toISOString();
    // The notice comes first and joins: nothing yet says the outage is over.
    await h.ingestDirect({ id: 'stage-2', type: 'xpu.reboot.pending', node: 'solo', xpu: 'dpu0', data: { reason: 'fw stage 2' } });
    expect(phases(await h.reboot(r.id))).toContain('joined');
    // Then the ready the same agent sent a second before it.
    await h.ingestDirect({ id: 'ready-1', type: 'xpu.ready', node: 'solo', xpu: 'dpu0', time: readySent });
    const after = await h.reboot(r.id);
    expect(after.readyAt).toBeDefined();
    expect(after.deferred?.map((e) => e.id)).toEqual(['stage-2']);
    await bothReboots(r.id, 'stage-2');
  });

  it('a down sent after the ready, by the same clock, is the next outage: an unannounced reboot of its own', async () => {
    const r = await rebooting();
    const wakes = heldWakes(h.stack.deps.workflows);
    await h.ingestDirect({ id: 'ready-1', type: 'xpu.ready', node: 'solo', xpu: 'dpu0' }, { deps: { workflows: wakes.workflows } });
    await h.advance(SECOND);
    await h.ingestDirect({ id: 'down-2', type: 'xpu.down', node: 'solo', xpu: 'dpu0' });
    expect((await h.reboot(r.id)).deferred?.map((e) => e.id)).toEqual(['down-2']);
    await wakes.let();
    await h.waitForState(r.id, 'RestorePcie');
    const unannounced = await next(r.id);
    expect(unannounced.mode).toBe('unannounced');
    expect(unannounced.history.some((e) => e.detail.endsWith('event down-2)'))).toBe(true);
  });
});
