// RebootStore on one DynamoDB table (pk/sk + gsi1): reboots, node claims, commands, event keys.
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  type BatchWriteCommandInput,
  type BatchWriteCommandOutput,
  DeleteCommand,
  DynamoDBDocumentClient,
  type BatchGetCommandOutput,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { AcquireResult, BudgetSlot, Hold } from '../core/budgets.ts';
import { CLOCK_WINDOW_MS, type ClockEstimate, type ClockSample } from '../core/bmc-clock.ts';
import { boundReboot } from '../core/bounds.ts';
import { ConcurrentUpdate } from '../core/errors.ts';
import type { StoredReboot } from '../core/reboot.ts';
import type { NativeEvent } from '../core/types.ts';
import type {
  ActiveReboot,
  ClaimAheadResult,
  ClaimResult,
  IdempotentAnswer,
  ListQuery,
  NodeStateRecord,
  QueuedEntry,
  RebootStore,
  StoredCommand,
} from '../ports/index.ts';
import { DEFAULT_RETENTION_DAYS, RebootIndex, rebootIndexAttributes } from './reboot-index.ts';
import { packReboot, unpackReboot } from './reboot-item.ts';
import { coalesce } from './coalesce.ts';
import { DynamoBudgets } from './dynamo-budgets.ts';
import { queryAll, queryPartition } from './query-partition.ts';
import { conflictRetry, throttled as jitter, Turns } from './optimistic.ts';

const BATCH_GET_MAX = 100;
const BATCH_WRITE_MAX = 25;
const DROPPED = 'DROPPED';
/** Dropped events are kept (and listed) this many days. */
const DROPPED_DAYS = 30;
const MAX_ATTEMPTS = 12;

function isConditionFailure(err: unknown): boolean {
  return err instanceof ConditionalCheckFailedException || (err as { name?: string })?.name === 'ConditionalCheckFailedException';
}

const rebootKey = (id: string) => ({ pk: `R#${id}`, sk: 'R' });
const nodeKey = (node: string) => ({ pk: `N#${node}`, sk: 'STATE' });
const commandKey = (agent: string, id: string) => ({ pk: `A#${agent}`, sk: `C#${id}` });
const xpuAttr = (xpu: string) => `x_${xpu}`;
/** The event key of a claim taken ahead of its look-up (claimXpuAhead), until confirmed or released; and when. */
const claimKeyAttr = (xpu: string) => `c_${xpu}`;
const claimAtAttr = (xpu: string) => `a_${xpu}`;
/** Set (to the holder's id) when signals of the xPU's next outage were kept on the holder: its release sends them. */
const deferredAttr = (xpu: string) => `d_${xpu}`;
/** `<reboot id> <ended at>`: the xPU's last reboot that failed for want of its ready (NodeStateRecord.awaitingReady). */
const awaitingReadyAttr = (xpu: string) => `w_${xpu}`;
/** A source's clock estimate (core/bmc-clock.ts), `{ gapMs, at }`: its smallest recent sample. */
const clockAttr = (source: string) => `k_${source}`;
/** The same source's latest sample, `{ gapMs, at }` (ClockEstimate.latest). */
const latestClockAttr = (source: string) => `kl_${source}`;
const eventRebootKey = (key: string) => ({ pk: `EVENTKEY#${key}`, sk: 'R' });
const idempotencyKey = (key: string) => ({ pk: `IDEM#${key}`, sk: 'A' });
/** dynalite has no TTL: readers honour the expiry themselves. */
const expired = (item: Record<string, unknown>) => typeof item.ttl === 'number' && item.ttl * 1000 <= Date.now();
// Budgets, the queue of reboots they hold back, and holds: one partition each, so each lists with one Query.
const QUEUED = 'QUEUED';
const HOLDS = 'HOLD';

function stripKeys<T>(item: Record<string, unknown> | undefined): T | undefined {
  if (!item) return undefined;
  const { pk: _pk, sk: _sk, gsi1pk: _g1, gsi1sk: _g2, gsi2pk: _g3, gsi2sk: _g4, ttl: _ttl, ...rest } = item;
  return rest as T;
}

/** Runs a conditional write: true when it was written, false when its condition failed. */
async function writtenIf(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (err) {
    if (isConditionFailure(err)) return false;
    throw err;
  }
}

