// Pure rollout decisions: which xPUs a selector plans, what a reboot's outcome means for its item, what starts next.
import { createHash } from 'node:crypto';
import type { HistoryEntry, Inventory, NodeDef, RebootStatus } from './types.ts';
import { COORDINATOR } from './principal.ts';

export const ROLLOUT_STATUSES = ['running', 'paused', 'completed', 'cancelled'] as const;
export type RolloutStatus = (typeof ROLLOUT_STATUSES)[number];

/** `sent`: reboot-xpu is out, no reboot seen yet; `rebooting`: its reboot runs; `done`/`failed`: it ended. */
export type RolloutItemState = 'pending' | 'sent' | 'rebooting' | 'done' | 'failed';

export interface RolloutItem {
  node: string;
  xpu: string;
  state: RolloutItemState;
  /** The reboot-xpu command (agent `node.xpu`). */
  commandId?: string;
  rebootId?: string;
  sentAt?: string;
  endedAt?: string;
  /** Why it failed (the reboot's status, or what happened to the command). */
  reason?: string;
}

export interface Selector {
  node?: string;
  rack?: string;
  zone?: string;
  tenant?: string;
}

export interface Rollout {
  id: string;
  status: RolloutStatus;
  selector: Selector;
  maxUnavailable: number;
  maxFailures: number;
  reason: string;
  noticeSeconds?: number;
  createdAt: string;
  by?: string;
  endedAt?: string;
  /** What holds the next start back now (window, budget), for operators; absent when nothing does. */
  blocked?: string;
  items: RolloutItem[];
  history: HistoryEntry[];
  /** The workflow's callback token while it waits; woken by a reboot's end and by cancel. */
  waiter?: { token: string; at: string; enteredAt?: string } | null;
  /** Which execution runs the rollout (1: the first, named after it; see TICKS_PER_EXECUTION), and its ticks so far. */
  generation?: number;
  ticks?: number;
  version: number;
}

/**
 * Ticks one execution of a rollout makes before it hands the rollout to a successor execution and
 * ends. Step Functions fails an execution at 25,000 history events; a tick and the wait after it
 * are about 13 (Task 5, Choice 2, callback Task 6), and a rollout looks again every 10-60 s while
 * its reboots run: a 1,000-xPU rollout would otherwise fail after a day or two. The local engine
 * has no such limit.
 */
export const TICKS_PER_EXECUTION = 1000;

/** The execution that runs generation `generation` of a rollout: the first is named after the rollout. */
export function rolloutExecutionName(rolloutId: string, generation: number): string {
  return generation <= 1 ? rolloutId : `${rolloutId}-g${generation}`;
}

/** The generation an execution name stands for (1 for the rollout's own name, or one not of this form). */
export function rolloutGenerationOf(rolloutId: string, executionName: string): number {
  if (!executionName.startsWith(`${rolloutId}-g`)) return 1;
  const n = Number(executionName.slice(rolloutId.length + 2));
  return Number.isInteger(n) && n > 1 ? n : 1;
}

export const IN_FLIGHT: readonly RolloutItemState[] = ['sent', 'rebooting'];
export const isInFlight = (it: RolloutItem) => IN_FLIGHT.includes(it.state);
export const isItemEnded = (it: RolloutItem) => it.state === 'done' || it.state === 'failed';

/** Nodes the selector names (all for an empty one), rack by rack; each xPU of them in inventory order. A `tenant` selector matches `node.tenant`: pass the nodes as provisioned (budgets.ts asProvisioned). */
export function planRollout(inventory: Inventory, selector: Selector): Array<{ node: string; xpu: string }> {
  const match = (n: NodeDef) =>
    (selector.node === undefined || n.id === selector.node) &&
    (selector.rack === undefined || n.rack === selector.rack) &&
    (selector.zone === undefined || n.zone === selector.zone) &&
    (selector.tenant === undefined || n.tenant === selector.tenant);
  const nodes = inventory.nodes.filter(match);
  // Stable: nodes of one rack stay in inventory order, racks in order of first appearance.
  const racks = [...new Set(nodes.map((n) => n.rack ?? ''))];
  return racks.flatMap((rack) =>
    nodes.filter((n) => (n.rack ?? '') === rack).flatMap((n) => n.xpus.map((x) => ({ node: n.id, xpu: x.id }))),
  );
}

/**
 * The first xPU of a plan that another rollout still has to reboot: an item of a running rollout that
 * has not ended, or one a paused rollout has in flight. Two rollouts asking one xPU get one reboot (the
 * second announce joins the first's reboot, tagged with the first rollout), so the second would wait out
 * its reboot-xpu deadline and count a failure that never happened: such a start is refused instead.
 */
