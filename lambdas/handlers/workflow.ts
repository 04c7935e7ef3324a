// The Lambdas behind the workflows' Tasks: callback waits (with their commands) and plain steps.
import { z } from 'zod';
import { RebootNotFound } from '../core/errors.ts';
import {
  cancelCaughtUp,
  closeOnReturn,
  markForced,
  markSilentHost,
  postponeIfMoved,
  proceed,
  proceedNotTaken,
  recordCommands,
  registerWaiter,
  type Step,
} from '../core/model.ts';
import { goesEarly, isFinal, isLateRegistration, noticeWindow, undoneCommands, type StoredReboot, type WaitFor } from '../core/reboot.ts';
import type { CommandSummary, NodeDef } from '../core/types.ts';
import type { NodeStateRecord, StoredCommand } from '../ports/index.ts';
import { needsNodeState, sendStepCommands, type Deps } from './deps.ts';
import { AwaitInput, START_COPY_MAX_AGE_MS, type StartCopy, StepInput, startRoute } from '../core/workflow-io.ts';
import { applyStep } from './effects.ts';
import { endReboot, timeOut, withdrawUntakenGo } from './end.ts';
import { onQueuedWaitRegistered, recheckQueued } from './fleet.ts';

export class InvalidStepInput extends Error {
  override readonly name = 'InvalidStepInput';
}

function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const res = schema.safeParse(input);
  if (!res.success) throw new InvalidStepInput(z.prettifyError(res.error));
  return res.data;
}

async function load(deps: Deps, id: string): Promise<{ reboot: StoredReboot; node: NodeDef }> {
  const reboot = await deps.store.getReboot(id);
  if (!reboot) throw new RebootNotFound(`reboot ${id} does not exist`);
  const node = (await deps.inventory({ nodes: [reboot.node] })).node(reboot.node);
  if (!node) throw new RebootNotFound(`node ${reboot.node} of reboot ${id} is no longer in the inventory`);
  return { reboot, node };
}

/**
 * load() for a wait whose input names the node (PrepareHost): the inventory, the reboot and, where the
 * step's commands depend on it, the node's state are read side by side rather than one after the other.
 */
async function loadForStep(
  deps: Deps,
  p: z.infer<typeof AwaitInput>,
): Promise<{ reboot: StoredReboot; node: NodeDef; nodeState?: NodeStateRecord }> {
  const hint = p.node;
  if (!hint) return load(deps, p.rebootId);
  const copy = startCopy(deps, p);
  if (copy) {
    const node = (await deps.inventory({ nodes: [hint] })).node(hint);
    if (node) return { reboot: copy.reboot as unknown as StoredReboot, node, nodeState: { node: hint, xpus: copy.xpus } };
  }
  const index = deps.inventory({ nodes: [hint] });
  const state = index.then((ix) => {
    const n = ix.node(hint);
    return n && needsNodeState(p.step, n) ? deps.store.getNodeState(hint) : undefined;
  });
  const [reboot, ix, nodeState] = await Promise.all([deps.store.getReboot(p.rebootId), index, state]);
  if (!reboot) throw new RebootNotFound(`reboot ${p.rebootId} does not exist`);
  if (reboot.node !== hint) return load(deps, p.rebootId);
  const node = ix.node(hint);
  if (!node) throw new RebootNotFound(`node ${reboot.node} of reboot ${reboot.id} is no longer in the inventory`);
  return { reboot, node, nodeState };
}

/** The ingest's copy of a reboot it just started (workflow-io.ts StartCopy), if this attempt may trust it. */
function startCopy(deps: Deps, p: z.infer<typeof AwaitInput>): StartCopy | undefined {
  const copy = p.window?.known;
  if (!copy || p.step !== 'prepare' || (p.retryCount ?? 0) > 0) return undefined;
  if (copy.reboot.id !== p.rebootId || copy.reboot.node !== p.node) return undefined;
  const age = deps.clock.now().getTime() - Date.parse(copy.at);
  return age >= 0 && age <= START_COPY_MAX_AGE_MS ? copy : undefined;
}

