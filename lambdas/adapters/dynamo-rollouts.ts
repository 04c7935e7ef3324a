// RolloutStore on the coordinator's one table: an item per rollout, listed newest first through gsi1.
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { Rollout, RolloutClaim } from '../core/rollout.ts';
import type { RolloutStore } from '../ports/rollouts.ts';
import { backoffMs, conflictRetry, Turns } from './optimistic.ts';
import { queryAll } from './query-partition.ts';

const ALL_ROLLOUTS = 'ROLLOUTS';
const MAX_ATTEMPTS = 12;
const key = (id: string) => ({ pk: `RO#${id}`, sk: 'RO' });
/** One item per xPU a rollout has claimed (no index keys: listings never see it). */
const claimKey = (node: string, xpu: string) => ({ pk: `ROCLAIM#${node}#${xpu}`, sk: 'ROCLAIM' });

function isConditionFailure(err: unknown): boolean {
  return err instanceof ConditionalCheckFailedException || (err as { name?: string })?.name === 'ConditionalCheckFailedException';
}

function strip(item: Record<string, unknown> | undefined): Rollout | undefined {
  if (!item) return undefined;
  const { pk: _pk, sk: _sk, gsi1pk: _g1, gsi1sk: _g2, ...rest } = item;
  return rest as unknown as Rollout;
}

export class DynamoRolloutStore implements RolloutStore {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #turns = new Turns();

  constructor(client: DynamoDBClient, table: string) {
    this.#doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.#table = table;
  }

  #item(r: Rollout) {
    // gsi1 projects `id` (table-schema.ts): the listing reads ids there and the items here.
    return { ...r, ...key(r.id), gsi1pk: ALL_ROLLOUTS, gsi1sk: `${r.createdAt}#${r.id}` };
  }

  async createRollout(r: Rollout): Promise<boolean> {
    try {
      await this.#doc.send(
        new PutCommand({ TableName: this.#table, Item: this.#item(r), ConditionExpression: 'attribute_not_exists(pk)' }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async getRollout(id: string): Promise<Rollout | undefined> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: key(id), ConsistentRead: true }));
    return strip(res.Item);
  }

  async updateRollout(id: string, change: (r: Rollout) => Rollout | null) {
    // Its workflow's steps and the operator's cancel take turns here; other processes, conflictRetry.
    return this.#turns.run(id, () => this.#updateRollout(id, change));
  }

  async #updateRollout(id: string, change: (r: Rollout) => Rollout | null) {
    const retry = conflictRetry(`rollout ${id}`);
    for (let attempt = 0; retry.more(attempt); attempt++) {
      const current = await this.getRollout(id);
      if (!current) return undefined;
      const next = change(structuredClone(current));
      if (!next) return { rollout: current, changed: false };
      next.version = current.version + 1;
      try {
        await this.#doc.send(
          new PutCommand({
            TableName: this.#table,
            Item: this.#item(next),
            ConditionExpression: 'version = :v',
            ExpressionAttributeValues: { ':v': current.version },
          }),
        );
        return { rollout: next, changed: true };
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
        await retry.lost(attempt);
      }
    }
    throw retry.giveUp();
  }

  async listRollouts(limit: number): Promise<Rollout[]> {
    const res = await this.#doc.send(
      new QueryCommand({
        TableName: this.#table,
        IndexName: 'gsi1',
        KeyConditionExpression: 'gsi1pk = :p',
        ExpressionAttributeValues: { ':p': ALL_ROLLOUTS },
        ScanIndexForward: false,
        Limit: Math.min(limit, 100),
      }),
    );
    return this.#byIds((res.Items ?? []).map((it) => it.id as string));
  }

  async rolloutsCreatedBetween(from: Date, to: Date): Promise<Rollout[]> {
    const items = await queryAll(this.#doc, {
      TableName: this.#table,
      IndexName: 'gsi1',
      KeyConditionExpression: 'gsi1pk = :p AND gsi1sk BETWEEN :a AND :b',
      ExpressionAttributeValues: { ':p': ALL_ROLLOUTS, ':a': from.toISOString(), ':b': to.toISOString() },
    });
    return this.#byIds(items.filter((it) => String(it.gsi1sk) < to.toISOString()).map((it) => it.id as string));
  }

  async claimXpu(claim: RolloutClaim, replacing?: string): Promise<boolean> {
    try {
      await this.#doc.send(
        new PutCommand({
          TableName: this.#table,
          Item: { ...claimKey(claim.node, claim.xpu), node: claim.node, xpu: claim.xpu, rolloutId: claim.rolloutId, at: claim.at },
          ConditionExpression:
            replacing === undefined ? 'attribute_not_exists(pk) OR rolloutId = :me' : 'rolloutId = :me OR rolloutId = :old',
          ExpressionAttributeValues: { ':me': claim.rolloutId, ...(replacing === undefined ? {} : { ':old': replacing }) },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async getXpuClaim(node: string, xpu: string): Promise<RolloutClaim | undefined> {
    const res = await this.#doc.send(new GetCommand({ TableName: this.#table, Key: claimKey(node, xpu), ConsistentRead: true }));
    if (!res.Item) return undefined;
    const { node: n, xpu: x, rolloutId, at } = res.Item;
    return { node: n, xpu: x, rolloutId, at };
  }

  async releaseXpuClaim(node: string, xpu: string, rolloutId: string): Promise<void> {
    try {
      await this.#doc.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: claimKey(node, xpu),
          ConditionExpression: 'rolloutId = :me',
          ExpressionAttributeValues: { ':me': rolloutId },
        }),
      );
    } catch (err) {
      // Another rollout's by now (it superseded a claim left behind), or gone: nothing of ours to release.
      if (!isConditionFailure(err)) throw err;
    }
  }

  /** Whole items for ids read from the index, in the index's order (BatchGet takes 100 keys at a time). */
  async #byIds(ids: string[]): Promise<Rollout[]> {
    const found = new Map<string, Rollout>();
    for (let i = 0; i < ids.length; i += 100) {
      let keys: Record<string, unknown>[] | undefined = ids.slice(i, i + 100).map(key);
      for (let attempt = 0; keys && keys.length > 0 && attempt < MAX_ATTEMPTS; attempt++) {
        const got = await this.#doc.send(new BatchGetCommand({ RequestItems: { [this.#table]: { Keys: keys, ConsistentRead: true } } }));
        for (const it of got.Responses?.[this.#table] ?? []) found.set(it.id as string, strip(it)!);
        keys = got.UnprocessedKeys?.[this.#table]?.Keys as Record<string, unknown>[] | undefined;
        // Unprocessed keys mean throttling: asking again at once is asking to be throttled again.
        if (keys?.length) await new Promise((r) => setTimeout(r, backoffMs(attempt)));
      }
    }
    return ids.map((id) => found.get(id)).filter((r): r is Rollout => r !== undefined);
  }
}
