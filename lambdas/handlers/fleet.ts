// Fleet safety in the handlers (docs/fleet-safety.md): budget admission, the queue's waits and wake-ups, holds, cancel and force.
import {
  asProvisioned,
  budgetFullReason,
  budgetSlotsOf,
  describeHold,
  holdsOn,
  isHoldActive,
  mayStartReboot,
  mayWaitOn,
  onBudgetRefused,
  queueRecheckAt,
  queueWindow,
  admittedDeadline,
  type Admission,
  type Hold,
} from '../core/budgets.ts';
import {
  admitNew,
  countOutOfQueue,
  leaveQueue as leaveQueueStep,
  noteBudgetExceeded,
  noteQueueRecheck,
  recordQueuedPostpone,
  type Effect,
} from '../core/model.ts';
import { isEnded, isFinal, noticeWindow, planPostpone, type PlannedCommand, type StoredReboot } from '../core/reboot.ts';
import { newCommands } from './command-delivery.ts';
import type { NodeDef } from '../core/types.ts';
import type { QueuedEntry } from '../ports/index.ts';
import type { Deps } from './deps.ts';
import { applyStep } from './effects.ts';
import { wakeRolloutOf } from './rollout.ts';

export async function activeHolds(deps: Pick<Deps, 'store' | 'clock'>): Promise<Hold[]> {
  const now = deps.clock.now();
  return (await deps.store.listHolds()).filter((h) => isHoldActive(h, now));
}

/**
 * Nodes as budgets and holds see them (`asProvisioned`: in the tenant they are provisioned for),
 * from their state in the store: one batched, eventually consistent read, for readers (holds,
 * rollouts, the fleet view); the reboot paths have the state at hand.
 */
export async function provisionedNodes(deps: Pick<Deps, 'store'>, nodes: readonly NodeDef[]): Promise<NodeDef[]> {
  if (!nodes.length) return [];
  const states = await deps.store.getNodeStates(nodes.map((n) => n.id));
  return nodes.map((n) => asProvisioned(n, states.get(n.id)?.provisionedTenant));
}

/**
 * May this node start a reboot now (no hold on it, room in each of its budgets)? For rollouts and
 * the fleet view. An answer, not a reservation: the reboot itself takes its slots atomically.
 * `node` as provisioned (provisionedNodes), like the nodes of `alsoUnavailable`.
 */
export async function mayNodeStartReboot(
  deps: Pick<Deps, 'store' | 'clock'>,
  node: NodeDef,
  /** Nodes about to take slots (by budget key) that the store does not count yet, e.g. a rollout's next xPUs. */
  alsoUnavailable: ReadonlyMap<string, readonly string[]> = new Map(),
): Promise<Admission> {
  const [holds, usage] = await Promise.all([activeHolds(deps), deps.store.budgetUsage(budgetSlotsOf(node).map((s) => s.key))]);
  for (const [key, nodes] of alsoUnavailable) usage.set(key, [...new Set([...(usage.get(key) ?? []), ...nodes])]);
  return mayStartReboot(node, holds, usage, deps.clock.now());
}

type Taken = { ok: true; keys: string[] } | { ok: false; kind: 'hold' | 'budget'; reason: string; holds: Hold[] };

/** Takes the node's budget slots for a reboot that may be held back, unless a hold or a full budget says no. `node` as provisioned. */
async function takeSlots(deps: Deps, node: NodeDef, rebootId: string, holdsRead?: Promise<Hold[]>): Promise<Taken> {
  const holds = holdsOn(node, await (holdsRead ?? activeHolds(deps)), deps.clock.now());
  if (holds.length) return { ok: false, kind: 'hold', reason: describeHold(holds[0]), holds };
  const slots = budgetSlotsOf(node);
  if (!slots.length) return { ok: true, keys: [] };
  const res = await deps.store.acquireBudgets(slots, node.id, rebootId, { force: false });
  if (!res.ok) return { ok: false, kind: 'budget', reason: budgetFullReason(res.slot, res.holders, res.unavailable), holds: [] };
  return { ok: true, keys: slots.map((s) => s.key) };
}

