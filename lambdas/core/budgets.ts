// Disruption budgets and holds (docs/fleet-safety.md), pure: which budgets a node counts in, and whether it may start a reboot now.
import { COORDINATOR } from './principal.ts';
import { history, type StoredReboot } from './reboot.ts';
import type { Actor, BudgetDomain, NodeDef, XpuRebootPolicy } from './types.ts';

/**
 * One budget as it applies to one node. The store keeps one item per `key` (domain and value) with
 * the node ids that are unavailable in it (beyond a cap, counted there and named in items of their
 * own), taken and given back by conditional writes.
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
 * The node as budgets and holds see it: in its inventory rack and zone, and in the tenant its xPUs
 * are provisioned for, which is state of the node (contract 7.1: first the inventory's `tenant`; a
 * `host.ready` for another tenant re-provisions it). Handlers pass that state in
 * (NodeStateRecord.provisionedTenant, or the tenant a reboot was recorded for).
 */
export function asProvisioned(node: NodeDef, provisionedTenant: string | undefined): NodeDef {
  return provisionedTenant && provisionedTenant !== node.tenant ? { ...node, tenant: provisionedTenant } : node;
}

/**
 * Whether a queued reboot of this node may wait for a slot of one of these budgets. Its rack, zone
 * and fleet budgets follow from the inventory; its tenant budget from the tenant its reboot was
 * recorded for, which only the reboot knows: any tenant key may be its.
 */
export function mayWaitOn(node: NodeDef, keys: readonly string[]): boolean {
  const anyTenant = keys.some((k) => k.startsWith(budgetKey('tenant', '')));
  if (anyTenant && (node.policy.budgets ?? []).some((b) => b.per === 'tenant')) return true;
  return budgetSlotsOf(node).some((s) => s.per !== 'tenant' && keys.includes(s.key));
}

/**
 * The budgets that apply to a node, in a fixed order (by key): every acquirer takes them in the
 * same order, so two nodes racing for the last slots of a zone and a rack do not each end up with
 * one and both give up. A node without a rack (zone, tenant) is in no rack budget. Its tenant is the
 * node's own field: pass the node `asProvisioned`.
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

/**
 * The active hold among `holds` that placing `h` would repeat: the same selector, reason, end and author.
 * An operator whose POST /v1/holds got no answer (the API died after storing the hold) sends it again; a
 * second hold would then outlive the one the operator later deletes, and keep the node held. Placing the
 * same hold twice means nothing more than placing it once, so the first one answers.
 */
export function repeatedHold(holds: readonly Hold[], h: Pick<Hold, 'selector' | 'reason' | 'until' | 'by'>, now: Date): Hold | undefined {
  const key = (s: HoldSelector) => JSON.stringify(HOLD_SELECTOR_KEYS.map((k) => s[k] ?? null));
  return holds.find(
    (x) => isHoldActive(x, now) && key(x.selector) === key(h.selector) && x.reason === h.reason && x.until === h.until && x.by === h.by,
  );
}

/** `node` as provisioned (asProvisioned): a hold on a tenant matches the nodes provisioned for it. */
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
  return holds
    .map((h) => h.until)
    .filter((u): u is string => !!u)
    .sort()[0];
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
    if (!holders.includes(node.id) && holders.length >= slot.maxUnavailable)
      return { kind: 'budget', slot, holders, reason: budgetFullReason(slot, holders) };
  }
  return { kind: 'admit' };
}

/** Nodes a reason names at most: it goes into the reboot's history, and a crash storm makes thousands unavailable. */
export const REASON_NAMES_MAX = 10;

/** `unavailable`: how many in all, when `holders` names only some of them (the store's spilled nodes are not named). */
export function budgetFullReason(slot: BudgetSlot, holders: readonly string[], unavailable = holders.length): string {
  const named = [...holders].sort().slice(0, REASON_NAMES_MAX);
  const more = unavailable - named.length;
  const list = named.length ? ` (${named.join(', ')}${more > 0 ? `, and ${more} more` : ''})` : '';
  return `${slot.per === 'fleet' ? 'the fleet' : `${slot.per} ${slot.value}`} has ${unavailable} of ${slot.maxUnavailable} nodes unavailable${list}`;
}

/** What the store answers to an attempt to take a node's budget slots for a reboot. */
export type AcquireResult =
  | { ok: true /** Slots this acquisition took beyond their maximum (forced: crash, unannounced, or the cap). */; overshoot: BudgetSlot[] }
  | { ok: false; slot: BudgetSlot; holders: string[]; unavailable?: number /* how many in all, when `holders` names only some */ };

// --- queued reboots -----------------------------------------------------------------------------

/** What a reboot held back by a budget or hold remembers about its wait (docs/fleet-safety.md). */
export interface QueueRecord {
  queuedAt: string;
  /** Why it waits: `budget: ...` or `hold: ...`. */
  reason: string;
  /** The deadline it was announced with. */
  announcedDeadline: string;
  /** The latest time it may start its notice flow: then its deadline lands `maxExtensionSeconds` past the announced one. */
  capAt: string;
  /** When its workflow looks again by itself (see queueRecheckAt). */
  recheckAt?: string;
  admittedAt?: string;
  /** It went on at the cap, with its budget still full (report finding `budget-exceeded`). */
  exceeded?: boolean;
}

