// Ending a reboot, completed or failed: from the workflow's end steps, and from the change that
// finished its last commands (ResumeWorkloads ends the execution: no CompleteReboot Task after it).
import { complete, fail, tenantProvisionedBy } from '../core/model.ts';
import { isEnded, isFinal, outstandingCommands, type StoredReboot } from '../core/reboot.ts';
import type { NodeDef } from '../core/types.ts';
import type { StoredCommand } from '../ports/index.ts';
import type { Deps } from './deps.ts';
import { applyStep } from './effects.ts';
import { releaseBudgets } from './fleet.ts';
import { wakeRolloutOf } from './rollout.ts';

/** Closes commands the workflow stopped waiting for, so agents are no longer handed them. Returns those it closed. */
export async function timeOut(deps: Deps, r: StoredReboot, steps: string[]): Promise<string[]> {
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

/**
 * The early go (`proceed-reboot`) its xPU never picked up, once the xPU went down or came back anyway
 * (its watchdog, an operator's force racing its own reboot): withdrawn, so that its agent, polling
 * again after the boot, does not reboot the xPU a second time. One it picked up stays: its journal
 * never runs it twice, and its result still tells how the go went. Returns those it withdrew.
 */
export async function withdrawUntakenGo(deps: Deps, r: StoredReboot): Promise<string[]> {
  const open = outstandingCommands(r, ['proceed']);
  const withdrawn = await Promise.all(
    open.map((c) =>
      deps.store.updateCommand(c.agent, c.id, (cmd) =>
        cmd.status === 'pending'
          ? {
              ...cmd,
              status: 'timed-out',
              finishedAt: deps.clock.now().toISOString(),
              output: 'withdrawn: the xPU rebooted before it took this',
            }
          : null,
      ),
    ),
  );
  return open.filter((_, i) => withdrawn[i]?.changed).map((c) => c.id);
}

/** Ends the reboot (idempotent: a replay writes nothing and only lets go of the claim again). */
export async function endReboot(
  deps: Deps,
  reboot: StoredReboot,
  node: NodeDef,
  end: { failed: boolean; reason?: string; error?: unknown },
): Promise<void> {
  const now = deps.clock.now();
  const steps = Object.values(reboot.commands).map((c) => c.step);
  const closed = await timeOut(deps, reboot, steps);
  const { failed } = end;
  const reason = end.reason ?? (failed ? 'failed' : 'completed');
  // Results that beat the closing (the wait timed out as they arrived) are told as they are.
  const settled = failed ? await settledMeanwhile(deps, reboot, steps, closed) : [];
  // Never shown ended while the node still names the old tenant: the next reboot of the node would be
  // budgeted and held under it (idempotent: the reprovision step's registration wrote it already, or will).
  // Not on a replay of an end already written: a later host reboot may have provisioned another since.
  const tenant = reboot.endedAt ? undefined : tenantProvisionedBy(reboot);
  if (tenant) await deps.store.setProvisionedTenant(reboot.node, tenant);
  const res = await applyStep(
    deps,
    reboot.id,
    (r) => (failed ? fail(r, reason, end.error, closed, now, settled) : complete(r, closed, now)) ?? releaseAgain(r),
    node,
  );
  // Budget slots go back once the end is written, never before: the node is unavailable until its
  // reboot ends (contract 7.3), and a queued reboot the release admits must not be seen in flight
  // beside the one it replaces. Also on a replay: a crash between the write and here loses no slot.
  const ended = res?.reboot ?? reboot;
  if (isEnded(ended.status)) await releaseBudgets(deps, ended, node);
  // Rollouts: the end of a reboot a rollout asked for lets its next xPU start; woken after the
  // release, so it finds the slot free. Also on a replay (harmless).
  await wakeRolloutOf(deps, res?.reboot);
  if (failed && res?.changed && !reboot.endedAt) deps.logger.error('reboot failed', { rebootId: reboot.id, node: reboot.node, reason });
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