function nodeState(node: string, item: Record<string, unknown>): NodeStateRecord {
  const xpus: Record<string, string> = {};
  for (const [k, v] of Object.entries(item)) if (k.startsWith('x_') && typeof v === 'string') xpus[k.slice(2)] = v;
  const lastXpuReboots: Record<string, string> = {};
  for (const [k, v] of Object.entries(item)) if (k.startsWith('l_') && typeof v === 'string') lastXpuReboots[k.slice(2)] = v;
  const awaitingReady: Record<string, { rebootId: string; endedAt: string }> = {};
  for (const [k, v] of Object.entries(item))
    if (k.startsWith('w_') && typeof v === 'string') {
      const [rebootId, endedAt] = v.split(' ');
      if (rebootId && endedAt) awaitingReady[k.slice(2)] = { rebootId, endedAt };
    }
  const claimsAhead: Record<string, { key: string; at: string }> = {};
  for (const [k, v] of Object.entries(item))
    if (k.startsWith('c_') && typeof v === 'string') claimsAhead[k.slice(2)] = { key: v, at: String(item[claimAtAttr(k.slice(2))] ?? '') };
  const clocks: Record<string, ClockEstimate> = {};
  const sampleOf = (v: unknown): ClockSample | undefined => {
    const { gapMs, at } = (v && typeof v === 'object' ? v : {}) as Record<string, unknown>;
    return typeof gapMs === 'number' && typeof at === 'number' ? { gapMs, at } : undefined;
  };
  for (const [k, v] of Object.entries(item)) {
    const min = k.startsWith('k_') ? sampleOf(v) : undefined;
    const latest = min && sampleOf(item[latestClockAttr(k.slice(2))]);
    if (min) clocks[k.slice(2)] = latest ? { ...min, latest } : min;
  }
  return {
    node,
    host: item.host as string | undefined,
    ...(typeof item.lh === 'string' ? { lastHostReboot: item.lh } : {}),
    xpus,
    lastBmcEventAt: item.lastBmcEventAt as string | undefined,
    lastXpuReboots,
    awaitingReady,
    provisionedTenant: item.provisionedTenant as string | undefined,
    claimsAhead,
    clocks,
  };
}

export class DynamoRebootStore implements RebootStore {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #index: RebootIndex;
  readonly #retentionDays: number;
  readonly #turns = new Turns();
  readonly #commandPage: number | undefined;
  readonly #budgets: DynamoBudgets;

  /**
   * `retentionDays`: how long an ended reboot stays in the table (TTL); the daily S3 reports keep it after.
   * `commandPage`: at most this many open commands per Query page (tests; DynamoDB's 1 MB page otherwise).
   * `budgetHeadCap`: nodes a budget's head item names before new ones spill to items of their own (dynamo-budgets.ts).
   */
  constructor(client: DynamoDBClient, table: string, opts: { retentionDays?: number; commandPage?: number; budgetHeadCap?: number } = {}) {
    this.#doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: true } });
    this.#table = table;
    this.#commandPage = opts.commandPage;
    this.#retentionDays = opts.retentionDays ?? DEFAULT_RETENTION_DAYS;
    this.#index = new RebootIndex(this.#doc, table, this.#retentionDays);
    this.#budgets = new DynamoBudgets(this.#doc, table, opts.budgetHeadCap);
  }

