// The start copy (lambdas/core/workflow-io.ts StartCopy): the ingest hands the reboot it just wrote,
// and the node's claims, to PrepareHost's await, which plans and registers from them instead of
// reading both again. These tests take the copy where it is wrong: the reboot was cancelled between
// the ingest and the await, and a retried or late attempt must not trust it at all.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAwaitHandler } from '../../lambdas/handlers/workflow.ts';
import type { Workflows } from '../../lambdas/ports/index.ts';
import { startHarness, type Harness } from './harness.ts';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h?.close();
});

interface StartInput {
  rebootId: string;
  node: string;
  mode: string;
  window: Record<string, unknown> & { deadline?: string; known?: unknown };
}

/** The stack's workflows, except that starts are only recorded: `input()` is the last start's input. */
function heldStarts() {
  let input: StartInput | undefined;
  const real = h.stack.deps.workflows;
  const workflows: Workflows = {
    start: async (_kind, _name, i) => {
      input = i as StartInput;
    },
    wake: (...a) => real.wake(...a),
    fail: (...a) => real.fail(...a),
    heartbeat: (t) => real.heartbeat(t),
    describe: (...a) => real.describe(...a),
  };
  return { workflows, input: () => input };
}

/** A planned reboot ingested with its workflow start held back: the start input, as the ingest made it. */
async function ingestedNotStarted(): Promise<StartInput> {
  const starts = heldStarts();
  await h.ingestDirect(
    { id: 'copy-1', type: 'xpu.reboot.pending', node: 'duo', xpu: 'dpu1', data: { reason: 'fw' } },
    { deps: { workflows: starts.workflows } },
  );
  expect(starts.input()?.window.known, 'the start input carries the copy').toBeDefined();
  return starts.input()!;
}

/** PrepareHost's await, as the ASL hands it the execution input; its wake-ups are recorded. */
async function prepareHost(input: StartInput, extra: Record<string, unknown> = {}) {
  const woken: unknown[] = [];
  const deps = {
    ...h.stack.deps,
    workflows: {
      ...h.stack.deps.workflows,
      wake: async (_t: string, out: unknown) => {
        woken.push(out);
        return true;
      },
    } as Workflows,
  };
  const res = await createAwaitHandler(deps)({
    taskToken: 'token-prepare',
    enteredAt: h.now().toISOString(),
    rebootId: input.rebootId,
    node: input.node,
    step: 'prepare',
    waitFor: 'prepared',
    status: 'preparing',
    deadline: input.window.deadline,
    mode: input.mode,
    window: input.window,
    retryCount: 0,
    ...extra,
  });
  return { res, woken };
}

const cancel = (id: string) => h.request(`/v1/reboots/${id}/cancel`, { body: { reason: 'wrong window' } });

describe('the start copy', () => {
  it('a reboot cancelled between the ingest and its first await: what the copy sent is closed and undone, and the wait ends', async () => {
    const input = await ingestedNotStarted();
    expect((await cancel(input.rebootId)).status).toBe(200);
    const { res, woken } = await prepareHost(input);
    expect(res).toEqual({ registered: false });
    expect(woken).toEqual([{ signal: 'cancelled' }]);
    const r = await h.reboot(input.rebootId);
    const byType = Object.fromEntries(Object.values(r.commands).map((c) => [c.type, c]));
    // The copy's preparation went out as the reboot was cancelled: closed, and undone.
    expect(byType['migrate-workloads'].status).toBe('timed-out');
    expect(byType['protect-pcie'].status).toBe('timed-out');
    expect(byType['restore-pcie']?.step).toBe('cancel');
    expect(byType['resume-workloads']).toBeUndefined();
    expect(r.history.at(-1)?.detail).toMatch(
      /went out as the reboot was cancelled: closed; restore-pcie sent; resume-workloads follows once restore-pcie succeeded/,
    );
    // The host agent is handed only the undo, never the closed preparation; resume-workloads once restore-pcie succeeded.
    const host = await h.agent('duo').poll();
    expect(host.map((c) => c.type)).toEqual(['restore-pcie']);
    expect((await h.agent('duo').post(host[0]!.id, 'succeeded')).status).toBe(200);
    expect((await h.agent('duo').poll()).map((c) => c.type)).toEqual(['resume-workloads']);
    // A replay of that await changes nothing more.
    const before = await h.reboot(input.rebootId);
    await prepareHost(input);
    expect((await h.reboot(input.rebootId)).history).toEqual(before.history);
  });

  it('a retried attempt reads the reboot instead: cancelled, it sends nothing', async () => {
    const input = await ingestedNotStarted();
    expect((await cancel(input.rebootId)).status).toBe(200);
    const { res, woken } = await prepareHost(input, { retryCount: 1 });
    expect(res).toEqual({ registered: false });
    expect(woken).toEqual([{ signal: 'cancelled' }]);
    const types = Object.values((await h.reboot(input.rebootId)).commands).map((c) => c.type);
    expect(types).not.toContain('migrate-workloads');
    expect(types).not.toContain('protect-pcie');
  });

  it('a copy older than START_COPY_MAX_AGE_MS is not used either', async () => {
    const input = await ingestedNotStarted();
    expect((await cancel(input.rebootId)).status).toBe(200);
    await h.advance(3_000);
    const { woken } = await prepareHost(input);
    expect(woken).toEqual([{ signal: 'cancelled' }]);
    const types = Object.values((await h.reboot(input.rebootId)).commands).map((c) => c.type);
    expect(types).not.toContain('protect-pcie');
  });

  it('a copy the reboot has moved past (a signal landed) only costs the registration a second read', async () => {
    const input = await ingestedNotStarted();
    // The node's other xPU starts rebooting after the copy was taken: the copy's claims miss it,
    // and the reboot itself gains a joined notice.
    await h.ingestDirect({ id: 'copy-2', type: 'xpu.reboot.pending', node: 'duo', xpu: 'dpu1', data: { reason: 'again' } });
    const { res } = await prepareHost(input);
    expect(res).toEqual({ registered: true });
    const r = await h.reboot(input.rebootId);
    expect(r.waiter?.token).toBe('token-prepare');
    expect(r.history.map((e) => e.phase)).toEqual(expect.arrayContaining(['joined', 'preparing']));
    expect(Object.values(r.commands).map((c) => c.type)).toEqual(['migrate-workloads', 'protect-pcie']);
  });

  it('only a planned reboot in its notice phase carries one, and a routed start drops any it is given', async () => {
    const planned = await ingestedNotStarted();
    const starts = heldStarts();
    await h.ingestDirect({ id: 'crash-1', type: 'xpu.crashed', node: 'solo', xpu: 'dpu0' }, { deps: { workflows: starts.workflows } });
    const input = starts.input();
    expect(input?.mode).toBe('crash');
    expect(input?.window.known).toBeUndefined();
    // Routed on at once (crashed): the wake-up, which becomes the state's window, carries no copy on.
    const { woken } = await prepareHost({ ...input!, window: { ...input!.window, known: planned.window.known } });
    expect(woken).toHaveLength(1);
    expect(woken[0]).toMatchObject({ signal: 'crashed' });
    expect(woken[0]).not.toHaveProperty('known');
  });
});
