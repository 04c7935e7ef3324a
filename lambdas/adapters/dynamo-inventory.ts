// The inventory in the table for the AWS runtime: one item per node, one per token hash, one meta item.
// `rebootctl inventory push` writes them in parallel batches; functions read single items, cached briefly.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  type BatchWriteCommandOutput,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import { createHash } from 'node:crypto';
import { InventoryIndex } from '../core/inventory.ts';
import type { Inventory, NodeDef, OperatorDef, Policy } from '../core/types.ts';
import type { InventoryHint } from '../ports/index.ts';

/**
 * Node items spread over this many partitions (by a hash of the node id), so listing every node
 * (watchdog, reports, the operator) is a few Queries, and no single partition carries the fleet.
 */
export const INVENTORY_SHARDS = 16;
/** DynamoDB's BatchWriteItem limit. */
export const BATCH_WRITE_MAX = 25;

const META_KEY = { pk: 'INV#META', sk: 'CURRENT' };
const shardOf = (s: string) => createHash('sha256').update(s).digest()[0] % INVENTORY_SHARDS;
export const nodeItemKey = (id: string) => ({ pk: `INV#NODES#${shardOf(id)}`, sk: id });
/** The token hashes are hex already: their first character spreads them over 16 partitions. */
export const tokenItemKey = (hash: string) => ({ pk: `INV#TOKENS#${hash[0]}`, sk: hash });

export type TokenKind = 'bmc' | 'agent';

/** Who a token hash belongs to: generic, so per-xPU agent tokens are one more item of kind `agent`. */
export interface TokenOwner {
  node: string;
  kind: TokenKind;
  /** The agent id a per-agent token is limited to (e.g. `node-a.dpu0`); absent for node-wide tokens. */
  agent?: string;
}

export interface InventoryMeta {
  policy: Policy;
  operatorTokenHash?: string;
  /** Named operators, tokens hashed (docs/identities.md): few, so they travel with the meta item. */
  operators?: OperatorDef[];
  nodes: number;
  generation: number;
}

const hashOf = (t: string) => (t.startsWith('sha256:') ? t.slice(7).toLowerCase() : createHash('sha256').update(t).digest('hex'));

/** Every token of a node with its owner (node tokens, and any `agentToken` an xPU carries). */
export function tokensOf(node: NodeDef): Array<{ hash: string; owner: TokenOwner }> {
  const out: Array<{ hash: string; owner: TokenOwner }> = [];
  // Current and next (rollover) tokens alike: both must find the node during a rotation.
  for (const t of [node.bmcToken, node.bmcTokenNext]) if (t) out.push({ hash: hashOf(t), owner: { node: node.id, kind: 'bmc' } });
  for (const t of [node.agentToken, node.agentTokenNext]) if (t) out.push({ hash: hashOf(t), owner: { node: node.id, kind: 'agent' } });
  for (const x of node.xpus) {
    for (const t of [x.agentToken, x.agentTokenNext])
      if (t) out.push({ hash: hashOf(t), owner: { node: node.id, kind: 'agent', agent: `${node.id}.${x.id}` } });
  }
  // A node's bmcToken may equal its agentToken (release 1): one item, the BMC meaning first.
  return out.filter((t, i) => out.findIndex((o) => o.hash === t.hash) === i);
}

/** The items of an inventory whose tokens are hashed already (withHashedTokens); pure, for tests. */
export function inventoryItems(inv: Inventory, generation: number): { items: Record<string, unknown>[]; meta: Record<string, unknown> } {
  const items: Record<string, unknown>[] = [];
  for (const node of inv.nodes) {
    items.push({ ...nodeItemKey(node.id), kind: 'node', gen: generation, body: JSON.stringify(node) });
    for (const { hash, owner } of tokensOf(node)) items.push({ ...tokenItemKey(hash), ...owner, gen: generation });
  }
  const meta: InventoryMeta = {
    policy: inv.policy,
    operatorTokenHash: inv.operatorTokenHash,
    ...(inv.operators ? { operators: inv.operators } : {}),
    nodes: inv.nodes.length,
    generation,
  };
  return { items, meta: { ...META_KEY, body: JSON.stringify(meta), at: new Date(generation).toISOString() } };
}

