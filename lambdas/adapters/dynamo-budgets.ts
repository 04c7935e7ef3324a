// Disruption budget slots in DynamoDB (docs/fleet-safety.md "Why it cannot overshoot"): a budget's head item
// holds its unavailable nodes as a set up to a cap; beyond it, nodes spill to one small item each, counted
// in the head. Items stay small however many nodes a crash storm makes unavailable in one scope.
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DeleteCommand, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { randomUUID } from 'node:crypto';
import type { AcquireResult, BudgetSlot } from '../core/budgets.ts';
import { queryPartition } from './query-partition.ts';
import { conflictRetry } from './optimistic.ts';

/** The partition of budget heads (one Query lists them all), as before spilling existed. */
export const BUDGETS = 'BUDGET';
/** A spilled node's item: `pk=BUDGETSPILL#<budget key>`, `sk=<node>`. */
const spillPk = (key: string) => `BUDGETSPILL#${key}`;
/**
 * Nodes a head holds by name before new ones spill. A head write costs one WCU per KB of the item: at
 * ~100 bytes a node (its id, its reboots), 256 nodes keep a head near 25 KB, far under the 400 KB limit.
 */
export const DEFAULT_HEAD_CAP = 256;
/** Fence counters of the head: spill writes of one node are fenced by its own, so nodes in different ones never conflict. */
const FENCES = 32;

const headKey = (key: string) => ({ pk: BUDGETS, sk: key });
/** The reboots that make a head node unavailable: the node leaves `holders` when the last one ends. */
const rebootsAttr = (node: string) => `r_${node}`;
const fenceAttr = (node: string) => {
  let h = 2166136261;
  for (let i = 0; i < node.length; i++) h = Math.imul(h ^ node.charCodeAt(i), 16777619);
  return `v_${(h >>> 0) % FENCES}`;
};
/** A spilled node's generation in the head's ledgers: `tk` (counted, not yet marked held), `lv` (uncounted, not yet deleted). */
const entry = (node: string, g: string) => JSON.stringify([node, g]);

type Head = {
  holders: Set<string>;
  /** Spilled nodes counted (held, or counted on their way to held). 0: the head holds every unavailable node. */
  s: number;
  /** Unavailable nodes in all, while `s` > 0. */
  n: number;
  tk: Set<string>;
  lv: Set<string>;
  raw: Record<string, unknown>;
};
type Marker = { reboots: Set<string>; g: string; st?: 'held' | 'leaving' };

function isConditionFailure(err: unknown): boolean {
  return (err as { name?: string })?.name === 'ConditionalCheckFailedException';
}

async function writtenIf(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (err) {
    if (isConditionFailure(err)) return false;
    throw err;
  }
}

function headOf(item: Record<string, unknown> | undefined): Head {
  const it = item ?? {};
  const s = typeof it.s === 'number' ? it.s : 0;
  const holders = (it.holders as Set<string> | undefined) ?? new Set<string>();
  return {
    holders,
    s,
    n: s > 0 && typeof it.n === 'number' ? it.n : holders.size,
    tk: (it.tk as Set<string> | undefined) ?? new Set(),
    lv: (it.lv as Set<string> | undefined) ?? new Set(),
    raw: it,
  };
}

function markerOf(item: Record<string, unknown> | undefined): Marker | undefined {
  if (!item || typeof item.g !== 'string') return undefined;
  return { reboots: (item.reboots as Set<string> | undefined) ?? new Set(), g: item.g, st: item.st as Marker['st'] };
}

type Outcome = { ok: true; over: boolean } | { ok: false; holders: string[]; unavailable: number } | 'again';

/**
 * Why this is safe without transactions (dynalite has none): a head node is taken and given back with
 * one conditional write of the head, as before. A spilled node is counted in the head (`n`, `s`) and
 * named in its own item, two items: each change of the count names the node's generation in a ledger
 * of the head (`tk`, `lv`) in the same write, and is fenced by the node's fence counter read before the
 * node's item was, so a second taker or giver-back of the same node (a sibling reboot, a retry, the
 * reconciler beside the workflow) sees the change or loses the race, and never counts it twice. The
 * ledgers hold only changes in flight.
 */