export function overlapOf(
  plan: ReadonlyArray<{ node: string; xpu: string }>,
  rollouts: readonly Rollout[],
): { rolloutId: string; status: RolloutStatus; node: string; xpu: string } | undefined {
  const taken = new Map<string, Rollout>();
  for (const r of rollouts)
    for (const it of r.items)
      if ((r.status === 'running' && !isItemEnded(it)) || (r.status === 'paused' && isInFlight(it))) taken.set(`${it.node}/${it.xpu}`, r);
  for (const p of plan) {
    const r = taken.get(`${p.node}/${p.xpu}`);
    if (r) return { rolloutId: r.id, status: r.status, node: p.node, xpu: p.xpu };
  }
  return undefined;
}

/**
 * A rollout's claim on one xPU: the item a start writes with a conditional put before its rollout
 * record, so that two starts at once (two API instances) cannot both pass overlapOf over a list that
 * shows neither. Released when the rollout ends; a claim left behind is superseded (claimHolds).
 */
export interface RolloutClaim {
  node: string;
  xpu: string;
  rolloutId: string;
  /** When it was taken (the claiming instance's clock). */
  at: string;
}

/**
 * How long a claim whose rollout record does not exist keeps the xPU: its start is still on its way.
 * Far longer than a start request can run (API Gateway gives up at 30 s; a start that finds itself
 * past half of this gives up rather than write its record, see claimIsFresh), with room for clock
 * skew. Past it, the start died between its claims and its record (kill -9, a Lambda timeout).
 */
export const ROLLOUT_CLAIM_LIFETIME_MS = 5 * 60_000;

/**
 * Whether a claim still keeps other rollouts off its xPU: while its rollout still has to reboot it (as
 * overlapOf judges), or, with no such rollout stored, while its start may still write it.
 */
export function claimHolds(claim: RolloutClaim, holder: Rollout | undefined, now: Date): boolean {
  if (!holder) return now.getTime() - Date.parse(claim.at) <= ROLLOUT_CLAIM_LIFETIME_MS;
  return overlapOf([{ node: claim.node, xpu: claim.xpu }], [holder]) !== undefined;
}

/** Whether a start that took its first claim at `claimedAt` may still write its rollout record (others honour its claims). */
export function claimIsFresh(claimedAt: Date, now: Date): boolean {
  return now.getTime() - claimedAt.getTime() <= ROLLOUT_CLAIM_LIFETIME_MS / 2;
}

/** The reboot-xpu command of a plan item: derived from rollout and position, so a replayed step sends the same one. */
export function rolloutCommandId(rolloutId: string, index: number): string {
  return `${rolloutId}-${index}`;
}

/** What the tick found of an in-flight item: its reboot (when one was matched) and its command's status. */
export interface Observation {
  reboot?: { id: string; status: RebootStatus; endedAt?: string };
  commandStatus?: string;
}

const ENDED_OK: readonly RebootStatus[] = ['completed'];
const ENDED_BAD: readonly RebootStatus[] = ['failed', 'cancelled', 'denied'];

/**
 * Applies what was observed to an in-flight item. The health gate is the reboot's own end: an xPU
 * reboot completes only after xpu.ready, restore-pcie and resume-workloads. A command that failed
 * (or was skipped: no reboot-xpu hook) with no reboot, or no reboot by the command's deadline, fails it.
 */
export function observeItem(it: RolloutItem, obs: Observation, now: Date, commandDeadline: string | undefined): RolloutItem {
  if (!isInFlight(it)) return it;
  const at = now.toISOString();
  if (obs.reboot) {
    const r = obs.reboot;
    const next: RolloutItem = { ...it, rebootId: r.id, state: 'rebooting' };
    if (ENDED_OK.includes(r.status)) return { ...next, state: 'done', endedAt: r.endedAt ?? at };
    if (ENDED_BAD.includes(r.status)) return { ...next, state: 'failed', endedAt: r.endedAt ?? at, reason: `reboot ${r.status}` };
    return next;
  }
  // Cancelled before its agent picked the command up: it never started.
  if (obs.commandStatus === 'withdrawn')
    return { node: it.node, xpu: it.xpu, state: 'pending', reason: 'withdrawn by cancel before delivery' };
  if (obs.commandStatus === 'failed' || obs.commandStatus === 'skipped' || obs.commandStatus === 'timed-out')
    return {
      ...it,
      state: 'failed',
      endedAt: at,
      reason: `reboot-xpu ${obs.commandStatus}${obs.commandStatus === 'skipped' ? ' (the xPU agent has no reboot-xpu hook)' : ''}`,
    };
  if (commandDeadline && now.getTime() > Date.parse(commandDeadline))
    return { ...it, state: 'failed', endedAt: at, reason: 'no reboot was announced by the reboot-xpu deadline' };
  return it;
}