export interface PushResult {
  nodes: number;
  tokens: number;
  /** Items of an earlier push that the inventory no longer has (removed nodes, changed tokens). */
  deleted: number;
  /** BatchWriteItem calls, retries of unprocessed items included. */
  calls: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class DynamoInventory {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;

  constructor(client: DynamoDBClient, table: string) {
    this.#doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.#table = table;
  }

  /**
   * Writes the inventory (tokens hashed) as node and token items, `concurrency` batches at a time,
   * then deletes what an earlier push left, then the meta item: readers see the new policy and
   * operator hash once every node is there.
   */
  async push(inv: Inventory, opts: { concurrency?: number; generation?: number } = {}): Promise<PushResult> {
    const generation = opts.generation ?? Date.now();
    const { items, meta } = inventoryItems(inv, generation);
    const calls = { n: 0 };
    await this.#batchWrite(
      items.map((Item) => ({ PutRequest: { Item } })),
      opts.concurrency ?? 16,
      calls,
    );
    const stale: Record<string, unknown>[] = [];
    for (const prefix of ['INV#NODES#', 'INV#TOKENS#']) {
      const shards = prefix === 'INV#NODES#' ? [...Array(INVENTORY_SHARDS).keys()].map(String) : [...'0123456789abcdef'];
      const found = await Promise.all(shards.map((s) => this.#queryAll(`${prefix}${s}`, generation)));
      stale.push(...found.flat());
    }
    await this.#batchWrite(
      stale.map((Key) => ({ DeleteRequest: { Key } })),
      opts.concurrency ?? 16,
      calls,
    );
    await this.#doc.send(new PutCommand({ TableName: this.#table, Item: meta }));
    const tokens = items.length - inv.nodes.length;
    return { nodes: inv.nodes.length, tokens, deleted: stale.length, calls: calls.n };
  }

  /** Keys of a partition's items from a generation other than `generation`. */
  async #queryAll(pk: string, generation: number): Promise<Record<string, unknown>[]> {
    const keys: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await this.#doc.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: 'pk = :p',
          FilterExpression: 'gen <> :g',
          ProjectionExpression: 'pk, sk',
          ExpressionAttributeValues: { ':p': pk, ':g': generation },
          // Strongly consistent: an eventually consistent read may still return an item this push just
          // rewrote with its old generation, and the sweep would delete a node or token that is current.
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      keys.push(...(res.Items ?? []).map((it) => ({ pk: it.pk, sk: it.sk })));
      start = res.LastEvaluatedKey;
    } while (start);
    return keys;
  }

  /** 25 requests per call, `concurrency` calls in flight; unprocessed items go again with backoff. */
  async #batchWrite(requests: Record<string, unknown>[], concurrency: number, calls: { n: number }): Promise<void> {
    const batches: Record<string, unknown>[][] = [];
    for (let i = 0; i < requests.length; i += BATCH_WRITE_MAX) batches.push(requests.slice(i, i + BATCH_WRITE_MAX));
    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        let batch: Record<string, unknown>[] | undefined = batches[next++];
        for (let attempt = 0; batch && batch.length > 0; attempt++) {
          if (attempt >= 10) throw new Error(`${batch.length} inventory items stayed unprocessed after 10 attempts`);
          if (attempt > 0) await sleep(Math.random() * Math.min(2000, 50 * 2 ** attempt));
          calls.n++;
          const res: BatchWriteCommandOutput = await this.#doc.send(
            new BatchWriteCommand({ RequestItems: { [this.#table]: batch as never } }),
          );
          batch = res.UnprocessedItems?.[this.#table] as Record<string, unknown>[] | undefined;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, batches.length) }, worker));
  }

  async meta(): Promise<InventoryMeta | undefined> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: META_KEY }));
    return res.Item ? (JSON.parse(res.Item.body as string) as InventoryMeta) : undefined;
  }

  async node(id: string): Promise<NodeDef | undefined> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: nodeItemKey(id) }));
    return res.Item ? (JSON.parse(res.Item.body as string) as NodeDef) : undefined;
  }

  async tokenOwner(hash: string): Promise<TokenOwner | undefined> {
    if (!/^[0-9a-f]{64}$/.test(hash)) return undefined;
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: tokenItemKey(hash) }));
    if (!res.Item) return undefined;
    const { node, kind, agent } = res.Item as TokenOwner;
    return { node, kind, ...(agent ? { agent } : {}) };
  }

  async allNodes(): Promise<NodeDef[]> {
    const pages = await Promise.all(
      [...Array(INVENTORY_SHARDS).keys()].map(async (s) => {
        const out: NodeDef[] = [];
        let start: Record<string, unknown> | undefined;
        do {
          const res = await this.#doc.send(
            new QueryCommand({
              TableName: this.#table,
              KeyConditionExpression: 'pk = :p',
              ExpressionAttributeValues: { ':p': `INV#NODES#${s}` },
              ExclusiveStartKey: start,
            }),
          );
          out.push(...(res.Items ?? []).map((it) => JSON.parse(it.body as string) as NodeDef));
          start = res.LastEvaluatedKey;
        } while (start);
        return out;
      }),
    );
    return pages.flat().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
}

