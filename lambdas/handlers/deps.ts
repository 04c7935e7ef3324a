// What every handler factory is given, and the few operations they all share.
import type { InventoryIndex } from '../core/inventory.ts';
import { evaluateWait, summarize, planCommands, type StoredReboot } from '../core/reboot.ts';
import type { NodeDef } from '../core/types.ts';
import type { Clock, CommandSignal, EventQueue, InventoryHint, Metrics, NodeStateRecord, RebootStore, Workflows } from '../ports/index.ts';
import type { DownMarks } from '../ports/down-marks.ts';
import type { RolloutStore } from '../ports/rollouts.ts';
import { newCommands, writeCommands } from './command-delivery.ts';
import { endReboot } from './end.ts';

export interface Logger {
  info(msg: string, extra?: Record<string, unknown>): void;
  warn(msg: string, extra?: Record<string, unknown>): void;
  error(msg: string, extra?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} };

export interface Deps {
  store: RebootStore;
  workflows: Workflows;
  queue: EventQueue;
  clock: Clock;
  /**
   * The current inventory; in AWS it is read from the table item by item and cached briefly, so a
   * hint (the nodes or token about to be looked at) keeps it to those items (none: every node).
   */
  inventory: (hint?: InventoryHint) => Promise<InventoryIndex>;
  signal: CommandSignal;
  metrics: Metrics;
  logger: Logger;
  /** Rollouts (docs/fleet-safety.md); absent where a deployment has none wired. */
  rollouts?: RolloutStore;
  /** The downs the API accepted, for cancel (docs/fleet-safety.md); absent, cancel sees applied downs only. */
  downMarks?: DownMarks;
}

/**
 * Changes a reboot and wakes its waiting workflow if the change satisfied what it waits for.
 * Whoever changes a reboot calls this, and so does the waiter when it registers: the one that
 * writes second sees both writes, so a wake-up is never missed (at worst sent twice, harmless).
 */
export async function changeReboot(
  deps: Deps,
  id: string,
  change: (r: StoredReboot) => StoredReboot | null,
  node?: NodeDef,
): Promise<StoredReboot | undefined> {
  const res = await deps.store.updateReboot(id, change);
  if (!res) return undefined;
  await wakeIfReady(deps, res.reboot, node);
  return res.reboot;
}

/** Wakes the reboot's waiting Task when the reboot satisfies it; true when a waiting Task took the answer. */
export async function wakeIfReady(deps: Deps, reboot: StoredReboot, node?: NodeDef): Promise<boolean> {
  if (!reboot.waiter) return false;
  const n = node ?? (await deps.inventory({ nodes: [reboot.node] })).node(reboot.node);
  const outcome = evaluateWait(reboot, n, deps.clock.now());
  if (!outcome) return false;
  const token = reboot.waiter.token;
  // ResumeWorkloads ends the execution itself (a CompleteReboot Task after it was one more billed
  // transition): the change that finished its commands ends the reboot, then wakes it. Should this
  // stop half way, the Task times out into CompleteReboot, which replays the end.
  if (outcome.end) {
    if (!n) return false;
    await endReboot(deps, reboot, n, { failed: false });
  }
  // An outcome with an error name fails the Task: its Catch routes on the name (no Choice state to pay for).
  if (typeof outcome.error === 'string') return deps.workflows.fail(token, outcome.error, JSON.stringify(outcome));
  return deps.workflows.wake(token, outcome);
}

/**
 * Writes a step's commands (idempotently: ids derive from reboot, type and target) and gets them
 * to their agents' long polls (command-delivery.ts). Returns the change that records them on the reboot, for the caller
 * to apply in its own single update of the reboot.
 */
export async function sendStepCommands(
  deps: Deps,
  reboot: StoredReboot,
  step: string,
  node: NodeDef,
  /** The node's state, when the caller read it alongside the reboot (one round trip less). */
  known?: { nodeState?: NodeStateRecord },
): Promise<(r: StoredReboot) => void> {
  const now = deps.clock.now();
  // Only a migration needs to know which other xPUs are busy; spare the read otherwise.
  let busyXpus: string[] = [];
  if (needsNodeState(step, node)) {
    const state = known?.nodeState?.node === node.id ? known.nodeState : await deps.store.getNodeState(node.id);
    busyXpus = Object.entries(state.xpus)
      .filter(([, holder]) => holder !== reboot.id)
      .map(([x]) => x);
  }
  const planned = planCommands(reboot, step, { node, now, busyXpus }).filter((p) => !reboot.commands[p.id]);
  const at = now.toISOString();
  const stored = newCommands(reboot, planned, step, at);
  await writeCommands(deps, stored, now);
  return (r) => {
    for (const p of planned) if (!r.commands[p.id]) r.commands[p.id] = summarize(p, step, at);
  };
}

/** Whether `sendStepCommands` reads the node's state for this step (the await Lambda reads it alongside the reboot then). */
export const needsNodeState = (step: string, node: NodeDef) => step === 'prepare' && node.xpus.length > 1;
