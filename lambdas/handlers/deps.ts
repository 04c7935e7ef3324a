// What every handler factory is given, and the few operations they all share.
import type { InventoryIndex } from '../core/inventory.ts';
import { evaluateWait, summarize, toCommand, planCommands, type StoredReboot } from '../core/reboot.ts';
import type { NodeDef } from '../core/types.ts';
import type { Clock, CommandSignal, EventQueue, InventoryHint, Metrics, RebootStore, StoredCommand, Workflows } from '../ports/index.ts';
import type { RolloutStore } from '../ports/rollouts.ts';

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

export async function wakeIfReady(deps: Deps, reboot: StoredReboot, node?: NodeDef): Promise<void> {
  if (!reboot.waiter) return;
  const n = node ?? (await deps.inventory({ nodes: [reboot.node] })).node(reboot.node);
  const outcome = evaluateWait(reboot, n, deps.clock.now());
  if (outcome) await deps.workflows.wake(reboot.waiter.token, outcome);
}

/**
 * Writes a step's commands (idempotently: ids derive from reboot, type and target) and wakes
 * their agents' long polls. Returns the change that records them on the reboot, for the caller
 * to apply in its own single update of the reboot.
 */
export async function sendStepCommands(deps: Deps, reboot: StoredReboot, step: string, node: NodeDef): Promise<(r: StoredReboot) => void> {
  const now = deps.clock.now();
  // Only a migration needs to know which other xPUs are busy; spare the read otherwise.
  let busyXpus: string[] = [];
  if (step === 'prepare' && node.xpus.length > 1) {
    const state = await deps.store.getNodeState(node.id);
    busyXpus = Object.entries(state.xpus)
      .filter(([, holder]) => holder !== reboot.id)
      .map(([x]) => x);
  }
  const planned = planCommands(reboot, step, { node, now, busyXpus }).filter((p) => !reboot.commands[p.id]);
  const at = now.toISOString();
  const stored = planned.map((p, order): StoredCommand & { order: number } => ({
    ...toCommand(p, reboot),
    agent: p.agent,
    step,
    status: 'pending',
    noticePhase: p.noticePhase,
    createdAt: at,
    order,
  }));
  await Promise.all(stored.map((c) => deps.store.putCommand(c)));
  notifyAgents(deps, stored);
  return (r) => {
    for (const p of planned) if (!r.commands[p.id]) r.commands[p.id] = summarize(p, step, at);
  };
}

/** Wakes the long polls of the commands' agents, handing each its commands (a local poll then skips reading them back). */
export function notifyAgents(deps: Pick<Deps, 'signal'>, commands: StoredCommand[]): void {
  const byAgent = new Map<string, StoredCommand[]>();
  for (const c of commands) byAgent.set(c.agent, [...(byAgent.get(c.agent) ?? []), c]);
  for (const [agent, cmds] of byAgent) deps.signal.notify(agent, cmds);
}
