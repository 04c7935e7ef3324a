// Issue 19: dynalite writes an item and its index entries in one LevelDB batch (local/level-batched-writes.ts)
// instead of two or three round trips in a row. The index must answer exactly as before: an entry per item
// whose index keys are set, moved when a key changes, refreshed when a projected attribute changes, gone
// with the item or its key; and a write is one batch, so nothing is ever half written.
import { DeleteItemCommand, PutItemCommand, QueryCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchIndexWrites } from '../../local/level-batched-writes.ts';
import { dynaliteLevelModule, startInProcessDynalite, type InProcessDynalite } from '../support/dynalite.ts';

const TABLE = 'batched-writes';

type Level = { prototype: Record<string, (...args: unknown[]) => unknown> };

describe('dynalite item and index writes', () => {
  let dynamo: InProcessDynalite;
  let client: InProcessDynalite['client'];
  /** Every LevelDB write, as it reaches abstract-level: one entry per put, del or batch. */
  const writes: Array<{ kind: string; keys: string[] }> = [];

  beforeAll(async () => {
    // Count what reaches LevelDB below the patch, installed first (the patch keeps the methods it finds).
    // This process runs dynalite itself, as local/dynamo-server.ts does.
    const { AbstractLevel } = dynaliteLevelModule<{ AbstractLevel: Level }>('abstract-level');
    for (const kind of ['put', 'del', 'batch'] as const) {
      const original = AbstractLevel.prototype[kind];
      AbstractLevel.prototype[kind] = function (this: unknown, ...args: unknown[]) {
        const keys = kind === 'batch' ? (args[0] as Array<{ key: string }>).map((o) => String(o.key)) : [String(args[0])];
        writes.push({ kind, keys });
        return original.apply(this, args);
      };
    }
    batchIndexWrites();
    dynamo = await startInProcessDynalite('dynalite-batched-writes', TABLE);
    client = dynamo.client;
  });

  afterAll(async () => {
    await dynamo?.close();
  });

  const key = (pk: string) => ({ pk: { S: pk }, sk: { S: 'x' } });
  const onGsi1 = async (pk: string) =>
    (
      await client.send(
        new QueryCommand({
          TableName: TABLE,
          IndexName: 'gsi1',
          KeyConditionExpression: 'gsi1pk = :p',
          ExpressionAttributeValues: { ':p': { S: pk } },
        }),
      )
    ).Items ?? [];
  /** The writes one request made (from `since`): kinds and how many keys each carried. */
  const madeSince = (since: number) => writes.slice(since).map((w) => `${w.kind}:${w.keys.length}`);

  it('puts an item and its index entry in one batch, and the index answers with it', async () => {
    const since = writes.length;
    await client.send(
      new PutItemCommand({ TableName: TABLE, Item: { ...key('a'), gsi1pk: { S: 'g1' }, gsi1sk: { S: '1' }, n: { N: '1' } } }),
    );
    expect(madeSince(since)).toEqual(['batch:2']);
    expect((await onGsi1('g1')).map((i) => i.pk.S)).toEqual(['a']);
  });

  it('moves the entry when the index key changes: old deleted, new put, item written, one batch', async () => {
    const since = writes.length;
    await client.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: key('a'),
        UpdateExpression: 'SET gsi1pk = :g',
        ExpressionAttributeValues: { ':g': { S: 'g2' } },
      }),
    );
    expect(madeSince(since)).toEqual(['batch:3']);
    expect(await onGsi1('g1')).toEqual([]);
    expect((await onGsi1('g2')).map((i) => i.pk.S)).toEqual(['a']);
  });

  it('drops the entry when an index key is removed, and writes a plain item with no index keys alone', async () => {
    await client.send(new UpdateItemCommand({ TableName: TABLE, Key: key('a'), UpdateExpression: 'REMOVE gsi1sk' }));
    expect(await onGsi1('g2')).toEqual([]);
    const since = writes.length;
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key('plain'), n: { N: '1' } } }));
    expect(madeSince(since)).toEqual(['put:1']);
  });

  it('deletes the item and its entry in one batch', async () => {
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key('b'), gsi1pk: { S: 'g3' }, gsi1sk: { S: '1' } } }));
    expect((await onGsi1('g3')).map((i) => i.pk.S)).toEqual(['b']);
    const since = writes.length;
    await client.send(new DeleteItemCommand({ TableName: TABLE, Key: key('b') }));
    expect(madeSince(since)).toEqual(['batch:2']);
    expect(await onGsi1('g3')).toEqual([]);
  });

  it('many writes at once leave exactly one entry per item, on its last index key', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `m${i}`);
    await Promise.all(
      ids.map((id) =>
        client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key(id), gsi1pk: { S: 'many' }, gsi1sk: { S: id } } })),
      ),
    );
    // Half of them move to another partition of the index, all side by side.
    await Promise.all(
      ids
        .filter((_, i) => i % 2 === 0)
        .map((id) =>
          client.send(
            new UpdateItemCommand({
              TableName: TABLE,
              Key: key(id),
              UpdateExpression: 'SET gsi1pk = :g',
              ExpressionAttributeValues: { ':g': { S: 'moved' } },
            }),
          ),
        ),
    );
    const many = (await onGsi1('many')).map((i) => i.pk.S).sort();
    const moved = (await onGsi1('moved')).map((i) => i.pk.S).sort();
    expect(many).toEqual(ids.filter((_, i) => i % 2 === 1).sort());
    expect(moved).toEqual(ids.filter((_, i) => i % 2 === 0).sort());
  });
});
