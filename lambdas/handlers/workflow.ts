// The Lambdas behind the workflows' Tasks: callback waits (with their commands) and plain steps.
import { z } from 'zod';
import { RebootNotFound } from '../core/errors.ts';
import {
  complete,
  fail,
  markForced,
  markSilentHost,
  postponeIfMoved,
  proceed,
  proceedNotTaken,
  recordCommands,
  registerWaiter,
  type Step,
} from '../core/model.ts';
import {
  isFinal,
  isLateRegistration,
  noticeWindow,
  outstandingCommands,
  undoneCommands,
  type StoredReboot,
  type WaitFor,
} from '../core/reboot.ts';
import type { CommandSummary, NodeDef } from '../core/types.ts';
import type { StoredCommand } from '../ports/index.ts';
import { sendStepCommands, type Deps } from './deps.ts';
import { AwaitInput, StepInput } from '../core/workflow-io.ts';
import { applyStep } from './effects.ts';
import { wakeRolloutOf } from './rollout.ts';
import { onQueuedWaitRegistered, recheckQueued, releaseBudgets } from './fleet.ts';

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

export function createAwaitHandler(deps: Deps) {
  return async (payload: unknown): Promise<{ registered: boolean }> => {
    const p = parse(AwaitInput, payload);
    const { reboot, node } = await load(deps, p.rebootId);
    const reg = { token: p.taskToken, step: p.step, enteredAt: p.enteredAt };
    // Cancelled (docs/fleet-safety.md): every wait answers at once, and nothing more is sent.
    if (reboot.status === 'cancelled') {
      await deps.workflows.wake(p.taskToken, { signal: 'cancelled' });
      return { registered: false };
    }
    // The workflow has moved on (this Task timed out while its Lambda was slow): send nothing, register nothing.
    if (isLateRegistration(reboot, reg)) return { registered: false };
    const commands = await sentCommands(deps, reboot, p.step, node);
    const now = deps.clock.now();
    let registered = false;
    // One write on the copy just loaded (no second read unless it changed meanwhile): the waiter, and
    // in the notice phase the re-timed wait, since the xPU's watchdog moves with the deadline.
    await applyStep(
      deps,
      reboot.id,
      (r) => {
        registered = !isLateRegistration(r, reg);
        if (!registered) return null;
        const waiting = registerWaiter(
          r,
          { ...reg, waitFor: p.waitFor as WaitFor, deadline: p.deadline, status: p.status, commands, story: STEP_STORY[p.step] ?? p.step },
          now,
        );
        return p.step === 'prepare' ? thenPostponeIfMoved(waiting, node, now) : waiting;
      },
      node,
      { known: reboot },
    );
    if (registered && p.step === 'budget') await onQueuedWaitRegistered(deps, reboot.id, node);
    return { registered };
  };
}

/** A registration followed by the notice phase's re-timing, as one change of the reboot (effects in that order). */
function thenPostponeIfMoved(step: Step, node: NodeDef, now: Date): Step {
  const moved = postponeIfMoved(step.reboot, node, now);
  return moved ? { reboot: moved.reboot, effects: [...step.effects, ...moved.effects] } : step;
}

/** Closes commands the workflow stopped waiting for, so agents are no longer handed them. Returns those it closed. */
async function timeOut(deps: Deps, r: StoredReboot, steps: string[]): Promise<string[]> {
  const open = outstandingCommands(r, steps);
  const closed = await Promise.all(
    open.map((c) =>
      deps.store.updateCommand(c.agent, c.id, (cmd) =>
        isFinal(cmd.status) ? null : { ...cmd, status: 'timed-out', finishedAt: deps.clock.now().toISOString() },
      ),
    ),
  );
  return open.filter((_, i) => closed[i]?.changed).map((c) => c.id);
}

/** Writes a step's commands and returns them as the reboot records them. */
async function sentCommands(deps: Deps, reboot: StoredReboot, step: string, node: NodeDef): Promise<CommandSummary[]> {
  const record = await sendStepCommands(deps, reboot, step, node);
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
      case 'fail': {
        const steps = Object.values(reboot.commands).map((c) => c.step);
        const closed = await timeOut(deps, reboot, steps);
        const failed = p.action === 'fail';
        const reason = p.reason ?? (failed ? 'failed' : 'completed');
        // Results that beat the closing (the wait timed out as they arrived) are told as they are.
        const settled = failed ? await settledMeanwhile(deps, reboot, steps, closed) : [];
        // Budget slots go back before the end is written: whoever sees the end (a rollout looking
        // for its next xPU above all) must find the slot free, not race the release.
        await releaseBudgets(deps, reboot, node);
        const res = await applyStep(
          deps,
          reboot.id,
          (r) => (failed ? fail(r, reason, p.error, closed, now, settled) : complete(r, closed, now)) ?? releaseAgain(r),
          node,
        );
        // Rollouts: the end of a reboot a rollout asked for lets its next xPU start. Also on a replay (harmless).
        await wakeRolloutOf(deps, res?.reboot);
        if (failed && res?.changed && !reboot.endedAt)
          deps.logger.error('reboot failed', { rebootId: reboot.id, node: reboot.node, reason });
        return { ok: true };
      }
    }
  };
}

/** A command as its record has it now: the status, and when it got there if it ended. */
function live(c: CommandSummary, stored: StoredCommand | undefined): CommandSummary {
  if (!stored) return c;
  return { ...c, status: stored.status, ...(isFinal(stored.status) && stored.finishedAt ? { at: stored.finishedAt } : {}) };
}

/** A replayed end step writes nothing, but lets go of the claim again (a crash may have kept it from that). */
function releaseAgain(r: StoredReboot) {
  return r.endedAt && !r.lateRecovery ? { reboot: r, effects: [{ kind: 'release' as const }] } : null;
}

/**
 * Commands open when the step began that it did not close: their results reached the command
 * records meanwhile. Read back, so the failure is told with them even if the agent's own write of
 * the reboot has not landed yet.
 */
async function settledMeanwhile(deps: Deps, r: StoredReboot, steps: string[], closed: string[]) {
  const open = outstandingCommands(r, steps).filter((c) => !closed.includes(c.id));
  const records = await Promise.all(open.map((c) => deps.store.getCommand(c.agent, c.id)));
  return records.filter((c): c is StoredCommand => !!c && isFinal(c.status));
}
