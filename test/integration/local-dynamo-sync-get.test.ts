// Issue 19: dynalite's point reads are answered with LevelDB's getSync (local/level-sync-get.ts), not a
// thread-pool round trip each. Same answers as before: the item, nothing for a missing key, the newest write.
import { DeleteItemCommand, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSynchronously } from '../../local/level-sync-get.ts';
import { dynaliteLevelModule, startInProcessDynalite, type InProcessDynalite } from '../support/dynalite.ts';

const TABLE = 'sync-get';

describe('dynalite point reads', () => {
  let dynamo: InProcessDynalite;
  let client: InProcessDynalite['client'];
  let syncReads = 0;

  beforeAll(async () => {
    readSynchronously();
    // Count getSync calls (this process runs dynalite itself, as local/dynamo-server.ts does).
    const { ClassicLevel } = dynaliteLevelModule<{ ClassicLevel: { prototype: { getSync(...args: unknown[]): unknown } } }>(
      'classic-level',
    );
    const getSync = ClassicLevel.prototype.getSync;
    ClassicLevel.prototype.getSync = function (this: unknown, ...args: unknown[]) {
      syncReads++;
      return getSync.apply(this, args);
    };
    dynamo = await startInProcessDynalite('dynalite-sync-get', TABLE);
    client = dynamo.client;
  });

  afterAll(async () => {
    await dynamo?.close();
  });

  const key = (pk: string) => ({ pk: { S: pk }, sk: { S: 'x' } });

  it('reads the newest write, nothing for a missing key, nothing after a delete, all through getSync', async () => {
    const before = syncReads;
    expect((await client.send(new GetItemCommand({ TableName: TABLE, Key: key('missing') }))).Item).toBeUndefined();
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key('a'), n: { N: '1' } } }));
    await client.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: key('a'),
        UpdateExpression: 'SET n = n + :one',
        ConditionExpression: 'n = :one',
        ExpressionAttributeValues: { ':one': { N: '1' } },
      }),
    );
    expect((await client.send(new GetItemCommand({ TableName: TABLE, Key: key('a'), ConsistentRead: true }))).Item?.n).toEqual({ N: '2' });
    // The conditional update read the item it checked: a second one with the old value fails.
    await expect(
      client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: key('a'),
          UpdateExpression: 'SET n = :one',
          ConditionExpression: 'n = :one',
          ExpressionAttributeValues: { ':one': { N: '1' } },
        }),
      ),
    ).rejects.toMatchObject({ name: 'ConditionalCheckFailedException' });
    await client.send(new DeleteItemCommand({ TableName: TABLE, Key: key('a') }));
    expect((await client.send(new GetItemCommand({ TableName: TABLE, Key: key('a') }))).Item).toBeUndefined();
    // Each request reads the table's description and the item at least.
    expect(syncReads - before).toBeGreaterThanOrEqual(12);
  });
});
