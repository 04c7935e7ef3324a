// The Lambdas behind the workflows' Tasks: callback waits (with their commands) and plain steps.
import { z } from 'zod';
import { RebootNotFound } from '../core/errors.ts';
import {
  advanceStatus,
  history,
  isFinal,
  isLateRegistration,
  noticeWindow,
  outstandingCommands,
  undoneCommands,
  type StoredReboot,
  type WaitFor,
} from '../core/reboot.ts';
import { REBOOT_STATUSES, type NodeDef } from '../core/types.ts';
import { changeReboot, sendStepCommands, type Deps } from './deps.ts';
import { wakeRolloutOf } from './rollout.ts';
import { onQueuedWaitRegistered, recheckQueued, releaseBudgets } from './fleet.ts';

export class InvalidStepInput extends Error {
  override readonly name = 'InvalidStepInput';
}

const AwaitInput = z.object({
  taskToken: z.string().min(1),
  rebootId: z.string().min(1),
  step: z.string().min(1),
  waitFor: z.enum(['prepared', 'commands-done', 'xpu-ready', 'host-ready', 'xpus-ready', 'budget-slot']),
  status: z.enum(REBOOT_STATUSES).optional(),
  /** The deadline the workflow timed this wait on (notice phase). */
  deadline: z.string().nullable().optional(),
  /** $$.State.EnteredTime of the waiting state. */
  enteredAt: z.string().optional(),
});

const StepInput = z.object({
  action: z.enum(['proceed', 'forced', 'silent-host', 'complete', 'fail', 'deny', 'budget-recheck']),
  rebootId: z.string().min(1),
  reason: z.string().optional(),
  error: z.unknown().optional(),
});

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
};