/** Counts a reboot that is never held (a crash, the queue's cap, an operator's force); says which budgets it goes beyond. `node` as provisioned. */
async function countSlots(deps: Deps, node: NodeDef, rebootId: string): Promise<{ keys: string[]; beyond?: string }> {
  const slots = budgetSlotsOf(node);
  if (!slots.length) return { keys: [] };
  const res = await deps.store.acquireBudgets(slots, node.id, rebootId, { force: true });
  const over = res.ok ? res.overshoot : [];
  const beyond = over
    .map((s) => `${s.per === 'fleet' ? 'the fleet' : `${s.per} ${s.value}`} (maxUnavailable ${s.maxUnavailable})`)
    .join(', ');
  return { keys: slots.map((s) => s.key), ...(beyond ? { beyond } : {}) };
}

/**
 * Decides a new reboot against holds and budgets, before it is stored: a crash (or an unannounced
 * reboot, of an xPU or of the host) is never held but counts (and says when it goes beyond a budget);
 * a planned xPU reboot takes its slots or is queued.
 * Its tenant budget and tenant holds are those of `reboot.tenant`: the tenant the node was provisioned for when it began.
 */
export async function admitNewReboot(
  deps: Deps,
  node: NodeDef,
  reboot: StoredReboot,
  /** `activeHolds` read by the caller alongside its claim (a start reads it anyway; not after the claim). */
  holdsRead?: Promise<Hold[]>,
): Promise<StoredReboot> {
  const now = deps.clock.now();
  const placed = asProvisioned(node, reboot.tenant);
  if (reboot.mode === 'crash' || reboot.mode === 'unannounced') {
    const counted = await countSlots(deps, placed, reboot.id);
    return admitNew(reboot, counted.keys, counted.beyond, now);
  }
  const taken = await takeSlots(deps, placed, reboot.id, holdsRead);
  if (taken.ok) return admitNew(reboot, taken.keys, undefined, now);
  return onBudgetRefused(reboot, `${taken.kind}: ${taken.reason}`, taken.holds, node.policy.xpuReboot, now);
}

export type HostAdmission = { kind: 'allow'; keys: string[] } | { kind: 'deny'; reason: 'hold' | 'budget'; detail: string };

/**
 * A host reboot request beyond a budget, or on a held node, is denied (docs/fleet-safety.md: reason
 * `budget` or `hold`). `provisionedTenant`: the node's (NodeStateRecord), which its tenant budget and holds follow.
 */
export async function admitHostReboot(
  deps: Deps,
  node: NodeDef,
  rebootId: string,
  provisionedTenant: string | undefined,
): Promise<HostAdmission> {
  const taken = await takeSlots(deps, asProvisioned(node, provisionedTenant), rebootId);
  if (taken.ok) return { kind: 'allow', keys: taken.keys };
  return { kind: 'deny', reason: taken.kind, detail: taken.reason };
}

// --- commands ---------------------------------------------------------------------------------

/** Writes commands (idempotently, by id) in the given order and wakes their agents' long polls. */
async function putCommands(deps: Deps, reboot: StoredReboot, planned: PlannedCommand[], step: string): Promise<void> {
  for (const cmd of newCommands(reboot, planned, step, deps.clock.now().toISOString())) await deps.store.putCommand(cmd);
  for (const agent of new Set(planned.map((p) => p.agent))) deps.signal.notify(agent);
}

async function closeCommands(deps: Deps, reboot: StoredReboot, ids: string[]): Promise<void> {
  const at = deps.clock.now().toISOString();
  await Promise.all(
    ids.map((id) => {
      const c = reboot.commands[id];
      return c
        ? deps.store.updateCommand(c.agent, id, (cmd) => (isFinal(cmd.status) ? null : { ...cmd, status: 'timed-out', finishedAt: at }))
        : undefined;
    }),
  );
}

// --- the queue ----------------------------------------------------------------------------------

function entryOf(r: StoredReboot): QueuedEntry | undefined {
  return r.queue ? { rebootId: r.id, node: r.node, queuedAt: r.queue.queuedAt } : undefined;
}

/**
 * Lets a queued reboot go on (`slot`: its slots are taken; `cap`: it waited as long as its deadline
 * may be held and goes on anyway, counted beyond its budget). Re-dates its deadline and tells the
 * xPU. Returns the reboot as it now is.
 */