export class DynamoBudgets {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #cap: number;

  constructor(doc: DynamoDBDocumentClient, table: string, headCap = DEFAULT_HEAD_CAP) {
    this.#doc = doc;
    this.#table = table;
    this.#cap = Math.max(1, headCap);
  }

  /** Takes a slot of one budget for the node (or joins the node's slot): the caller gives back what it took when a later one is full. */
  async acquire(slot: BudgetSlot, node: string, rebootId: string, force: boolean): Promise<AcquireResult> {
    const retry = conflictRetry(`budget ${slot.key}`);
    for (let attempt = 0; retry.more(attempt); attempt++) {
      const got = await this.#takeInHead(slot, node, rebootId, force);
      if (got) return { ok: true, overshoot: got.over ? [slot] : [] };
      const h = await this.#head(slot.key);
      let out: Outcome = 'again';
      if (h.holders.has(node)) out = 'again';
      else if (h.s === 0 && h.holders.size < this.#cap) {
        // No spill: room changed under the write, or the budget is full.
        if (!force && h.holders.size >= slot.maxUnavailable) out = this.#full(h);
      } else if (h.s === 0 && !force && h.holders.size >= slot.maxUnavailable) out = this.#full(h);
      else out = await this.#takeSpilled(slot, node, rebootId, force, h);
      if (out !== 'again')
        return out.ok
          ? { ok: true, overshoot: out.over ? [slot] : [] }
          : { ok: false, slot, holders: out.holders, unavailable: out.unavailable };
      await retry.lost(attempt);
    }
    throw retry.giveUp();
  }