/**
 * The queue's limits for an xPU reboot announced with `noticeSeconds`: its xPU's watchdog may be held
 * at most `maxExtensionSeconds` past the announced deadline, and the host still gets its full notice,
 * so the wait ends at notice time + maxExtensionSeconds at the latest.
 */
export function queueLimits(
  notifiedAt: string,
  noticeSeconds: number,
  maxExtensionSeconds: number,
): { announcedDeadline: string; capAt: string; heldDeadline: string } {
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

/** A queued reboot looks again at least this often: holds created later may end by themselves, and a lost wake-up costs at most this. */
export const QUEUE_RECHECK_SECONDS = 60;

/**
 * A queued reboot's own looks stay about this many (plus the last hour's minutes) however far its cap:
 * each costs its execution ~13 history events, and Step Functions fails an execution at 25,000.
 */
export const QUEUE_LOOKS_TO_CAP = 100;

/**
 * When a queued reboot's workflow looks again: at the cap, when a hold on it ends by itself, or after
 * QUEUE_RECHECK_SECONDS; while the cap is further than QUEUE_LOOKS_TO_CAP minutes away, after that
 * share of the time left instead (a cap of 23 days would otherwise be 33,000 looks).
 */
export function queueRecheckAt(q: Pick<QueueRecord, 'capAt'>, holds: readonly Hold[], now: Date): string {
  const left = Date.parse(q.capAt) - now.getTime();
  const every = Math.max(QUEUE_RECHECK_SECONDS * 1000, Math.floor(left / QUEUE_LOOKS_TO_CAP));
  const times = [Date.parse(q.capAt), now.getTime() + every];
  const expiry = nextHoldExpiry(holds);
  if (expiry) times.push(Date.parse(expiry));
  return new Date(Math.min(...times)).toISOString();
}

/** The window a queued reboot's workflow waits in (its TimeoutSecondsPath); undefined for a reboot that is not queued. */
export function queueWindow(r: StoredReboot, now: Date): { signal: 'queued'; waitSeconds: number } | undefined {
  if (r.status !== 'queued' || !r.queue) return undefined;
  const until = Date.parse(r.queue.recheckAt ?? r.queue.capAt);
  // AWS wants a positive whole number of seconds.
  return { signal: 'queued', waitSeconds: Math.max(1, Math.ceil((until - now.getTime()) / 1000)) };
}

// --- named state changes of a queued reboot -----------------------------------------------------

/**
 * A planned xPU reboot refused by a budget or a hold: it waits (`queued`), and its xPU's watchdog is
 * held to the cap, so the xPU does not reboot on its own at the deadline it announced.
 */
export function onBudgetRefused(r: StoredReboot, why: string, holds: readonly Hold[], policy: XpuRebootPolicy, now: Date): StoredReboot {
  const limits = queueLimits(r.notifiedAt, r.noticeSeconds, policy.maxExtensionSeconds);
  r.status = 'queued';
  r.queue = { queuedAt: now.toISOString(), reason: why, announcedDeadline: limits.announcedDeadline, capAt: limits.capAt };
  r.queue.recheckAt = queueRecheckAt(r.queue, holds, now);
  r.deadline = limits.heldDeadline;
  r.history.push({
    ...history(
      now,
      'queued',
      `${why}: queued until a slot frees, at the latest until ${limits.capAt}; the xPU's deadline is held to ${limits.heldDeadline}`,
    ),
    by: COORDINATOR,
  });
  return r;
}

/**
 * A queued reboot goes on with the normal notice flow: a slot freed (`slot`), or its wait reached
 * the cap (`cap`: it goes on anyway, beyond its budget, and says so). The deadline is re-dated so
 * the host gets the full notice, never past the deadline the xPU was held to.
 */
export function onQueueLeft(r: StoredReboot, how: 'slot' | 'cap', policy: XpuRebootPolicy, now: Date, why?: string): StoredReboot {
  if (r.status !== 'queued' || !r.queue) return r;
  const deadline = admittedDeadline(r.queue, r.noticeSeconds, policy.maxExtensionSeconds, now);
  r.status = 'notified';
  r.deadline = deadline;
  r.queue = { ...r.queue, admittedAt: now.toISOString(), ...(how === 'cap' ? { exceeded: true } : {}) };
  const waited = Math.round((now.getTime() - Date.parse(r.queue.queuedAt)) / 1000);
  r.history.push({
    ...history(
      now,
      how === 'cap' ? 'budget-exceeded' : 'admitted',
      how === 'cap'
        ? `waited ${waited}s, the most its deadline may be held: goes on beyond its budget (${why ?? r.queue.reason}); new deadline ${deadline}`
        : // A hold that ended admits it as well as a freed slot: the entry names neither alone.
          `admitted after ${waited}s queued (no hold matches it and its budgets have room): notice goes on, new deadline ${deadline}`,
    ),
    by: COORDINATOR,
  });
  return r;
}