export class InventoryMissing extends Error {
  override readonly name = 'InventoryMissing';
}

interface Source {
  meta(): Promise<InventoryMeta | undefined>;
  node(id: string): Promise<NodeDef | undefined>;
  tokenOwner(hash: string): Promise<TokenOwner | undefined>;
  allNodes(): Promise<NodeDef[]>;
}

/**
 * The inventory as the functions see it in AWS: an InventoryIndex of just the nodes a request
 * needs, from items cached for `ttlMs` (a pushed change shows within that time). Without a hint
 * (watchdog, reports) or for the operator it is every node, also cached.
 */
export class CachedInventory {
  readonly #src: Source;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { at: number; value: Promise<unknown> }>();

  constructor(src: Source, ttlMs: number, now: () => number = Date.now) {
    this.#src = src;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  #cached<T>(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.#cache.get(key);
    if (hit && this.#now() - hit.at < this.#ttlMs) return hit.value as Promise<T>;
    const value = load();
    // A failed read (throttle, timeout) is not remembered: the next request tries again.
    value.catch(() => this.#cache.get(key)?.value === value && this.#cache.delete(key));
    this.#cache.set(key, { at: this.#now(), value });
    if (this.#cache.size > 20_000) this.#cache.delete(this.#cache.keys().next().value!);
    return value;
  }

  async index(hint?: InventoryHint): Promise<InventoryIndex> {
    const meta = await this.#cached('meta', () => this.#src.meta());
    if (!meta) throw new InventoryMissing('no inventory in the table: run `rebootctl inventory push`');
    const base = {
      policy: meta.policy,
      operatorTokenHash: meta.operatorTokenHash,
      ...(meta.operators ? { operators: meta.operators } : {}),
    };
    const everything = () => this.#cached('all', () => this.#src.allNodes());
    const operators = [meta.operatorTokenHash, ...(meta.operators ?? []).flatMap((o) => [o.token, o.tokenNext].map((t) => t && hashOf(t)))];
    if (!hint || (hint.tokenHash && operators.includes(hint.tokenHash))) return new InventoryIndex({ ...base, nodes: await everything() });
    const ids = new Set(hint.nodes ?? []);
    if (hint.tokenHash) {
      const owner = await this.#cached(`t:${hint.tokenHash}`, () => this.#src.tokenOwner(hint.tokenHash!));
      if (owner) ids.add(owner.node);
    }
    const nodes = await Promise.all([...ids].map((id) => this.#cached(`n:${id}`, () => this.#src.node(id))));
    return new InventoryIndex({ ...base, nodes: nodes.filter((n): n is NodeDef => n !== undefined) });
  }
}