const STEP_STORY: Record<string, string> = {
  prepare: 'asked the host to migrate workloads and protect PCIe',
  crash: 'protecting PCIe and holding the watchdog for a core dump',
  reboot: 'waiting for the xPU to come back',
  recover: 'restoring PCIe on the host',
  free: 'asked the xPUs to free the host context',
  reprovision: 'waiting for re-provisioning',
  down: 'waiting for the xPU to go down',
  resume: 'resuming workloads on the host',
};

/** The host reboot's waits (workflows/host-reboot.asl.json) share step names with the xPU reboot's, not their story. */
const HOST_STEP_STORY: Record<string, string> = {
  ...STEP_STORY,
  reboot: 'waiting for the host to come back',
  xpus: 'waiting for the xPUs that lost power with the host to come back',
};

export function createAwaitHandler(deps: Deps) {
  return async (payload: unknown): Promise<{ registered: boolean }> => {
    const p = parse(AwaitInput, payload);
    const route = startRoute(p);
    if (route) {
      // Not a notice to prepare for: on to where ChooseNoticeOrCrash used to send it, nothing sent, nothing registered.
      const { known: _copy, ...window } = p.window ?? {};
      await deps.workflows.wake(p.taskToken, { ...window, signal: route });
      return { registered: false };
    }
    const { reboot, node, nodeState } = await loadForStep(deps, p);
    const reg = { token: p.taskToken, step: p.step, enteredAt: p.enteredAt };
    // Cancelled (docs/fleet-safety.md): every wait answers at once, and nothing more is sent.
    if (reboot.status === 'cancelled') {
      await deps.workflows.wake(p.taskToken, { signal: 'cancelled' });
      return { registered: false };
    }
    // The workflow has moved on (this Task timed out while its Lambda was slow): send nothing, register nothing.
    if (isLateRegistration(reboot, reg)) return { registered: false };
    // The xPU is back: what the notice phase or the core-dump hold left open is closed before restore-pcie goes out.
    // Gone down or back: an early go it never took is withdrawn (its agent would reboot it again after the boot).
    const closed = [
      ...(p.step === 'recover' ? await timeOut(deps, reboot, ['prepare', 'crash']) : []),
      ...(p.step === 'reboot' || p.step === 'recover' ? await withdrawUntakenGo(deps, reboot) : []),
    ];
    const commands = await sentCommands(deps, reboot, p.step, node, nodeState);
    // The early go is sent by the wait for the xPU going down (it was a Task of its own: one state
    // transition and one reboot write more per reboot). Not after a force: the deadline decides then.
    const go = p.step === 'down' && goesEarly(reboot) ? await sentCommands(deps, reboot, 'proceed', node) : null;
    const now = deps.clock.now();
    let registered = false;
    // One write on the copy just loaded (no second read unless it changed meanwhile): the waiter, and
    // in the notice phase the re-timed wait, since the xPU's watchdog moves with the deadline.
    const res = await applyStep(
      deps,
      reboot.id,
      (r) => {
        registered = !isLateRegistration(r, reg);
        if (!registered) return null;
        const back = closed.length ? (closeOnReturn(r, closed, now)?.reboot ?? r) : r;
        const base = go && goesEarly(back) ? (proceed(back, go, now)?.reboot ?? back) : back;
        const waiting = registerWaiter(
          base,
          {
            ...reg,
            waitFor: p.waitFor as WaitFor,
            deadline: p.deadline,
            status: p.status,
            commands,
            story: (r.kind === 'host' ? HOST_STEP_STORY : STEP_STORY)[p.step] ?? p.step,
          },
          now,
        );
        return p.step === 'prepare' ? thenPostponeIfMoved(waiting, node, now) : waiting;
      },
      node,
      { known: reboot },
    );
    if (registered && p.step === 'budget') await onQueuedWaitRegistered(deps, reboot.id, node);
    // Cancelled after the copy was taken (or after our commands were written, before this write):
    // the cancel did not know of them. Close them, undo what they may have done, and end the wait.
    if (!registered && res?.reboot.status === 'cancelled') {
      await applyStep(deps, reboot.id, (r) => cancelCaughtUp(r, commands, node, now), node);
      // Its Task waits for nothing now (the cancel's wake found no waiter); a dead token is ignored.
      await deps.workflows.wake(p.taskToken, { signal: 'cancelled' });
    }
    return { registered };
  };
}

