// Disruption budgets and holds (contract 7.3), pure: which budgets a node counts in, and whether it may start a reboot now.
import type { Actor, BudgetDomain, NodeDef } from './types.ts';

/**
 * One budget as it applies to one node. The store keeps one counter item per `key` (domain and
 * value): the node ids that are unavailable in it, taken and given back by conditional writes.
 */
export interface BudgetSlot {
  per: BudgetDomain;
  value: string;
  maxUnavailable: number;
  key: string;
}

export const FLEET_VALUE = 'all';

export function budgetKey(per: BudgetDomain, value: string): string {
  return `${per}:${value}`;
}

/**
 * The budgets that apply to a node, in a fixed order (by key): every acquirer takes them in the
 * same order, so two nodes racing for the last slots of a zone and a rack do not each end up with
 * one and both give up. A node without a rack (zone, tenant) is in no rack budget.
 */
export function budgetSlotsOf(node: NodeDef): BudgetSlot[] {
  const slots: BudgetSlot[] = [];
  for (const b of node.policy.budgets ?? []) {
    const value = b.per === 'fleet' ? FLEET_VALUE : node[b.per];
    if (!value) continue;
    slots.push({ per: b.per, value, maxUnavailable: b.maxUnavailable, key: budgetKey(b.per, value) });
  }
  return slots.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

// --- holds ------------------------------------------------------------------------------------

export const HOLD_SELECTOR_KEYS = ['node', 'rack', 'zone', 'tenant'] as const;
export type HoldSelectorKey = (typeof HOLD_SELECTOR_KEYS)[number];
export type HoldSelector = { [K in HoldSelectorKey]?: string };

export interface Hold {
  id: string;
  /** Exactly one of node, rack, zone, tenant. */
  selector: HoldSelector;
  reason: string;
  /** The hold ends by itself at this time; absent: until it is deleted. */
  until?: string;
  createdAt: string;
  by: Actor;
}

export function isHoldActive(h: Hold, now: Date): boolean {
  return !h.until || Date.parse(h.until) > now.getTime();
}

export function holdMatches(h: Hold, node: NodeDef): boolean {
  return HOLD_SELECTOR_KEYS.some((k) => {
    const want = h.selector[k];
    if (want === undefined) return false;
    return (k === 'node' ? node.id : node[k]) === want;
  });
}

/** The active holds on a node, oldest first. */
export function holdsOn(node: NodeDef, holds: readonly Hold[], now: Date): Hold[] {
  return holds.filter((h) => isHoldActive(h, now) && holdMatches(h, node)).sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1));
}

/** The earliest time one of these holds ends by itself: a reboot it queued may go on then. */
export function nextHoldExpiry(holds: readonly Hold[]): string | undefined {
  return holds.map((h) => h.until).filter((u): u is string => !!u).sort()[0];
}

export function describeHold(h: Hold): string {
  const [k, v] = Object.entries(h.selector)[0] ?? ['?', '?'];
  return `hold ${h.id} on ${k} ${v}${h.reason ? ` (${h.reason})` : ''}`;
}

// --- the decision -------------------------------------------------------------------------------

/** Who is unavailable in each budget, by budget key: node ids. */
export type BudgetUsage = ReadonlyMap<string, readonly string[]>;

export type Admission =
  | { kind: 'admit' }
  | { kind: 'hold'; hold: Hold; reason: string }
  | { kind: 'budget'; slot: BudgetSlot; holders: readonly string[]; reason: string };

/**
 * May this node start a (planned) reboot now? A hold on it answers no, as if its budget were 0; so
 * does a budget of it that is full with other nodes (the node itself being unavailable already
 * costs no second slot). This is the reader's answer (rollouts, the fleet view); the reboot that
 * acts on it takes its slots with the store's conditional writes, which decide the races.
 */
export function mayStartReboot(node: NodeDef, holds: readonly Hold[], usage: BudgetUsage, now: Date): Admission {
  const hold = holdsOn(node, holds, now)[0];
  if (hold) return { kind: 'hold', hold, reason: `${describeHold(hold)} matches node ${node.id}` };
  for (const slot of budgetSlotsOf(node)) {
    const holders = usage.get(slot.key) ?? [];
    if (!holders.includes(node.id) && holders.length >= slot.maxUnavailable) return { kind: 'budget', slot, holders, reason: budgetFullReason(slot, holders) };
  }
  return { kind: 'admit' };
}

export function budgetFullReason(slot: BudgetSlot, holders: readonly string[]): string {
  return `${slot.per === 'fleet' ? 'the fleet' : `${slot.per} ${slot.value}`} has ${holders.length} of ${slot.maxUnavailable} nodes unavailable${holders.length ? ` (${[...holders].sort().join(', ')})` : ''}`;
}

/** What the store answers to an attempt to take a node's budget slots for a reboot. */
export type AcquireResult =
  | { ok: true; /** Slots this acquisition took beyond their maximum (forced: crash, unannounced, or the cap). */ overshoot: BudgetSlot[] }
  | { ok: false; slot: BudgetSlot; holders: string[] };

// --- queued reboots -----------------------------------------------------------------------------

/** What a reboot held back by a budget or hold remembers about its wait (contract 7.3). */
export interface QueueRecord {
  queuedAt: string;
  /** Why it waits: `budget: ...` or `hold: ...`. */
  reason: string;
  /** The deadline it was announced with. */
  announcedDeadline: string;
  /** The latest time it may start its notice flow: then its deadline lands `maxExtensionSeconds` past the announced one. */
  capAt: string;
  admittedAt?: string;
  /** It went on at the cap, with its budget still full (report finding `budget-exceeded`). */
  exceeded?: boolean;
}

/**
 * The queue's limits for an xPU reboot announced with `noticeSeconds`: its xPU's watchdog may be held
 * at most `maxExtensionSeconds` past the announced deadline, and the host still gets its full notice,
 * so the wait ends at notice time + maxExtensionSeconds at the latest.
 */
export function queueLimits(notifiedAt: string, noticeSeconds: number, maxExtensionSeconds: number): { announcedDeadline: string; capAt: string; heldDeadline: string } {
  const t = Date.parse(notifiedAt);
  return {
    announcedDeadline: new Date(t + noticeSeconds * 1000).toISOString(),
    capAt: new Date(t + maxExtensionSeconds * 1000).toISOString(),
    heldDeadline: new Date(t + (noticeSeconds + maxExtensionSeconds) * 1000).toISOString(),
  };
}

/** The deadline of a queued reboot that goes on at `now`: the full notice from now, never past the held deadline. */
export function admittedDeadline(q: QueueRecord, noticeSeconds: number, maxExtensionSeconds: number, now: Date): string {
  const held = Date.parse(q.announcedDeadline) + maxExtensionSeconds * 1000;
  return new Date(Math.min(now.getTime() + noticeSeconds * 1000, held)).toISOString();
}

/** How long a queued reboot's workflow waits before it looks again: until the cap, or until a hold on it ends by itself. */
export function queueWaitSeconds(q: QueueRecord, holds: readonly Hold[], now: Date): number {
  const until = [q.capAt, nextHoldExpiry(holds)].filter((t): t is string => !!t).map(Date.parse);
  // AWS wants a positive whole number of seconds.
  return Math.max(1, Math.ceil((Math.min(...until) - now.getTime()) / 1000));
}