/** Whether a pending item's node may start now, decided outside (windows are pure, budgets need the store). */
export interface StartGate {
  ok: boolean;
  /** Why not (shown on the rollout). */
  why?: string;
  /** When it could start at the earliest (a window's opening), if known. */
  retryAt?: string;
}

export type TickNext = 'wait-reboots' | 'wait-window' | 'completed' | 'paused' | 'cancelled';

export interface TickResult {
  rollout: Rollout;
  /** Items this tick marked sent: their reboot-xpu goes out now. */
  started: number[];
  next: TickNext;
  /** How long the workflow waits at most before looking again (a wake-up may come sooner). */
  waitSeconds: number;
}

/** Fallback re-look while a reboot-xpu is out and no reboot was seen yet (the announce travels through the queue). */
export const LOOK_AGAIN_SENT_SECONDS = 10;
/** Fallback while reboots run: their end wakes the rollout; this only bounds a lost wake-up. */
export const LOOK_AGAIN_REBOOTING_SECONDS = 60;
/** Held back by a budget: slots free when other reboots end, which do not wake this rollout. */
export const LOOK_AGAIN_BUDGET_SECONDS = 30;
const MAX_WINDOW_WAIT_SECONDS = 3600;
const MAX_HISTORY = 200;
/** xPUs in one rollout: its record (one item) stays well under DynamoDB's 400 KB. Larger fleets go rack by rack. */
export const MAX_PLAN = 1000;

/**
 * One step of a rollout, given the observations of its in-flight items and the gates of the pending
 * ones (in plan order, as far as the caller looked). Starts pending items in plan order while fewer
 * than maxUnavailable are in flight and failures are below maxFailures; stops at the first item
 * whose gate is shut (rollouts go in order).
 *
 * `busy`: pending items whose xPU is still rebooting for someone else (a cancelled rollout's reboot
 * runs to its end), with why. Such an xPU is down all the same: it takes one of the maxUnavailable
 * slots, and it is skipped (never sent reboot-xpu: its announce would only join that reboot) until
 * it is free, when it goes in plan order like any other.
 */
export function rolloutTick(
  r0: Rollout,
  obs: ReadonlyMap<number, Observation>,
  gates: ReadonlyMap<number, StartGate>,
  deadlines: ReadonlyMap<number, string>,
  now: Date,
  busy: ReadonlyMap<number, string> = new Map(),
): TickResult {
  const r = structuredClone(r0);
  const at = now.toISOString();
  r.items = r.items.map((it, i) => {
    const next = observeItem(it, obs.get(i) ?? {}, now, deadlines.get(i));
    if (next.state !== it.state && isItemEnded(next))
      r.history.push({
        at,
        phase: `xpu-${next.state}`,
        detail: `${next.node}/${next.xpu}: ${next.state === 'done' ? 'rebooted and healthy' : next.reason}`,
        by: COORDINATOR,
      });
    return next;
  });
  const started: number[] = [];
  const failures = r.items.filter((it) => it.state === 'failed').length;
  if (r.status === 'running' && failures >= r.maxFailures) {
    r.status = 'paused';
    r.history.push({
      at,
      phase: 'paused',
      detail: `${failures} failed reboot${failures > 1 ? 's' : ''} (maxFailures ${r.maxFailures}): no further xPU is started`,
      by: COORDINATOR,
    });
  }
  delete r.blocked;
  let windowWait: number | undefined;
  if (r.status === 'running') {
    const waiting = [...busy.keys()].filter((i) => r.items[i]?.state === 'pending');
    let inFlight = r.items.filter(isInFlight).length + waiting.length;
    if (waiting.length) r.blocked = `${r.items[waiting[0]].node}/${r.items[waiting[0]].xpu}: ${busy.get(waiting[0])}`;
    for (let i = 0; i < r.items.length && inFlight < r.maxUnavailable; i++) {
      if (r.items[i].state !== 'pending' || busy.has(i)) continue;
      const gate = gates.get(i);
      if (!gate) break; // the caller did not look this far
      if (!gate.ok) {
        r.blocked = `${r.items[i].node}/${r.items[i].xpu}: ${gate.why ?? 'held back'}`;
        if (gate.retryAt) windowWait = Math.max(1, Math.ceil((Date.parse(gate.retryAt) - now.getTime()) / 1000));
        break;
      }
      r.items[i] = { ...r.items[i], state: 'sent', sentAt: at };
      started.push(i);
      inFlight++;
    }
  }
  const inFlight = r.items.filter(isInFlight).length;
  const pending = r.items.filter((it) => it.state === 'pending').length;
  let next: TickNext;
  let waitSeconds = LOOK_AGAIN_REBOOTING_SECONDS;
  // Paused or cancelled, reboots already under way still run to their end and are recorded.
  if (inFlight > 0) {
    next = 'wait-reboots';
    waitSeconds = r.items.some((it) => it.state === 'sent') ? LOOK_AGAIN_SENT_SECONDS : LOOK_AGAIN_REBOOTING_SECONDS;
  } else if (r.status === 'cancelled') next = 'cancelled';
  else if (r.status === 'paused') next = 'paused';
  else if (pending === 0) {
    next = 'completed';
    r.status = 'completed';
    r.history.push({
      at,
      phase: 'completed',
      detail: `${r.items.filter((it) => it.state === 'done').length} of ${r.items.length} xPUs rebooted`,
      by: COORDINATOR,
    });
  } else if (windowWait !== undefined) {
    next = 'wait-window';
    waitSeconds = Math.min(windowWait, MAX_WINDOW_WAIT_SECONDS);
  } else {
    next = 'wait-reboots';
    waitSeconds = LOOK_AGAIN_BUDGET_SECONDS;
  }
  if ((next === 'completed' || next === 'cancelled' || next === 'paused') && !r.endedAt) r.endedAt = at;
  // The item must stay under DynamoDB's 400 KB: the items say what happened to each xPU anyway.
  if (r.history.length > MAX_HISTORY) r.history = [r.history[0], ...r.history.slice(-(MAX_HISTORY - 1))];
  return { rollout: r, started, next, waitSeconds };
}