async function leaveQueue(
  deps: Deps,
  node: NodeDef,
  rebootId: string,
  how: 'slot' | 'cap',
  keys: string[],
  why?: string,
): Promise<StoredReboot | undefined> {
  const now = deps.clock.now();
  let postpone: PlannedCommand | undefined;
  const res = await applyStep(
    deps,
    rebootId,
    (r) => {
      const left = leaveQueueStep(r, how, keys, node, now, why);
      postpone = left.postpone;
      return left.step;
    },
    node,
    { wake: 'always' },
  );
  const updated = res?.reboot;
  if (!updated) return undefined;
  if (postpone) await putCommands(deps, updated, [postpone], 'budget');
  const entry = entryOf(updated);
  if (entry && updated.status !== 'queued') await deps.store.dequeueReboot(entry);
  // Cancelled while we took its slots: give them back.
  if (isEnded(updated.status)) await deps.store.releaseBudgets(keys, updated.node, updated.id);
  return updated;
}

/** Tries to let one queued reboot go on now. */
async function tryAdmit(deps: Deps, entry: QueuedEntry): Promise<'admitted' | 'held' | 'full' | 'gone'> {
  const reboot = await deps.store.getReboot(entry.rebootId);
  // Not stored yet: its creator queues it and its workflow's first look decides (no wake-up is lost).
  if (!reboot) return 'gone';
  if (reboot.status !== 'queued') {
    await deps.store.dequeueReboot(entry);
    return 'gone';
  }
  const node = (await deps.inventory({ nodes: [reboot.node] })).node(reboot.node);
  if (!node) return 'gone';
  const taken = await takeSlots(deps, asProvisioned(node, reboot.tenant), reboot.id);
  if (!taken.ok) return taken.kind === 'hold' ? 'held' : 'full';
  const after = await leaveQueue(deps, node, reboot.id, 'slot', taken.keys);
  return after && after.status !== 'queued' && !isEnded(after.status) ? 'admitted' : 'gone';
}

/**
 * Lets queued reboots go on, oldest first, after slots were given back (`keys`: only those in one
 * of these budgets) or a hold ended (all). Each takes its slots by conditional write, so racing
 * wakers never admit more than there is room for.
 */
export async function wakeQueued(deps: Deps, keys?: readonly string[]): Promise<void> {
  const entries = await deps.store.queuedReboots();
  if (!entries.length) return;
  const index = await deps.inventory({ nodes: [...new Set(entries.map((e) => e.node))] });
  for (const e of entries) {
    if (keys) {
      const node = index.node(e.node);
      if (!node || !mayWaitOn(node, keys)) continue;
    }
    await tryAdmit(deps, e);
  }
}

/**
 * Whoever ends a reboot calls this: the node's slots go back (the node stays unavailable while
 * another reboot of it holds them), and the oldest queued reboots of those budgets go on.
 */
export async function releaseBudgets(deps: Deps, reboot: StoredReboot, node?: NodeDef): Promise<void> {
  const n = node ?? (await deps.inventory({ nodes: [reboot.node] })).node(reboot.node);
  const keys = [...new Set([...(reboot.budgetKeys ?? []), ...(n ? budgetSlotsOf(asProvisioned(n, reboot.tenant)).map((s) => s.key) : [])])];
  if (!keys.length) return;
  await deps.store.releaseBudgets(keys, reboot.node, reboot.id);
  await wakeQueued(deps, keys);
}

/**
 * The queued reboot's workflow registered its wait (WaitForBudgetSlot): make sure it is in the
 * queue and its xPU's watchdog is held, then look once more for a slot (one may have freed between
 * the first refusal and now, with no one left to wake it).
 */
export async function onQueuedWaitRegistered(deps: Deps, rebootId: string, node: NodeDef): Promise<void> {
  const reboot = await deps.store.getReboot(rebootId);
  const entry = reboot && reboot.status === 'queued' ? entryOf(reboot) : undefined;
  if (!reboot?.queue || !reboot.deadline || !entry) return;
  await deps.store.enqueueReboot(entry);
  const now = deps.clock.now();
  const postpone = planPostpone(reboot, reboot.deadline, `queued: ${reboot.queue.reason}`, node, now);
  if (!reboot.commands[postpone.id]) {
    const updated = (await applyStep(deps, rebootId, (r) => recordQueuedPostpone(r, postpone, now), node, { wake: 'always' }))?.reboot;
    if (updated?.commands[postpone.id]) await putCommands(deps, updated, [postpone], 'budget');
  }
  await tryAdmit(deps, entry);
}