  /** Gives back a reboot's slot of one budget; the node stays unavailable while another reboot of it holds it. Idempotent. */
  async release(key: string, node: string, rebootId: string): Promise<void> {
    const res = await this.#doc.send(
      new UpdateCommand({
        TableName: this.#table,
        Key: headKey(key),
        UpdateExpression: 'DELETE #r :rid',
        ExpressionAttributeNames: { '#r': rebootsAttr(node) },
        ExpressionAttributeValues: { ':rid': new Set([rebootId]) },
        ReturnValues: 'ALL_NEW',
      }),
    );
    let h = headOf(res.Attributes);
    if (!h.holders.has(node)) {
      // Nothing spilled here and nothing on its way: the node holds nothing (a retry, or a key it never took).
      if (h.s === 0 && !h.tk.size && !h.lv.size) return;
      return this.#releaseSpilled(key, node, rebootId);
    }
    const retry = conflictRetry(`budget ${key}`);
    for (let attempt = 0; retry.more(attempt); attempt++) {
      if (!h.holders.has(node) || (h.raw[rebootsAttr(node)] as Set<string> | undefined)?.size) return;
      // The node's last reboot here ended: it is available again, unless one joined meanwhile.
      const spilling = h.s > 0;
      const left = await writtenIf(() =>
        this.#doc.send(
          new UpdateCommand({
            TableName: this.#table,
            Key: headKey(key),
            UpdateExpression: spilling ? 'DELETE holders :n ADD n :m1' : 'DELETE holders :n',
            ConditionExpression: `contains(holders, :node) AND attribute_not_exists(#r) AND ${spilling ? 's > :zero' : '(attribute_not_exists(s) OR s = :zero)'}`,
            ExpressionAttributeNames: { '#r': rebootsAttr(node) },
            ExpressionAttributeValues: { ':n': new Set([node]), ':node': node, ':zero': 0, ...(spilling ? { ':m1': -1 } : {}) },
          }),
        ),
      );
      if (left) return;
      h = await this.#head(key);
      await retry.lost(attempt);
    }
    throw retry.giveUp();
  }

  /** The unavailable nodes of each budget that has a head (all of them without `keys`). */
  async usage(keys?: readonly string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    const heads = (await this.#partition(BUDGETS)).filter((it) => !keys || keys.includes(it.sk as string));
    await Promise.all(
      heads.map(async (it) => {
        const key = it.sk as string;
        const h = headOf(it);
        const nodes = [...h.holders];
        if (h.s > 0 || h.tk.size || h.lv.size)
          for (const m of await this.#partition(spillPk(key))) {
            const mk = markerOf(m);
            if (!mk) continue;
            const e = entry(m.sk as string, mk.g);
            const counted = mk.st === 'held' || (mk.st === undefined && h.tk.has(e)) || (mk.st === 'leaving' && !h.lv.has(e));
            if (counted) nodes.push(m.sk as string);
          }
        out.set(key, nodes.sort());
      }),
    );
    return out;
  }

  // --- the head ---------------------------------------------------------------------------------

  /** The common path, one write: the node joins the head's set, or enters it while nothing has spilled and there is room. */
  async #takeInHead(slot: BudgetSlot, node: string, rebootId: string, force: boolean): Promise<{ over: boolean } | undefined> {
    const room = force ? this.#cap : Math.min(this.#cap, slot.maxUnavailable);
    try {
      const res = await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: headKey(slot.key),
          UpdateExpression: 'ADD holders :n, #r :rid SET maxUnavailable = :max',
          // A node already unavailable here costs no second slot; otherwise there must be room, and no spill.
          ConditionExpression:
            room > 0
              ? 'contains(holders, :node) OR ((attribute_not_exists(s) OR s = :zero) AND (attribute_not_exists(holders) OR size(holders) < :room))'
              : 'contains(holders, :node)',
          ExpressionAttributeNames: { '#r': rebootsAttr(node) },
          ExpressionAttributeValues: {
            ':n': new Set([node]),
            ':rid': new Set([rebootId]),
            ':max': slot.maxUnavailable,
            ':node': node,
            ...(room > 0 ? { ':zero': 0, ':room': room } : {}),
          },
          ReturnValues: 'ALL_OLD',
        }),
      );
      const before = (res.Attributes?.holders as Set<string> | undefined) ?? new Set<string>();
      return { over: !before.has(node) && before.size + 1 > slot.maxUnavailable };
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  async #head(key: string): Promise<Head> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: headKey(key), ConsistentRead: true }));
    return headOf(res.Item);
  }

  #full(h: Head): Outcome {
    return { ok: false, holders: [...h.holders].sort(), unavailable: h.n };
  }

  // --- spilled nodes ------------------------------------------------------------------------------

  async #marker(key: string, node: string): Promise<Marker | undefined> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: { pk: spillPk(key), sk: node }, ConsistentRead: true }));
    return markerOf(res.Item);
  }

  /**
   * The node has no room in the head (`h`, read before this): it is named in its own item with the
   * reboot, then counted in the head (unless it is counted already), then marked held.
   */
  async #takeSpilled(slot: BudgetSlot, node: string, rebootId: string, force: boolean, h: Head): Promise<Outcome> {
    const key = slot.key;
    let m: Marker | undefined;
    try {
      const res = await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { pk: spillPk(key), sk: node },
          UpdateExpression: 'ADD reboots :rid SET g = if_not_exists(g, :g)',
          ConditionExpression: 'attribute_not_exists(st) OR st = :held',
          ExpressionAttributeValues: { ':rid': new Set([rebootId]), ':g': randomUUID(), ':held': 'held' },
          ReturnValues: 'ALL_NEW',
        }),
      );
      m = markerOf(res.Attributes)!;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      // The node is on its way out of this budget: finish that, then take it afresh.
      const gone = await this.#marker(key, node);
      if (gone?.st === 'leaving') await this.#finishLeave(key, node, gone.g);
      return 'again';
    }
    if (m.st === 'held') return { ok: true, over: false };
    const e = entry(node, m.g);
    const fence = fenceAttr(node);
    // The marker was read (written) after `h`: a count of this generation after `h` moved the fence.
    const retry = conflictRetry(`budget ${key} node ${node}`);
    for (let attempt = 0; retry.more(attempt); attempt++) {
      if (attempt > 0) {
        h = await this.#head(key);
        m = await this.#marker(key, node);
        if (!m?.reboots.has(rebootId)) return 'again';
        if (m.st === 'held') return { ok: true, over: false };
        if (m.st === 'leaving') return 'again';
      }
      if (h.tk.has(e)) {
        await this.#markHeld(key, node, m.g);
        return { ok: true, over: false };
      }
      if (h.holders.has(node) || (h.s === 0 && h.holders.size < this.#cap)) {
        // Room in the head again (or the node is there): the head's one write takes it.
        await this.#forget(key, node, rebootId, m.g);
        return 'again';
      }
      if (!force && h.n >= slot.maxUnavailable) {
        await this.#forget(key, node, rebootId, m.g);
        return this.#full(h);
      }
      const f = h.raw[fence];
      const fenced = typeof f === 'number' ? `${fence} = :f` : `attribute_not_exists(${fence})`;
      const values: Record<string, unknown> = {
        ':one': 1,
        ':zero': 0,
        ':e': new Set([e]),
        ':node': node,
        ':f1': (typeof f === 'number' ? f : 0) + 1,
      };
      if (typeof f === 'number') values[':f'] = f;
      let update: string;
      let condition: string;
      if (h.s === 0) {
        // The first node to spill: the count starts from the head's set, pinned by its size.
        values[':size'] = h.holders.size;
        values[':n1'] = h.holders.size + 1;
        update = `SET n = :n1, s = :one, ${fence} = :f1, maxUnavailable = :max ADD tk :e`;
        condition = `(attribute_not_exists(s) OR s = :zero) AND size(holders) = :size AND NOT contains(holders, :node) AND ${fenced}`;
      } else {
        update = `ADD n :one, s :one, tk :e SET ${fence} = :f1, maxUnavailable = :max`;
        condition = `s > :zero AND NOT contains(holders, :node) AND NOT contains(tk, :e) AND ${fenced}`;
        if (!force) condition += ' AND n < :max';
      }
      values[':max'] = slot.maxUnavailable;
      let before: Head | undefined;
      try {
        const res = await this.#doc.send(
          new UpdateCommand({
            TableName: this.#table,
            Key: headKey(key),
            UpdateExpression: update,
            ConditionExpression: condition,
            ExpressionAttributeValues: values,
            ReturnValues: 'ALL_OLD',
          }),
        );
        before = headOf(res.Attributes);
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
        await retry.lost(attempt);
        continue;
      }
      await this.#markHeld(key, node, m.g);
      return { ok: true, over: before.n + 1 > slot.maxUnavailable };
    }
    throw retry.giveUp();
  }

  /** A counted generation is marked held, then leaves the head's ledger. Idempotent. */
  async #markHeld(key: string, node: string, g: string): Promise<void> {
    await writtenIf(() =>
      this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { pk: spillPk(key), sk: node },
          UpdateExpression: 'SET st = :held',
          ConditionExpression: 'g = :g AND attribute_not_exists(st)',
          ExpressionAttributeValues: { ':held': 'held', ':g': g },
        }),
      ),
    );
    await this.#doc.send(
      new UpdateCommand({
        TableName: this.#table,
        Key: headKey(key),
        UpdateExpression: 'DELETE tk :e',
        ExpressionAttributeValues: { ':e': new Set([entry(node, g)]) },
      }),
    );
  }

  /** Takes a reboot that was not counted off the node's item, and the item away when no reboot is left on it. */
  async #forget(key: string, node: string, rebootId: string, g: string): Promise<void> {
    let left: Marker | undefined;
    try {
      const res = await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { pk: spillPk(key), sk: node },
          UpdateExpression: 'DELETE reboots :rid',
          ConditionExpression: 'g = :g',
          ExpressionAttributeValues: { ':rid': new Set([rebootId]), ':g': g },
          ReturnValues: 'ALL_NEW',
        }),
      );
      left = markerOf(res.Attributes);
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return;
    }
    if (left && !left.reboots.size && !left.st) await this.#deleteUncounted(key, node, g);
  }

  async #deleteUncounted(key: string, node: string, g: string): Promise<void> {
    await writtenIf(() =>
      this.#doc.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: { pk: spillPk(key), sk: node },
          ConditionExpression: 'g = :g AND attribute_not_exists(reboots) AND attribute_not_exists(st)',
          ExpressionAttributeValues: { ':g': g },
        }),
      ),
    );
  }

  async #releaseSpilled(key: string, node: string, rebootId: string): Promise<void> {
    let m: Marker | undefined;
    try {
      const res = await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { pk: spillPk(key), sk: node },
          UpdateExpression: 'DELETE reboots :rid',
          ConditionExpression: 'attribute_exists(g)',
          ExpressionAttributeValues: { ':rid': new Set([rebootId]) },
          ReturnValues: 'ALL_NEW',
        }),
      );
      m = markerOf(res.Attributes);
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return;
    }
    if (!m || m.reboots.size) return;
    if (m.st === 'leaving') return this.#finishLeave(key, node, m.g);
    if (m.st === undefined) {
      // Counted but not yet marked (its taker stopped between the two)? Then it is held in all but name.
      const h = await this.#head(key);
      if (!h.tk.has(entry(node, m.g))) return this.#deleteUncounted(key, node, m.g);
      await this.#markHeld(key, node, m.g);
    }
    await this.#leave(key, node, m.g);
  }

  /** The node's last reboot here ended: it stops being joinable (`leaving`), is uncounted once, and its item goes. */
  async #leave(key: string, node: string, g: string): Promise<void> {
    const h = await this.#head(key);
    const marked = await writtenIf(() =>
      this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: { pk: spillPk(key), sk: node },
          UpdateExpression: 'SET st = :leaving',
          ConditionExpression: 'g = :g AND st = :held AND attribute_not_exists(reboots)',
          ExpressionAttributeValues: { ':leaving': 'leaving', ':held': 'held', ':g': g },
        }),
      ),
    );
    if (!marked) {
      // A reboot joined (the node stays), or another giver-back got there first.
      const m = await this.#marker(key, node);
      if (m?.g === g && m.st === 'leaving') await this.#finishLeave(key, node, g);
      return;
    }
    // Marked after `h` was read: no one uncounted this generation before `h`.
    await this.#finishLeave(key, node, g, h);
  }

  /** Uncounts a `leaving` generation exactly once (fenced like a count), then deletes its item and ledger entry. */
  async #finishLeave(key: string, node: string, g: string, first?: Head): Promise<void> {
    const e = entry(node, g);
    const fence = fenceAttr(node);
    const retry = conflictRetry(`budget ${key} node ${node}`);
    for (let attempt = 0; retry.more(attempt); attempt++) {
      const h = attempt === 0 && first ? first : await this.#head(key);
      if (!h.lv.has(e)) {
        if (!(attempt === 0 && first)) {
          // Read after the head: gone means it was uncounted (and deleted) by another.
          const m = await this.#marker(key, node);
          if (m?.g !== g || m.st !== 'leaving') return;
        }
        const f = h.raw[fence];
        const done = await writtenIf(() =>
          this.#doc.send(
            new UpdateCommand({
              TableName: this.#table,
              Key: headKey(key),
              UpdateExpression: `ADD n :m1, s :m1, lv :e SET ${fence} = :f1`,
              ConditionExpression: `NOT contains(lv, :e) AND ${typeof f === 'number' ? `${fence} = :f` : `attribute_not_exists(${fence})`}`,
              ExpressionAttributeValues: {
                ':m1': -1,
                ':e': new Set([e]),
                ':f1': (typeof f === 'number' ? f : 0) + 1,
                ...(typeof f === 'number' ? { ':f': f } : {}),
              },
            }),
          ),
        );
        if (!done) {
          await retry.lost(attempt);
          continue;
        }
      }
      await writtenIf(() =>
        this.#doc.send(
          new DeleteCommand({
            TableName: this.#table,
            Key: { pk: spillPk(key), sk: node },
            ConditionExpression: 'g = :g AND st = :leaving',
            ExpressionAttributeValues: { ':g': g, ':leaving': 'leaving' },
          }),
        ),
      );
      await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: headKey(key),
          UpdateExpression: 'DELETE lv :e',
          ExpressionAttributeValues: { ':e': new Set([e]) },
        }),
      );
      return;
    }
    throw retry.giveUp();
  }

  /** Every item of one small partition (budgets, the queue, holds, kept signals), strongly consistent. */
  #partition(pk: string): Promise<Record<string, unknown>[]> {
    return queryPartition(this.#doc, this.#table, pk);
  }
}