/** Cancel: from running or paused; later it is a no-op (null), and the caller answers 409. */
export function cancelRollout(r: Rollout, reason: string, by: string | undefined, now: Date): Rollout | null {
  if (r.status === 'completed' || r.status === 'cancelled') return null;
  const at = now.toISOString();
  return {
    ...r,
    status: 'cancelled',
    history: [
      ...r.history,
      {
        at,
        phase: 'cancelled',
        detail: `cancelled${reason ? `: ${reason}` : ''}; reboots already under way finish on their own`,
        ...(by ? { by } : {}),
      },
    ],
  };
}

/** The API's view: docs/fleet-safety.md done/pending/failed (pending: every item not yet ended, started or not). */
export function publicRollout(r: Rollout) {
  const view = (it: RolloutItem) => ({
    node: it.node,
    xpu: it.xpu,
    state: it.state,
    ...(it.rebootId ? { rebootId: it.rebootId } : {}),
    ...(it.sentAt ? { startedAt: it.sentAt } : {}),
    ...(it.endedAt ? { endedAt: it.endedAt } : {}),
    ...(it.reason ? { reason: it.reason } : {}),
  });
  return {
    id: r.id,
    status: r.status,
    selector: r.selector,
    maxUnavailable: r.maxUnavailable,
    maxFailures: r.maxFailures,
    reason: r.reason,
    ...(r.noticeSeconds !== undefined ? { noticeSeconds: r.noticeSeconds } : {}),
    createdAt: r.createdAt,
    ...(r.endedAt ? { endedAt: r.endedAt } : {}),
    ...(r.blocked ? { blocked: r.blocked } : {}),
    plan: r.items.map((it) => ({ node: it.node, xpu: it.xpu })),
    done: r.items.filter((it) => it.state === 'done').map(view),
    pending: r.items.filter((it) => !isItemEnded(it)).map(view),
    failed: r.items.filter((it) => it.state === 'failed').map(view),
    inFlight: r.items.filter(isInFlight).length,
    // Entries stored before the coordinator's own carried `by` (contract 7.1): they are the coordinator's.
    history: r.history.map((h) => (h.by ? h : { ...h, by: COORDINATOR })),
  };
}

/**
 * The id of the rollout a start with this Idempotency-Key makes (scoped to who starts it). A start that
 * died after its claims or its record leaves them under this id: the client's repeat finds them as its
 * own, instead of a claim "starting" for 5 minutes or a second rollout.
 */
export function keyedRolloutId(by: string, key: string): string {
  return `ro-${createHash('sha256').update(`${by} ${key}`).digest('hex').slice(0, 26)}`;
}
