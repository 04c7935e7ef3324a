// Reconciles reboots with their workflow executions: a reboot whose execution ended, failed or is gone
// can never end by itself, and would hold its xPU or host claim for ever. Run at start and on a schedule.
import { endByReconciler } from '../core/model.ts';
import { isEnded, isFinal, outstandingCommands, type StoredReboot } from '../core/reboot.ts';
import { REBOOT_STATUSES, type RebootStatus } from '../core/types.ts';
import type { WorkflowExecutionState } from '../ports/index.ts';
import { wakeIfReady, type Deps } from './deps.ts';
import { applyStep, performEffects } from './effects.ts';
import { WORKFLOW_OF } from '../core/workflow-io.ts';
import { wakeQueued } from './fleet.ts';

export interface ReconcilerOptions {
  /**
   * A reboot whose execution does not exist is left alone this long after it was recorded: its start
   * may still be on its way (an ingest retry, or an event parked in the DLQ and redriven).
   */
  missingGraceSeconds?: number;
  pageSize?: number;
}

export interface ReconcileResult {
  checked: number;
  ended: Array<{ rebootId: string; reason: string }>;
  /** Running reboots whose workflow waited for something that had already happened: woken now. */
  woken: string[];
}

/** Statuses whose reboots have a running execution. A queued reboot has none yet. */
const ACTIVE: RebootStatus[] = REBOOT_STATUSES.filter((s) => !isEnded(s) && s !== 'queued');

export { WORKFLOW_OF };

/** Why a reboot must be ended, or null while its execution runs (or may still start). */
export function reconcileReason(
  reboot: StoredReboot,
  state: WorkflowExecutionState,
  now: Date,
  graceSeconds: number,
): { reason: string; detail: string } | null {
  switch (state.status) {
    case 'RUNNING':
    case 'PENDING_REDRIVE':
      return null;
    case 'NOT_FOUND': {
      const recordedAt = Date.parse(reboot.history[0]?.at ?? reboot.notifiedAt);
      if (Number.isFinite(recordedAt) && now.getTime() - recordedAt < graceSeconds * 1000) return null;
      return { reason: 'workflow-missing', detail: 'its workflow execution does not exist (never started, or lost)' };
    }
    case 'SUCCEEDED':
      return { reason: 'workflow-ended', detail: 'its workflow execution ended without ending the reboot' };
    default: {
      const why = [state.error, state.cause?.slice(0, 300)].filter(Boolean).join(': ');
      return { reason: 'workflow-failed', detail: `its workflow execution ended ${state.status}${why ? ` (${why})` : ''}` };
    }
  }
}

export function createReconciler(deps: Deps, opts: ReconcilerOptions = {}) {
  const grace = opts.missingGraceSeconds ?? 15 * 60;
  const pageSize = opts.pageSize ?? 100;

  async function end(reboot: StoredReboot, reason: string, detail: string): Promise<boolean> {
    const at = deps.clock.now();
    // Its commands will never be waited for again: close them so agents stop being handed them.
    const open = outstandingCommands(reboot, [...new Set(Object.values(reboot.commands).map((c) => c.step))]);
    const closed = await Promise.all(
      open.map((c) =>
        deps.store.updateCommand(c.agent, c.id, (cmd) =>
          isFinal(cmd.status) ? null : { ...cmd, status: 'timed-out', finishedAt: at.toISOString() },
        ),
      ),
    );
    const closedIds = open.filter((_, i) => closed[i]?.changed).map((c) => c.id);
    const res = await applyStep(deps, reboot.id, (r) => endByReconciler(r, closedIds, reason, detail, at), undefined, { wake: 'always' });
    const ended = !!res?.changed;
    // Released even when another path ended it first: releasing a claim not held is harmless. As an
    // effect, so what the reboot kept for the xPU's next one goes to the ingest (model.ts `defer`).
    // Its budget slots go back too, as whoever ends a reboot gives them back (docs/fleet-safety.md):
    // else its rack stays full for good and what waits behind it goes only at its cap.
    const after = res?.reboot ?? reboot;
    await performEffects(deps, after, isEnded(after.status) ? [{ kind: 'release' }, { kind: 'release-budgets' }] : [{ kind: 'release' }]);
    if (ended) {
      deps.metrics.count('RebootsReconciled', 1, { reason });
      deps.metrics.count('RebootFailed', 1, { reason });
      deps.logger.error('reboot ended by the reconciler', { rebootId: reboot.id, node: reboot.node, reason, detail });
    }
    return ended;
  }

  /**
   * A running workflow waits for something its reboot already records (the wake-up that change sent
   * was lost: it raced the wait's registration, or the process died between the write and the wake).
   * Every change wakes the waiter it satisfies, so this should find nothing; when it does, the wait
   * is woken now instead of running into its time-out and failing the reboot, and it is counted.
   */
  async function wakeLost(id: string): Promise<boolean> {
    const reboot = await deps.store.getReboot(id);
    if (!reboot?.waiter || reboot.endedAt) return false;
    const { waitFor, step } = reboot.waiter;
    if (!(await wakeIfReady(deps, reboot))) return false;
    deps.metrics.count('LostWakeupsRecovered', 1, { waitFor });
    deps.logger.warn('reconciler woke a wait whose condition had already happened', { rebootId: id, waitFor, step });
    return true;
  }

  async function check(listed: Pick<StoredReboot, 'id' | 'kind'>, result: ReconcileResult): Promise<void> {
    result.checked++;
    const state = await deps.workflows.describe(WORKFLOW_OF[listed.kind], listed.id);
    if (state.status === 'RUNNING') {
      if (await wakeLost(listed.id)) result.woken.push(listed.id);
      return;
    }
    // The listing may lag: decide on the reboot as it is now.
    const reboot = await deps.store.getReboot(listed.id);
    if (!reboot || reboot.endedAt) return;
    const why = reconcileReason(reboot, state, deps.clock.now(), grace);
    if (why && (await end(reboot, why.reason, why.detail))) result.ended.push({ rebootId: reboot.id, reason: why.reason });
  }

  return async function reconcile(): Promise<ReconcileResult> {
    const result: ReconcileResult = { checked: 0, ended: [], woken: [] };
    // The reboots not ended, from an index of those alone: a few Queries, however long the fleet's history.
    const active = (await deps.store.activeReboots?.()) ?? null;
    if (active) {
      for (const listed of active) if (ACTIVE.includes(listed.status)) await check(listed, result);
    } else {
      // A store without that index (a local table from before it): the fleet listing, once per active status.
      for (const status of ACTIVE) {
        let cursor: string | undefined;
        do {
          const page = await deps.store.listReboots({ status, limit: pageSize, cursor });
          for (const listed of page.items) if (!listed.endedAt) await check(listed, result);
          cursor = page.next ?? undefined;
        } while (cursor);
      }
    }
    // Queued reboots that have room now go on: after a restart with a budget raised in the inventory, or
    // slots given back by the reboots ended above, or a release whose wake-up was lost. Else each waits
    // for its queued workflow's next look (a minute or more). Each takes its slots by conditional write.
    await wakeQueued(deps);
    return result;
  };
}