/** A registration followed by the notice phase's re-timing, as one change of the reboot (effects in that order). */
function thenPostponeIfMoved(step: Step, node: NodeDef, now: Date): Step {
  const moved = postponeIfMoved(step.reboot, node, now);
  return moved ? { reboot: moved.reboot, effects: [...step.effects, ...moved.effects] } : step;
}

/** Writes a step's commands and returns them as the reboot records them. */
async function sentCommands(
  deps: Deps,
  reboot: StoredReboot,
  step: string,
  node: NodeDef,
  nodeState?: NodeStateRecord,
): Promise<CommandSummary[]> {
  const record = await sendStepCommands(deps, reboot, step, node, { nodeState });
  const probe = { commands: {} } as StoredReboot;
  record(probe);
  return Object.values(probe.commands);
}

export function createStepHandler(deps: Deps) {
  return async (payload: unknown): Promise<unknown> => {
    const p = parse(StepInput, payload);
    const { reboot, node } = await load(deps, p.rebootId);
    const now = deps.clock.now();
    switch (p.action) {
      case 'proceed': {
        // No state calls this any more (WaitForXpuDown's await sends the go); kept for executions
        // started on the previous definition while a deployment replaces it.
        if (reboot.endedAt || reboot.forced) return { ok: true }; // cancelled or forced by an operator meanwhile
        const commands = await sentCommands(deps, reboot, 'proceed', node);
        await applyStep(deps, reboot.id, (r) => proceed(r, commands, now), node);
        return { ok: true };
      }
      case 'proceed-not-taken': {
        const updated = await applyStep(deps, reboot.id, (r) => proceedNotTaken(r, now), node);
        return { signal: 'proceed-not-taken', ...noticeWindow(updated?.reboot ?? reboot, now) };
      }
      case 'forced': {
        // What the host left undone, with where each command got to (delivered, running, failed...).
        const undone = await Promise.all(
          undoneCommands(reboot, ['prepare', 'crash']).map(async (c) =>
            isFinal(c.status) ? c : live(c, await deps.store.getCommand(c.agent, c.id)),
          ),
        );
        const closed = await timeOut(deps, reboot, ['prepare', 'crash']);
        await applyStep(deps, reboot.id, (r) => markForced(r, undone, closed, now), node);
        return { ok: true };
      }
      case 'silent-host': {
        const updated = await applyStep(deps, reboot.id, (r) => markSilentHost(r, now), node);
        return { signal: 'silent', ...noticeWindow(updated?.reboot ?? reboot, now) };
      }
      case 'budget-recheck':
        return recheckQueued(deps, reboot.id, node);
      case 'deny': {
        const commands = await sentCommands(deps, reboot, 'deny', node);
        await applyStep(deps, reboot.id, (r) => recordCommands(r, commands), node);
        return { ok: true };
      }
      case 'complete':
      case 'fail':
        await endReboot(deps, reboot, node, { failed: p.action === 'fail', reason: p.reason, error: p.error });
        return { ok: true };
    }
  };
}

/** A command as its record has it now: the status, and when it got there if it ended. */
function live(c: CommandSummary, stored: StoredCommand | undefined): CommandSummary {
  if (!stored) return c;
  return { ...c, status: stored.status, ...(isFinal(stored.status) && stored.finishedAt ? { at: stored.finishedAt } : {}) };
}
