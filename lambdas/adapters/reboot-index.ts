// Where reboot items are indexed, so no partition carries the fleet: listings through day shards (gsi1),
// a node's reboots through a node-keyed index (gsi2), and ended reboots expire (TTL) after a retention.
import { createHash } from 'node:crypto';
import { type DynamoDBDocumentClient, PutCommand, QueryCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { isEnded, type StoredReboot } from '../core/reboot.ts';
import type { RebootKind, RebootStatus } from '../core/types.ts';
import type { ActiveReboot, ListQuery } from '../ports/index.ts';
import { queryAll } from './query-partition.ts';

/**
 * Reboots of one day spread over this many gsi1 partitions. A partition takes 1,000 writes/s;
 * every change of a reboot rewrites its index entry, so a burst of reboots notified in one
 * second is spread over the shards rather than queued on one.
 */
export const DAY_SHARDS = 8;
/** Ended reboots stay this long (the daily reports in S3 keep the record after that). */
export const DEFAULT_RETENTION_DAYS = 90;
const DAYS_PK = 'REBOOTDAYS';
/**
 * A day's item outlives the retention by this much: a reboot notified that day ends within hours
 * (its workflow's timeouts) and expires `retentionDays` after its end. Without a ttl the days of
 * every year since the deployment were listed, 8 Queries each, on every listing and reconciler run.
 */
const DAY_SLACK_DAYS = 30;

export const dayOf = (iso: string) => iso.slice(0, 10);
const shardOf = (id: string) => createHash('sha256').update(id).digest()[0] % DAY_SHARDS;
export const dayShardPk = (day: string, shard: number) => `REBOOTS#${day}#${shard}`;
/** The sparse index of reboots not ended (table-schema.ts gsi3), spread like a day's listing. */
export const activeShardPk = (shard: number) => `ACTIVE#${shard}`;

/** The index attributes of a reboot item: day shard, node, and the expiry once it ended. */
export function rebootIndexAttributes(r: StoredReboot, retentionDays = DEFAULT_RETENTION_DAYS) {
  const sk = `${r.notifiedAt}#${r.id}`;
  const ended = r.endedAt ? Date.parse(r.endedAt) : NaN;
  return {
    gsi1pk: dayShardPk(dayOf(r.notifiedAt), shardOf(r.id)),
    gsi1sk: sk,
    gsi2pk: `NODE#${r.node}`,
    gsi2sk: sk,
    // Sparse: an ended reboot's item is written without them, and so leaves the index.
    ...(r.endedAt || isEnded(r.status) ? {} : { gsi3pk: activeShardPk(shardOf(r.id)), gsi3sk: `${r.notifiedAt}#${r.kind}#${r.id}` }),
    ...(Number.isFinite(ended) ? { ttl: Math.floor(ended / 1000) + retentionDays * 86400 } : {}),
  };
}

interface Cursor {
  /** The day being listed, and the last index key handed out on it. */
  d?: string;
  k: string;
}

function encode(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

function decode(cursor: string | undefined): Cursor | undefined {
  if (!cursor) return undefined;
  try {
    const c = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (c && typeof c === 'object' && typeof c.k === 'string' && (c.d === undefined || typeof c.d === 'string')) return c;
  } catch {
    /* fall through */
  }
  throw Object.assign(new Error('cursor is not one this API returned'), { name: 'BadCursor' });
}

export class RebootIndex {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;
  /** Days this container recorded already: one write per day and container, not per reboot. */
  readonly #daysKnown = new Set<string>();
  readonly #retentionDays: number;

  constructor(doc: DynamoDBDocumentClient, table: string, retentionDays = DEFAULT_RETENTION_DAYS) {
    this.#doc = doc;
    this.#table = table;
    this.#retentionDays = retentionDays;
  }

  /** Notes that `day` has reboots, so listings know which day partitions to read. */
  async recordDay(iso: string): Promise<void> {
    const day = dayOf(iso);
    if (this.#daysKnown.has(day)) return;
    const ttl = Math.floor(Date.parse(`${day}T00:00:00.000Z`) / 1000) + (1 + this.#retentionDays + DAY_SLACK_DAYS) * 86400;
    await this.#doc.send(
      new PutCommand({ TableName: this.#table, Item: { pk: DAYS_PK, sk: day, ...(Number.isFinite(ttl) ? { ttl } : {}) } }),
    );
    this.#daysKnown.add(day);
  }

  /** Days with reboots, newest first (from `before` inclusive, when given). */
  async #days(before?: string): Promise<string[]> {
    const items = await queryAll(this.#doc, {
      TableName: this.#table,
      KeyConditionExpression: before ? 'pk = :p AND sk <= :d' : 'pk = :p',
      ExpressionAttributeValues: { ':p': DAYS_PK, ...(before ? { ':d': before } : {}) },
      ScanIndexForward: false,
    });
    return items.map((it) => it.sk as string);
  }

  /** Up to `limit` index entries of one partition, newest first, older than `below` when given. */
  async #query(index: 'gsi1' | 'gsi2', pk: string, limit: number, below: string | undefined, status: string | undefined) {
    const out: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    const name = index === 'gsi1' ? 'gsi1' : 'gsi2';
    do {
      const input: QueryCommandInput = {
        TableName: this.#table,
        IndexName: name,
        KeyConditionExpression: below ? `${name}pk = :p AND ${name}sk < :b` : `${name}pk = :p`,
        ExpressionAttributeValues: { ':p': pk, ...(below ? { ':b': below } : {}), ...(status ? { ':s': status } : {}) },
        ScanIndexForward: false,
        Limit: limit - out.length,
        ExclusiveStartKey: start,
      };
      // A filter applies after Limit, so keep reading until the page is full or the partition ends.
      if (status) Object.assign(input, { FilterExpression: '#st = :s', ExpressionAttributeNames: { '#st': 'status' } });
      const res = await this.#doc.send(new QueryCommand(input));
      out.push(...(res.Items ?? []));
      start = res.LastEvaluatedKey;
    } while (start && out.length < limit);
    return out.map((it) => ({ id: it.id as string, sk: it[`${name}sk`] as string }));
  }

  /**
   * Every reboot not ended, from the sparse gsi3 (eventually consistent: one ended a moment ago may
   * still show, with its last status). Null when the table has no gsi3 (a local table from before it).
   */
  async active(): Promise<ActiveReboot[] | null> {
    try {
      const shards = await Promise.all(
        [...Array(DAY_SHARDS).keys()].map(async (s) => {
          const items = await queryAll(this.#doc, {
            TableName: this.#table,
            IndexName: 'gsi3',
            KeyConditionExpression: 'gsi3pk = :p',
            ExpressionAttributeValues: { ':p': activeShardPk(s) },
          });
          return items.map((it): ActiveReboot => {
            const kind = String(it.gsi3sk).split('#')[1] as RebootKind;
            return { id: it.id as string, kind, status: it.status as RebootStatus };
          });
        }),
      );
      return shards.flat();
    } catch (err) {
      if ((err as Error).name === 'ValidationException' && /index/i.test((err as Error).message)) return null;
      throw err;
    }
  }

  /** Ids of a listing page, newest first, and the cursor of the next page (null at the end). */
  async list(q: ListQuery): Promise<{ ids: string[]; next: string | null }> {
    const cursor = decode(q.cursor);
    if (q.node) {
      const found = await this.#query('gsi2', `NODE#${q.node}`, q.limit + 1, cursor?.k, q.status);
      const page = found.slice(0, q.limit);
      return { ids: page.map((e) => e.id), next: found.length > q.limit ? encode({ k: page[page.length - 1].sk }) : null };
    }
    const ids: string[] = [];
    let last: { d: string; k: string } | undefined;
    let more = false;
    for (const day of await this.#days(cursor?.d)) {
      const below = cursor && day === cursor.d ? cursor.k : undefined;
      const want = q.limit - ids.length + 1;
      const shards = await Promise.all(
        [...Array(DAY_SHARDS).keys()].map((s) => this.#query('gsi1', dayShardPk(day, s), want, below, q.status)),
      );
      const merged = shards.flat().sort((a, b) => (a.sk < b.sk ? 1 : a.sk > b.sk ? -1 : 0));
      for (const e of merged) {
        if (ids.length === q.limit) {
          more = true;
          break;
        }
        ids.push(e.id);
        last = { d: day, k: e.sk };
      }
      if (more) break;
    }
    return { ids, next: more && last ? encode(last) : null };
  }

  /** Ids of the reboots notified in [from, to), oldest first. */
  async between(from: Date, to: Date): Promise<string[]> {
    const [a, b] = [from.toISOString(), to.toISOString()];
    const days = (await this.#days(dayOf(b))).filter((d) => d >= dayOf(a)).reverse();
    const ids: string[] = [];
    for (const day of days) {
      const shards = await Promise.all(
        [...Array(DAY_SHARDS).keys()].map(async (s) => {
          const out: Array<{ id: string; sk: string }> = [];
          let start: Record<string, unknown> | undefined;
          do {
            const res = await this.#doc.send(
              new QueryCommand({
                TableName: this.#table,
                IndexName: 'gsi1',
                KeyConditionExpression: 'gsi1pk = :p AND gsi1sk BETWEEN :a AND :b',
                ExpressionAttributeValues: { ':p': dayShardPk(day, s), ':a': a, ':b': b },
                ExclusiveStartKey: start,
              }),
            );
            out.push(...(res.Items ?? []).map((it) => ({ id: it.id as string, sk: it.gsi1sk as string })));
            start = res.LastEvaluatedKey;
          } while (start);
          return out;
        }),
      );
      ids.push(
        ...shards
          .flat()
          .filter((e) => e.sk < b)
          .sort((x, y) => (x.sk < y.sk ? -1 : 1))
          .map((e) => e.id),
      );
    }
    return ids;
  }
}