export function createAwaitHandler(deps: Deps) {
  return async (payload: unknown): Promise<{ registered: boolean }> => {
    const p = parse(AwaitInput, payload);
    const { reboot, node } = await load(deps, p.rebootId);
    const reg = { token: p.taskToken, step: p.step, enteredAt: p.enteredAt };
    // Cancelled (contract 7.3): every wait answers at once, and nothing more is sent.
    if (reboot.status === 'cancelled') {
      await deps.workflows.wake(p.taskToken, { signal: 'cancelled' });
      return { registered: false };
    }
    // The workflow has moved on (this Task timed out while its Lambda was slow): send nothing, register nothing.
    if (isLateRegistration(reboot, reg)) return { registered: false };
    const record = await sendStepCommands(deps, reboot, p.step, node);
    const at = deps.clock.now().toISOString();
    let registered = false;
    await changeReboot(
      deps,
      reboot.id,
      (r) => {
        registered = false;
        if (isLateRegistration(r, reg)) return null;
        registered = true;
        record(r);
        r.waiter = { token: p.taskToken, step: p.step, waitFor: p.waitFor as WaitFor, deadline: p.deadline ?? r.deadline, at, ...(p.enteredAt ? { enteredAt: p.enteredAt } : {}) };
        if (p.status) {
          const next = advanceStatus(r.status, p.status);
          if (next !== r.status) {
            r.status = next;
            r.history.push(history(at, next, STEP_STORY[p.step] ?? p.step));
          }
        }
        return r;
      },
      node,
    );
    // Back up and handed to recovery, the xPU is no longer rebooting: a host reboot (the one
    // `afterReady: reboot-host` asks for above all) must not be denied on its account.
    if (registered && reboot.kind === 'xpu' && p.step === 'recover') await deps.store.release(reboot.node, 'xpu', reboot.xpu, reboot.id);
    if (registered && p.step === 'budget') await onQueuedWaitRegistered(deps, reboot.id, node);
    return { registered };
  };
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

/** Marks closed commands timed out on the reboot, unless a result got there first. */
function markTimedOut(r: StoredReboot, closed: string[]) {
  for (const id of closed) if (r.commands[id] && !isFinal(r.commands[id].status)) r.commands[id].status = 'timed-out';
}

export function createStepHandler(deps: Deps) {
  return async (payload: unknown): Promise<unknown> => {
    const p = parse(StepInput, payload);
    const { reboot, node } = await load(deps, p.rebootId);
    const now = deps.clock.now();
    const at = now.toISOString();
    switch (p.action) {
      case 'proceed': {
        if (reboot.endedAt || reboot.forced) return { ok: true }; // cancelled or forced by an operator meanwhile
        const record = await sendStepCommands(deps, reboot, 'proceed', node);
        await changeReboot(deps, reboot.id, (r) => {
          record(r);
          if (r.rebootingAt) return r;
          r.status = advanceStatus(r.status, 'rebooting');
          r.rebootingAt = at;
          r.history.push(history(at, 'rebooting', 'the host is prepared: told the xPU to reboot now, ahead of its deadline'));
          return r;
        }, node);
        return { ok: true };
      }
      case 'forced': {
        // What the host left undone, with where each command got to (delivered, running, failed...).
        const undone = await Promise.all(
          undoneCommands(reboot, ['prepare', 'crash']).map(async (c) =>
            isFinal(c.status) ? c : { ...c, status: (await deps.store.getCommand(c.agent, c.id))?.status ?? c.status },
          ),
        );
        const closed = await timeOut(deps, reboot, ['prepare', 'crash']);
        let changed = false;
        await changeReboot(deps, reboot.id, (r) => {
          changed = false;
          if (r.forced) return null;
          changed = true;
          r.forced = true;
          r.outstanding = undone.map((c) => `${c.type} (${c.status})`);
          markTimedOut(r, closed);
          r.status = advanceStatus(r.status, 'rebooting');
          // The watchdog fired at the deadline the wait was timed on; an extension that slipped in after
          // the timer fired must not date the reboot in the future.
          r.rebootingAt = r.deadline && Date.parse(r.deadline) <= now.getTime() ? r.deadline : at;
          r.history.push(
            history(at, 'forced', `deadline reached: the xPU watchdog reboots it${undone.length ? `; still outstanding: ${r.outstanding.join(', ')}` : ''}`),
          );
          return r;
        }, node);
        if (changed) deps.metrics.count('RebootsForced');
        return { ok: true };
      }
      case 'silent-host': {
        // A host that answered every preparation command (some failed) has nothing left to heartbeat
        // about: it is not silent, it could not prepare. Either way the watchdog deadline decides.
        const prep = Object.values(reboot.commands).filter((c) => c.step === 'prepare');
        const answered = prep.length > 0 && prep.every((c) => isFinal(c.status));
        const phase = answered ? 'host-not-prepared' : 'silent-host';
        const detail = answered
          ? `the host could not prepare (${prep.filter((c) => c.status !== 'succeeded' && c.status !== 'skipped').map((c) => `${c.type} ${c.status}`).join(', ')}): the xPU reboots at its deadline`
          : 'the host agent stopped answering: the xPU reboots at its deadline';
        let changed = false;
        const updated = await changeReboot(deps, reboot.id, (r) => {
          // A replayed step (the same silence) is recorded once.
          changed = r.history.at(-1)?.phase !== phase;
          if (!changed) return null;
          r.history.push(history(at, phase, detail));
          return r;
        }, node);
        if (changed && !answered) deps.metrics.count('SilentHosts');
        return { signal: 'silent', ...noticeWindow(updated ?? reboot, now) };
      }
      case 'budget-recheck':
        return recheckQueued(deps, reboot.id, node);
      case 'deny': {
        const record = await sendStepCommands(deps, reboot, 'deny', node);
        await changeReboot(deps, reboot.id, (r) => {
          record(r);
          return r;
        }, node);
        return { ok: true };
      }
      case 'complete':
      case 'fail': {
        const closed = await timeOut(deps, reboot, Object.values(reboot.commands).map((c) => c.step));
        const failed = p.action === 'fail';
        const reason = p.reason ?? (failed ? 'failed' : 'completed');
        let changed = false;
        const ended = await changeReboot(deps, reboot.id, (r) => {
          changed = false;
          if (r.endedAt) return null;
          changed = true;
          markTimedOut(r, closed);
          r.status = failed ? 'failed' : 'completed';
          r.endedAt = at;
          r.waiter = null;
          const why = failed ? failureStory(reason, p.error) : 'the reboot is complete';
          r.history.push(history(at, r.status, why));
          return r;
        }, node);
        await deps.store.release(reboot.node, reboot.kind, reboot.xpu, reboot.id);
        // Budget slots go back first, so that a rollout woken next finds its slot free.
        await releaseBudgets(deps, reboot, node);
        // Rollouts (issue 16): the end of a reboot a rollout asked for lets its next xPU start. Also on a replay (harmless).
        await wakeRolloutOf(deps, ended);
        // A replayed step must not raise the alarm metric twice.
        if (failed && changed) {
          deps.metrics.count('RebootFailed', 1, { reason });
          deps.logger.error('reboot failed', { rebootId: reboot.id, node: reboot.node, reason });
        }
        return { ok: true };
      }
    }
  };
}

function failureStory(reason: string, error: unknown): string {
  const known: Record<string, string> = {
    'xpu-never-returned': 'the xPU did not report ready within the recovery bound',
    'host-never-returned': 'the host did not come back within its bound',
    'xpus-never-returned': 'an xPU without persistent power did not come back after the host reset',
  };
  if (known[reason]) return known[reason];
  const e = error as { Error?: string; Cause?: string } | undefined;
  return `${reason}${e?.Error ? `: ${e.Error}${e.Cause ? ` (${String(e.Cause).slice(0, 300)})` : ''}` : ''}`;
}