  async getReboot(id: string): Promise<StoredReboot | undefined> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: rebootKey(id), ConsistentRead: true }));
    return res.Item && unpackReboot(stripKeys(res.Item)!);
  }

  /** The item layout is reboot-item.ts's: a few plain attributes and a compressed body (under 1 KB: one WRU a write). */
  #rebootItem(r: StoredReboot) {
    return { ...packReboot(r), ...rebootKey(r.id), ...rebootIndexAttributes(r, this.#retentionDays) };
  }

  async createReboot(reboot: StoredReboot): Promise<boolean> {
    await this.#index.recordDay(reboot.notifiedAt);
    return writtenIf(() =>
      this.#doc.send(
        new PutCommand({
          TableName: this.#table,
          Item: this.#rebootItem(boundReboot(reboot)),
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    );
  }

  /**
   * One BatchGetItem of at most BATCH_GET_MAX keys, asked again for the keys it leaves unprocessed under
   * load (with backoff), at most MAX_ATTEMPTS times: then ConcurrentUpdate, which SQS, the ASL Retry or a 503 retries.
   */
  async #batchGet(keys: Record<string, unknown>[], consistent: boolean, what: string): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    let left: Record<string, unknown>[] | undefined = keys;
    for (let attempt = 0; left && left.length > 0; attempt++) {
      if (attempt >= MAX_ATTEMPTS) throw new ConcurrentUpdate(`${what} after ${MAX_ATTEMPTS} attempts`);
      const res: BatchGetCommandOutput = await this.#doc.send(
        new BatchGetCommand({ RequestItems: { [this.#table]: consistent ? { Keys: left, ConsistentRead: true } : { Keys: left } } }),
      );
      out.push(...(res.Responses?.[this.#table] ?? []));
      left = res.UnprocessedKeys?.[this.#table]?.Keys as Record<string, unknown>[] | undefined;
      if (left?.length) await jitter(attempt);
    }
    return out;
  }

  /** Whole reboot items for ids read from the index, in the index's order. */
  async #rebootsById(ids: string[]): Promise<StoredReboot[]> {
    const found = new Map<string, StoredReboot>();
    for (let i = 0; i < ids.length; i += BATCH_GET_MAX) {
      const items = await this.#batchGet(ids.slice(i, i + BATCH_GET_MAX).map(rebootKey), true, 'reboots left unprocessed');
      for (const it of items) found.set(it.id as string, unpackReboot(stripKeys(it)!));
    }
    return ids.map((id) => found.get(id)).filter((r): r is StoredReboot => r !== undefined);
  }

  async updateReboot(id: string, change: (r: StoredReboot) => StoredReboot | null, known?: StoredReboot) {
    // Writers of this reboot in this process take turns (optimistic.ts); one that waited for another
    // reads afresh, as the caller's copy is then likely older than what the one before it wrote.
    return this.#turns.run(`R#${id}`, (waited) => this.#updateReboot(id, change, waited ? undefined : known));
  }

  async #updateReboot(id: string, change: (r: StoredReboot) => StoredReboot | null, known?: StoredReboot) {
    // The caller's copy stands in for the first read; a conflict (or a null change) reads afresh.
    let seed = known?.id === id ? known : undefined;
    const retry = conflictRetry(`reboot ${id}`);
    for (let attempt = 0; retry.more(attempt); attempt++) {
      const current = seed ?? (await this.getReboot(id));
      if (!current) return undefined;
      const changed = change(structuredClone(current));
      const seeded = seed !== undefined;
      seed = undefined;
      if (!changed && seeded) {
        attempt--; // "nothing to change" is decided on a fresh read, not on the caller's copy
        continue;
      }
      if (!changed) return { reboot: current, changed: false };
      // The one choke point every writer of a reboot passes: its size stays bounded (core/bounds.ts).
      const next = boundReboot(changed);
      next.version = current.version + 1;
      if (next.notifiedAt !== current.notifiedAt) await this.#index.recordDay(next.notifiedAt);
      try {
        await this.#doc.send(
          new PutCommand({
            TableName: this.#table,
            Item: this.#rebootItem(next),
            ConditionExpression: 'version = :v',
            ExpressionAttributeValues: { ':v': current.version },
          }),
        );
        return { reboot: next, changed: true };
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
        await retry.lost(attempt);
      }
    }
    throw retry.giveUp();
  }

  async listReboots(q: ListQuery) {
    const page = await this.#index.list(q);
    return { items: await this.#rebootsById(page.ids), next: page.next };
  }

  async activeReboots(): Promise<ActiveReboot[] | null> {
    return this.#index.active();
  }

  async rebootsNotifiedBetween(from: Date, to: Date): Promise<StoredReboot[]> {
    return this.#rebootsById(await this.#index.between(from, to));
  }

  async getNodeState(node: string): Promise<NodeStateRecord> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: nodeKey(node), ConsistentRead: true }));
    return nodeState(node, res.Item ?? {});
  }

  async getNodeStates(nodes: string[]): Promise<Map<string, NodeStateRecord>> {
    const found = new Map<string, NodeStateRecord>();
    for (let i = 0; i < nodes.length; i += BATCH_GET_MAX) {
      // Eventually consistent: half the read cost, and a second-old view is fine for the watchdog.
      const items = await this.#batchGet(nodes.slice(i, i + BATCH_GET_MAX).map(nodeKey), false, 'node states left unprocessed');
      for (const it of items) {
        const node = String(it.pk).replace(/^N#/, '');
        found.set(node, nodeState(node, it));
      }
    }
    for (const node of nodes) if (!found.has(node)) found.set(node, nodeState(node, {}));
    return found;
  }

  async claimXpu(node: string, xpu: string, rebootId: string): Promise<ClaimResult> {
    try {
      const res = await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: nodeKey(node),
          // Holding it under this id, it is this reboot's now: a claim taken ahead is confirmed (no key).
          UpdateExpression: 'SET #x = :id REMOVE #c, #a ADD xpuSet :s',
          ConditionExpression: 'attribute_not_exists(#x) OR #x = :id',
          ExpressionAttributeNames: { '#x': xpuAttr(xpu), '#c': claimKeyAttr(xpu), '#a': claimAtAttr(xpu) },
          ExpressionAttributeValues: { ':id': rebootId, ':s': new Set([xpu]) },
          // The node as our claim left it, read in the same atomic write: no second read needed.
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { ok: true, state: nodeState(node, res.Attributes ?? {}) };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return { ok: false, state: await this.getNodeState(node) };
    }
  }

  async claimXpuAhead(node: string, xpu: string, rebootId: string, key: string, at: Date): Promise<ClaimAheadResult> {
    try {
      const res = await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: nodeKey(node),
          UpdateExpression: 'SET #x = :id, #c = :k, #a = :at ADD xpuSet :s',
          // Only where no one holds it, not "or under this id": then a key on a claim says that no one
          // but its minter took it (the minter alone knows the id until its mapping is written).
          ConditionExpression: 'attribute_not_exists(#x)',
          ExpressionAttributeNames: { '#x': xpuAttr(xpu), '#c': claimKeyAttr(xpu), '#a': claimAtAttr(xpu) },
          ExpressionAttributeValues: { ':id': rebootId, ':k': key, ':at': at.toISOString(), ':s': new Set([xpu]) },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { ok: true, state: nodeState(node, res.Attributes ?? {}) };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return { ok: false }; // no read: the caller does not look (a duplicate, say, pays nothing more)
    }
  }

  async releaseAhead(node: string, xpu: string, rebootId: string, key: string): Promise<boolean> {
    return writtenIf(() =>
      this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: nodeKey(node),
          UpdateExpression: 'REMOVE #x, #c, #a DELETE xpuSet :s',
          ConditionExpression: '#x = :id AND #c = :k',
          ExpressionAttributeNames: { '#x': xpuAttr(xpu), '#c': claimKeyAttr(xpu), '#a': claimAtAttr(xpu) },
          ExpressionAttributeValues: { ':id': rebootId, ':k': key, ':s': new Set([xpu]) },
        }),
      ),
    );
  }

  async claimHost(node: string, rebootId: string, exclusive: boolean): Promise<ClaimResult> {
    try {
      await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: nodeKey(node),
          UpdateExpression: 'SET #h = :id',
          // The xPU set and the host claim live on one item, so "no xPU is rebooting" and
          // "take the host" are one atomic write: an xPU and a host reboot cannot both slip in.
          ConditionExpression: exclusive
            ? '(attribute_not_exists(#h) OR #h = :id) AND attribute_not_exists(xpuSet)'
            : 'attribute_not_exists(#h) OR #h = :id',
          ExpressionAttributeNames: { '#h': 'host' },
          ExpressionAttributeValues: { ':id': rebootId },
        }),
      );
      return { ok: true };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return { ok: false, state: await this.getNodeState(node) };
    }
  }

  async release(
    node: string,
    kind: 'xpu' | 'host',
    xpu: string | null,
    rebootId: string,
    remember = true,
    awaitsReadySince?: string,
  ): Promise<boolean> {
    try {
      if (kind === 'xpu' && xpu) {
        // The released reboot stays findable as the xPU's last one: late signals belong to it. One that
        // failed for want of its ready stays findable as such, beyond the reboots that follow it.
        const sets = [...(remember ? ['#l = :id'] : []), ...(awaitsReadySince ? ['#w = :w'] : [])];
        const res = await this.#doc.send(
          new UpdateCommand({
            TableName: this.#table,
            Key: nodeKey(node),
            UpdateExpression: `REMOVE #x, #c, #a, #d${sets.length ? ` SET ${sets.join(', ')}` : ''} DELETE xpuSet :s`,
            ConditionExpression: '#x = :id',
            ExpressionAttributeNames: {
              '#x': xpuAttr(xpu),
              '#c': claimKeyAttr(xpu),
              '#a': claimAtAttr(xpu),
              '#d': deferredAttr(xpu),
              ...(remember ? { '#l': `l_${xpu}` } : {}),
              ...(awaitsReadySince ? { '#w': awaitingReadyAttr(xpu) } : {}),
            },
            ExpressionAttributeValues: {
              ':id': rebootId,
              ':s': new Set([xpu]),
              ...(awaitsReadySince ? { ':w': `${rebootId} ${awaitsReadySince}` } : {}),
            },
            // The deferral mark as it was, in the same atomic write: a mark set after the releaser read the reboot is seen here.
            ReturnValues: 'UPDATED_OLD',
          }),
        );
        return res.Attributes?.[deferredAttr(xpu)] === rebootId;
      } else {
        await this.#doc.send(
          new UpdateCommand({
            TableName: this.#table,
            Key: nodeKey(node),
            // Remembered like an xPU's last reboot: a request delivered after the reboot ended finds it.
            UpdateExpression: remember ? 'REMOVE #h SET lh = :id' : 'REMOVE #h',
            ConditionExpression: '#h = :id',
            ExpressionAttributeNames: { '#h': 'host' },
            ExpressionAttributeValues: { ':id': rebootId },
          }),
        );
      }
    } catch (err) {
      // Released already (a replayed step), or held by another reboot: nothing of ours to release.
      if (!isConditionFailure(err)) throw err;
    }
    return false;
  }

  async markDeferred(node: string, xpu: string, rebootId: string): Promise<boolean> {
    return writtenIf(() =>
      this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: nodeKey(node),
          UpdateExpression: 'SET #d = :id',
          ConditionExpression: '#x = :id',
          ExpressionAttributeNames: { '#x': xpuAttr(xpu), '#d': deferredAttr(xpu) },
          ExpressionAttributeValues: { ':id': rebootId },
        }),
      ),
    );
  }

  async touchBmc(node: string, at: string): Promise<void> {
    await this.#setNodeAttribute(node, 'lastBmcEventAt', at);
  }

  async noteClock(node: string, source: string, sample: ClockSample): Promise<boolean> {
    // Two writes side by side, no read: the smallest under bmc-clock.ts `supersedes` (a smaller or equal
    // gap, or one past its window), the latest under `isLater`. Each condition is its rule, so the pair
    // lands the same in any order and beside any other sample's pair.
    const [min] = await Promise.all([
      writtenIf(() =>
        this.#doc.send(
          new UpdateCommand({
            TableName: this.#table,
            Key: nodeKey(node),
            UpdateExpression: 'SET #k = :k',
            ConditionExpression: 'attribute_not_exists(#k) OR #k.#g >= :g OR #k.#at < :stale',
            ExpressionAttributeNames: { '#k': clockAttr(source), '#g': 'gapMs', '#at': 'at' },
            ExpressionAttributeValues: {
              ':k': { gapMs: sample.gapMs, at: sample.at },
              ':g': sample.gapMs,
              ':stale': sample.at - CLOCK_WINDOW_MS,
            },
          }),
        ),
      ),
      writtenIf(() =>
        this.#doc.send(
          new UpdateCommand({
            TableName: this.#table,
            Key: nodeKey(node),
            UpdateExpression: 'SET #l = :l',
            ConditionExpression: 'attribute_not_exists(#l) OR #l.#at <= :at',
            ExpressionAttributeNames: { '#l': latestClockAttr(source), '#at': 'at' },
            ExpressionAttributeValues: { ':l': { gapMs: sample.gapMs, at: sample.at }, ':at': sample.at },
          }),
        ),
      ),
    ]);
    return min;
  }

  async setProvisionedTenant(node: string, tenant: string): Promise<void> {
    await this.#setNodeAttribute(node, 'provisionedTenant', tenant);
  }

  /** One attribute of the node item, leaving its claims alone (no read, no condition). */
  async #setNodeAttribute(node: string, name: 'lastBmcEventAt' | 'provisionedTenant', value: string): Promise<void> {
    await this.#doc.send(
      new UpdateCommand({
        TableName: this.#table,
        Key: nodeKey(node),
        UpdateExpression: 'SET #a = :v',
        ExpressionAttributeNames: { '#a': name },
        ExpressionAttributeValues: { ':v': value },
      }),
    );
  }

  async keepSignal(ev: NativeEvent, ttlSeconds: number): Promise<void> {
    await this.#doc.send(
      new PutCommand({
        TableName: this.#table,
        Item: { pk: `K#${ev.node}`, sk: `${ev.receivedAt}#${ev.dedupKey}`, event: ev, ttl: Math.floor(Date.now() / 1000) + ttlSeconds },
      }),
    );
  }

  async keptSignals(node: string): Promise<NativeEvent[]> {
    // Every page: a BMC flooding one node (and expired items TTL has not deleted yet) can pass 1 MB.
    const items = await this.#partition(`K#${node}`);
    // dynalite has no TTL: readers honour the expiry themselves.
    return items.filter((it) => typeof it.ttl !== 'number' || it.ttl * 1000 > Date.now()).map((it) => it.event as NativeEvent);
  }

  async forgetSignal(ev: NativeEvent): Promise<void> {
    await this.#doc.send(new DeleteCommand({ TableName: this.#table, Key: { pk: `K#${ev.node}`, sk: `${ev.receivedAt}#${ev.dedupKey}` } }));
  }

  #commandItem(c: StoredCommand & { order?: number }) {
    const open = !['succeeded', 'failed', 'skipped', 'timed-out'].includes(c.status);
    // A closed command expires with its reboot (TTL, epoch seconds); an open one stays while its agent may fetch it.
    const closedAt = Date.parse(c.finishedAt ?? '') || Date.now();
    return {
      ...c,
      ...commandKey(c.agent, c.id),
      ...(open
        ? { gsi1pk: `OPEN#${c.agent}`, gsi1sk: `${c.createdAt}#${String(c.order ?? 0).padStart(4, '0')}#${c.id}` }
        : { ttl: Math.floor(closedAt / 1000) + this.#retentionDays * 86400 }),
    };
  }

  async putCommand(cmd: StoredCommand): Promise<boolean> {
    return writtenIf(() =>
      this.#doc.send(
        new PutCommand({ TableName: this.#table, Item: this.#commandItem(cmd), ConditionExpression: 'attribute_not_exists(pk)' }),
      ),
    );
  }

  async getCommand(agent: string, id: string): Promise<StoredCommand | undefined> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: commandKey(agent, id), ConsistentRead: true }));
    return stripKeys<StoredCommand>(res.Item);
  }

  async openCommands(agent: string): Promise<StoredCommand[]> {
    // Every page: a poll that saw only the oldest 100 (or 1 MB) would starve the commands behind
    // those in flight. One request while the agent's open commands fit a page, as before.
    const items = await queryAll(this.#doc, {
      TableName: this.#table,
      IndexName: 'gsi1',
      KeyConditionExpression: 'gsi1pk = :p',
      ExpressionAttributeValues: { ':p': `OPEN#${agent}` },
      ...(this.#commandPage ? { Limit: this.#commandPage } : {}),
    });
    return items.map((it) => stripKeys<StoredCommand>(it)!);
  }

  async updateCommand(agent: string, id: string, change: (c: StoredCommand) => StoredCommand | null) {
    return this.#turns.run(`C#${agent} ${id}`, () => this.#updateCommand(agent, id, change));
  }

  async #updateCommand(agent: string, id: string, change: (c: StoredCommand) => StoredCommand | null) {
    const retry = conflictRetry(`command ${id}`);
    for (let attempt = 0; retry.more(attempt); attempt++) {
      const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: commandKey(agent, id), ConsistentRead: true }));
      if (!res.Item) return undefined;
      const current = stripKeys<StoredCommand & { rev?: number; order?: number }>(res.Item)!;
      const next = change(structuredClone(current)) as (StoredCommand & { rev?: number; order?: number }) | null;
      if (!next) return { command: current, changed: false };
      next.rev = (current.rev ?? 0) + 1;
      try {
        await this.#doc.send(
          new PutCommand({
            TableName: this.#table,
            Item: this.#commandItem(next),
            ConditionExpression: current.rev === undefined ? 'attribute_not_exists(rev)' : 'rev = :r',
            ExpressionAttributeValues: current.rev === undefined ? undefined : { ':r': current.rev },
          }),
        );
        return { command: next, changed: true };
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
        await retry.lost(attempt);
      }
    }
    throw retry.giveUp();
  }

  async markDelivered(cmd: StoredCommand, at: string, redeliverBefore: string): Promise<StoredCommand | undefined> {
    const first = cmd.status === 'pending';
    try {
      // One conditional write instead of read-modify-write: this is on every agent's hot path.
      const res = await this.#doc.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: commandKey(cmd.agent, cmd.id),
          UpdateExpression: first
            ? 'SET #st = :delivered, seenAt = :at REMOVE redeliver ADD rev :one'
            : 'SET seenAt = :at REMOVE redeliver ADD rev :one',
          ConditionExpression: first
            ? '#st = :pending'
            : '#st IN (:delivered, :running) AND (attribute_not_exists(seenAt) OR seenAt < :before OR redeliver = :yes)',
          ExpressionAttributeNames: { '#st': 'status' },
          ExpressionAttributeValues: first
            ? { ':pending': 'pending', ':delivered': 'delivered', ':at': at, ':one': 1 }
            : { ':delivered': 'delivered', ':running': 'running', ':at': at, ':before': redeliverBefore, ':one': 1, ':yes': true },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return stripKeys<StoredCommand>(res.Attributes);
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  async moveNoticeDeadline(reboot: StoredReboot, deadline: string): Promise<void> {
    for (const c of Object.values(reboot.commands)) {
      if (['succeeded', 'failed', 'skipped', 'timed-out'].includes(c.status)) continue;
      // Flagged for redelivery: an agent running the hook learns the moved deadline on its next poll.
      // Only later: of two grants racing, the one whose move comes last may carry the earlier deadline.
      await this.updateCommand(c.agent, c.id, (cmd) =>
        cmd.noticePhase && cmd.deadline < deadline && !['succeeded', 'failed', 'skipped', 'timed-out'].includes(cmd.status)
          ? { ...cmd, deadline, redeliver: true }
          : null,
      );
    }
  }

  // The ingest's event-key reads and writes: the events of one batch that reach them in the same turn share a request.
  readonly #lookUps = coalesce(
    (items: Array<{ key: string; legacyRebootId?: string }>) => this.#lookUpEvents(items),
    Math.floor(BATCH_GET_MAX / 3),
  );
  readonly #marks = coalesce((items: Array<{ key: string; ttlSeconds: number }>) => this.#markEventsSeen(items), BATCH_WRITE_MAX);

  async markEventSeen(key: string, ttlSeconds: number): Promise<void> {
    await this.#marks({ key, ttlSeconds });
  }

  async isEventSeen(key: string): Promise<boolean> {
    return (await this.#lookUps({ key })).seen;
  }

  async recordDropped(ev: NativeEvent, reason: string): Promise<void> {
    const at = new Date().toISOString();
    await this.#doc.send(
      new PutCommand({
        TableName: this.#table,
        // One partition per day: a flood of unusable events does not pile onto one key.
        Item: {
          pk: `${DROPPED}#${at.slice(0, 10)}`,
          sk: `${at}#${ev.dedupKey}`,
          at,
          reason,
          event: ev,
          ttl: Math.floor(Date.now() / 1000) + DROPPED_DAYS * 86400,
        },
      }),
    );
  }

  async lookUpEvent(key: string, legacyRebootId: string): Promise<{ seen: boolean; rebootId?: string; legacy?: StoredReboot }> {
    return this.#lookUps({ key, legacyRebootId });
  }

  /** Dedup keys, event mappings and legacy reboots of several events in one BatchGetItem (consistent: the mapping and reboot are read). */
  async #lookUpEvents(
    items: Array<{ key: string; legacyRebootId?: string }>,
  ): Promise<Array<{ seen: boolean; rebootId?: string; legacy?: StoredReboot }>> {
    const seenKey = (key: string) => ({ pk: `E#${key}`, sk: 'E' });
    const wanted = new Map<string, Record<string, unknown>>();
    for (const { key, legacyRebootId } of items) {
      // A starting event needs all three; another only its dedup key. A batch may name a key twice.
      for (const k of legacyRebootId ? [seenKey(key), eventRebootKey(key), rebootKey(legacyRebootId)] : [seenKey(key)]) wanted.set(k.pk, k);
    }
    const found = new Map<string, Record<string, unknown>>();
    for (const it of await this.#batchGet([...wanted.values()], true, 'event keys left unread')) found.set(it.pk as string, it);
    return items.map(({ key, legacyRebootId }) => {
      const seen = found.get(seenKey(key).pk);
      const mapped = found.get(eventRebootKey(key).pk);
      const legacy = legacyRebootId ? found.get(rebootKey(legacyRebootId).pk) : undefined;
      return {
        // dynalite has no TTL: readers honour the expiry themselves.
        seen: !!seen && !expired(seen),
        rebootId: legacyRebootId && mapped && !expired(mapped) ? (mapped.rebootId as string) : undefined,
        // Reboot items are packed (reboot-item.ts): read through the same decoder as getReboot.
        legacy: legacy ? unpackReboot(stripKeys(legacy)!) : undefined,
      };
    });
  }

  /** Dedup keys of several events in one BatchWriteItem: unconditional, since nobody asks whether a mark was the first. */
  async #markEventsSeen(items: Array<{ key: string; ttlSeconds: number }>): Promise<undefined[]> {
    const byPk = new Map<string, Record<string, unknown>>();
    const now = Math.floor(Date.now() / 1000);
    for (const { key, ttlSeconds } of items) byPk.set(`E#${key}`, { pk: `E#${key}`, sk: 'E', ttl: now + ttlSeconds });
    let requests: BatchWriteCommandInput['RequestItems'] | undefined = {
      [this.#table]: [...byPk.values()].map((Item) => ({ PutRequest: { Item } })),
    };
    for (let attempt = 0; requests?.[this.#table]?.length; attempt++) {
      if (attempt >= MAX_ATTEMPTS) throw new ConcurrentUpdate(`event keys left unprocessed after ${MAX_ATTEMPTS} attempts`);
      const res: BatchWriteCommandOutput = await this.#doc.send(new BatchWriteCommand({ RequestItems: requests }));
      requests = res.UnprocessedItems;
      if (requests?.[this.#table]?.length) await jitter(attempt);
    }
    return items.map(() => undefined);
  }

  async rebootIdOfEvent(key: string): Promise<string | undefined> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: eventRebootKey(key), ConsistentRead: true }));
    return res.Item && !expired(res.Item) ? (res.Item.rebootId as string) : undefined;
  }

  async mapEventToReboot(key: string, rebootId: string, ttlSeconds: number): Promise<string> {
    return this.#putFirst(eventRebootKey(key), { rebootId }, ttlSeconds, rebootId, () => this.rebootIdOfEvent(key), `event key ${key}`);
  }

  async tryMapEventToReboot(key: string, rebootId: string, ttlSeconds: number): Promise<boolean> {
    return writtenIf(() => this.#doc.send(this.#putFirstCommand(eventRebootKey(key), { rebootId }, ttlSeconds)));
  }

  async getIdempotentAnswer(key: string): Promise<IdempotentAnswer | undefined> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: idempotencyKey(key), ConsistentRead: true }));
    return res.Item && !expired(res.Item) ? (res.Item.answer as IdempotentAnswer) : undefined;
  }

  async putIdempotentAnswer(key: string, answer: IdempotentAnswer, ttlSeconds: number): Promise<IdempotentAnswer> {
    return this.#putFirst(
      idempotencyKey(key),
      { answer },
      ttlSeconds,
      answer,
      () => this.getIdempotentAnswer(key),
      `idempotency key ${key}`,
    );
  }

  /**
   * First writer wins: puts the item unless a live one is there, and answers `mine` when it was put,
   * else what the first writer stored (read back with `read`). dynalite has no TTL: an expired item
   * still stored counts as absent, here and in the readers.
   */
  async #putFirst<T>(
    key: { pk: string; sk: string },
    fields: Record<string, unknown>,
    ttlSeconds: number,
    mine: T,
    read: () => Promise<T | undefined>,
    what: string,
  ): Promise<T> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        await this.#doc.send(this.#putFirstCommand(key, fields, ttlSeconds));
        return mine;
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
      }
      const first = await read();
      if (first !== undefined) return first;
    }
    throw new ConcurrentUpdate(`${what} kept changing under ${MAX_ATTEMPTS} attempts`);
  }

  /** The put of `#putFirst`: unless a live item is there (dynalite has no TTL: an expired one counts as absent). */
  #putFirstCommand(key: { pk: string; sk: string }, fields: Record<string, unknown>, ttlSeconds: number): PutCommand {
    return new PutCommand({
      TableName: this.#table,
      Item: { ...key, ...fields, ttl: Math.floor(Date.now() / 1000) + ttlSeconds },
      ConditionExpression: 'attribute_not_exists(pk) OR #ttl < :now',
      ExpressionAttributeNames: { '#ttl': 'ttl' },
      ExpressionAttributeValues: { ':now': Math.floor(Date.now() / 1000) },
    });
  }

  async listDropped(limit: number) {
    const out: Array<{ at: string; reason: string; event: NativeEvent }> = [];
    for (let back = 0; back <= DROPPED_DAYS && out.length < limit; back++) {
      const day = new Date(Date.now() - back * 86400_000).toISOString().slice(0, 10);
      // A page ends at 1 MB (dropped events carry their whole event) before Limit: read the day to its end.
      let start: Record<string, unknown> | undefined;
      do {
        const res = await this.#doc.send(
          new QueryCommand({
            TableName: this.#table,
            KeyConditionExpression: 'pk = :p',
            ExpressionAttributeValues: { ':p': `${DROPPED}#${day}` },
            ScanIndexForward: false,
            Limit: limit - out.length,
            ExclusiveStartKey: start,
          }),
        );
        out.push(...(res.Items ?? []).map((it) => ({ at: it.at as string, reason: it.reason as string, event: it.event as NativeEvent })));
        start = res.LastEvaluatedKey;
      } while (start && out.length < limit);
    }
    return out;
  }

  // --- disruption budgets, the queue, holds (docs/fleet-safety.md) --------------------------------------

  async acquireBudgets(slots: readonly BudgetSlot[], node: string, rebootId: string, opts: { force: boolean }): Promise<AcquireResult> {
    const taken: BudgetSlot[] = [];
    const overshoot: BudgetSlot[] = [];
    for (const slot of slots) {
      const res = await this.#budgets.acquire(slot, node, rebootId, opts.force);
      if (!res.ok) {
        // Give back what this attempt took, so a refused reboot holds nothing.
        await this.releaseBudgets(
          taken.map((t) => t.key),
          node,
          rebootId,
        );
        return res;
      }
      overshoot.push(...res.overshoot);
      taken.push(slot);
    }
    return { ok: true, overshoot };
  }

  async releaseBudgets(keys: readonly string[], node: string, rebootId: string): Promise<void> {
    for (const key of keys) await this.#budgets.release(key, node, rebootId);
  }

  async budgetUsage(keys?: readonly string[]): Promise<Map<string, string[]>> {
    return this.#budgets.usage(keys);
  }

  async enqueueReboot(entry: QueuedEntry): Promise<void> {
    await this.#doc.send(
      new PutCommand({ TableName: this.#table, Item: { pk: QUEUED, sk: `${entry.queuedAt}#${entry.rebootId}`, ...entry } }),
    );
  }

  async dequeueReboot(entry: QueuedEntry): Promise<void> {
    await this.#doc.send(new DeleteCommand({ TableName: this.#table, Key: { pk: QUEUED, sk: `${entry.queuedAt}#${entry.rebootId}` } }));
  }

  async queuedReboots(): Promise<QueuedEntry[]> {
    const out: QueuedEntry[] = [];
    for (const it of await this.#partition(QUEUED))
      out.push({ rebootId: it.rebootId as string, node: it.node as string, queuedAt: it.queuedAt as string });
    return out;
  }

  async putHold(hold: Hold): Promise<void> {
    await this.#doc.send(new PutCommand({ TableName: this.#table, Item: { pk: HOLDS, sk: hold.id, hold } }));
  }

  async listHolds(): Promise<Hold[]> {
    const out: Hold[] = [];
    for (const it of await this.#partition(HOLDS)) out.push(it.hold as Hold);
    return out;
  }

  async deleteHold(id: string): Promise<Hold | undefined> {
    const res = await this.#doc.send(new DeleteCommand({ TableName: this.#table, Key: { pk: HOLDS, sk: id }, ReturnValues: 'ALL_OLD' }));
    return res.Attributes?.hold as Hold | undefined;
  }

  /** Every item of one small partition (budgets, the queue, holds, kept signals), strongly consistent. */
  #partition(pk: string): Promise<Record<string, unknown>[]> {
    return queryPartition(this.#doc, this.#table, pk);
  }
}
