// Applies a model transition to a stored reboot (conditional write, retried on a lost race) and
// carries out the effects it returned. The one way handlers change a reboot.
import { awaitsLateReady, type Effect, type Step } from '../core/model.ts';
import { noticeWindow, type StoredReboot } from '../core/reboot.ts';
import type { NodeDef } from '../core/types.ts';
import { wakeIfReady, type Deps } from './deps.ts';
import { newCommands, writeCommands } from './command-delivery.ts';
import { performFleetEffect } from './fleet.ts';

/** The workflow input of a late recovery: the xPU workflow, entered at RestorePcie. */
export function lateRecoveryInput(r: StoredReboot, node: NodeDef, now: Date) {
  const p = node.policy.xpuReboot;
  return {
    rebootId: r.id,
    node: r.node,
    xpu: r.xpu,
    mode: 'recover-late',
    window: { signal: 'recovered-late', ...noticeWindow(r, now) },
    limits: {
      heartbeatSeconds: p.heartbeatSeconds,
      recoverySeconds: p.recoverySeconds,
      coredumpSeconds: p.coredumpSeconds,
      commandSeconds: p.commandSeconds,
    },
  };
}

/** The execution name of a reboot's late recovery (its first execution has the reboot's id). */
export const lateRecoveryExecution = (rebootId: string) => `${rebootId}-late`;

/**
 * Applies `transition` to reboot `id`: reads, applies, writes if the version is unchanged (else
 * reads and applies again), wakes a waiting workflow the change satisfies, then performs the
 * effects (`wake`: `never` for a change no wait is for, e.g. a heartbeat; `always` where a repeat must
 * look at the waiter again, its first may have died before waking it). A transition that returns the reboot it was given unchanged writes nothing but still
 * has its effects performed (a replay finishing what a crash interrupted).
 */
export async function applyStep(
  deps: Deps,
  id: string,
  transition: (r: StoredReboot) => Step | null,
  node?: NodeDef,
  /** `known`: the reboot as the caller just read it, which spares the read while it is still current. */
  opts: { wake?: 'changed' | 'always' | 'never'; known?: StoredReboot } = {},
): Promise<{ reboot: StoredReboot; changed: boolean } | undefined> {
  let step: Step | null = null;
  const res = await deps.store.updateReboot(
    id,
    (r) => {
      step = transition(r);
      if (!step || step.reboot === r) return null;
      return step.reboot;
    },
    opts.known,
  );
  if (!res) return undefined;
  const wake = opts.wake ?? 'changed';
  if (wake === 'always' || (wake === 'changed' && res.changed)) await wakeIfReady(deps, res.reboot, node);
  const done = step as Step | null;
  if (done) await performEffects(deps, res.reboot, done.effects, node);
  return res;
}

export async function performEffects(deps: Deps, r: StoredReboot, effects: Effect[], node?: NodeDef): Promise<void> {
  for (const e of effects) {
    switch (e.kind) {
      case 'release': {
        const marked = await deps.store.release(r.node, r.kind, r.xpu, r.id, true, awaitsLateReady(r) ? r.endedAt : undefined);
        // A mark means signals were deferred after `r` was read: read them as they are now.
        const deferred = marked ? (await deps.store.getReboot(r.id))?.deferred : r.deferred;
        if (deferred?.length) await deps.queue.send(deferred);
        break;
      }
      case 'defer':
        // Still held: the release will send them. Let go already (perhaps before it saw them): sent now.
        if (r.xpu && r.deferred?.length && !(await deps.store.markDeferred(r.node, r.xpu, r.id))) await deps.queue.send(r.deferred);
        break;
      case 'metric':
        deps.metrics.count(e.name, 1, e.dimensions);
        break;
      case 'start-late-recovery': {
        const n = node ?? (await deps.inventory()).node(r.node);
        if (n) await deps.workflows.start('xpu-reboot', lateRecoveryExecution(r.id), lateRecoveryInput(r, n, deps.clock.now()));
        break;
      }
      case 'send': {
        const now = deps.clock.now();
        const at = now.toISOString();
        const stored = newCommands(r, e.commands, e.step, at);
        await writeCommands(deps, stored, now);
        break;
      }
      case 'provision':
        await deps.store.setProvisionedTenant(r.node, e.tenant);
        break;
      case 'close-commands':
      case 'leave-queue':
      case 'release-budgets':
        await performFleetEffect(deps, r, e, node);
        break;
    }
  }
}