/**
 * The queued wait timed out (WaitForBudgetSlot's TimeoutSecondsPath): look again. Past the cap the
 * reboot goes on anyway, beyond its budget (finding `budget-exceeded`). The answer is the workflow's
 * next window.
 */
export async function recheckQueued(deps: Deps, rebootId: string, node: NodeDef): Promise<Record<string, unknown>> {
  const now = deps.clock.now();
  let reboot = await deps.store.getReboot(rebootId);
  if (!reboot) return { signal: 'cancelled' };
  if (reboot.status === 'cancelled') return { signal: 'cancelled' };
  if (reboot.forced) return { signal: 'forced', ...noticeWindow(reboot, now) };
  const entry = reboot.status === 'queued' ? entryOf(reboot) : undefined;
  if (reboot.queue && entry) {
    const outage = reboot.crashedAt || reboot.downAt || reboot.readyAt;
    const capped = now.getTime() >= Date.parse(reboot.queue.capAt);
    const placed = asProvisioned(node, reboot.tenant);
    if (!outage && !capped && (await tryAdmit(deps, entry)) !== 'admitted') {
      const holds = holdsOn(placed, await activeHolds(deps), now);
      const recheckAt = queueRecheckAt(reboot.queue, holds, now);
      const updated = await applyStep(deps, rebootId, (r) => noteQueueRecheck(r, recheckAt), node, { wake: 'never' });
      const wait = updated && queueWindow(updated.reboot, now);
      if (wait) return wait;
    } else if (outage || capped) {
      // The xPU went down while queued (it did not wait), or the wait reached its cap: never held longer, but counted.
      const counted = await countSlots(deps, placed, rebootId);
      const why = outage ? 'the xPU went down while queued' : undefined;
      await leaveQueue(deps, node, rebootId, outage ? 'slot' : 'cap', counted.keys, why);
      if (counted.beyond) await applyStep(deps, rebootId, (r) => noteBudgetExceeded(r, counted.beyond!, now), node, { wake: 'never' });
    }
    reboot = (await deps.store.getReboot(rebootId)) ?? reboot;
  }
  if (reboot.status === 'cancelled') return { signal: 'cancelled' };
  if (reboot.forced) return { signal: 'forced', ...noticeWindow(reboot, now) };
  if (reboot.crashedAt) return { signal: 'crashed', ...noticeWindow(reboot, now) };
  if (reboot.readyAt) return { signal: 'xpu-ready', ...noticeWindow(reboot, now) };
  if (reboot.downAt) return { signal: 'down', ...noticeWindow(reboot, now) };
  return { signal: 'admitted', ...noticeWindow(reboot, now) };
}

/** The deadline a queued reboot would get if it went on now (for views). */
export function deadlineIfAdmitted(r: StoredReboot, node: NodeDef, now: Date): string | undefined {
  return r.queue ? admittedDeadline(r.queue, r.noticeSeconds, node.policy.xpuReboot.maxExtensionSeconds, now) : undefined;
}

// --- effects of the model's operator controls (lambdas/core/model.ts: cancel, force) ---------------

/** Carries out a fleet-safety effect of a model transition, after the reboot was written. Every one is idempotent. */
export async function performFleetEffect(deps: Deps, reboot: StoredReboot, e: FleetEffect, node?: NodeDef): Promise<void> {
  switch (e.kind) {
    case 'close-commands':
      await closeCommands(deps, reboot, e.ids);
      break;
    case 'leave-queue': {
      const entry = entryOf(reboot);
      if (entry) await deps.store.dequeueReboot(entry);
      if (!e.takeBudget) break;
      const n = node ?? (await deps.inventory({ nodes: [reboot.node] })).node(reboot.node);
      if (!n) break;
      const counted = await countSlots(deps, asProvisioned(n, reboot.tenant), reboot.id);
      const now = deps.clock.now();
      await applyStep(deps, reboot.id, (r) => countOutOfQueue(r, counted.keys, counted.beyond, now), n, { wake: 'never' });
      break;
    }
    case 'release-budgets':
      await releaseBudgets(deps, reboot, node);
      // Rollouts: a cancelled reboot ends here, not in the workflow's last step: with its
      // slots given back, tell its rollout, so that the next xPU starts at once.
      if (reboot.endedAt) await wakeRolloutOf(deps, reboot);
      break;
  }
}

export type FleetEffect = Extract<Effect, { kind: 'close-commands' | 'leave-queue' | 'release-budgets' }>;
