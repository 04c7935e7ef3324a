// Issue 19: dynalite's point reads are answered with LevelDB's getSync (local/level-sync-get.ts), not a
// thread-pool round trip each. Same answers as before: the item, nothing for a missing key, the newest write.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { DeleteItemCommand, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSynchronously } from '../../local/level-sync-get.ts';
import { dynamoClient, ensureTable } from '../../local/dynamo.ts';
import { tempDir } from '../support/stack.ts';

const require = createRequire(import.meta.url);
const TABLE = 'sync-get';

describe('dynalite point reads', () => {
  let server: Server;
  let client: ReturnType<typeof dynamoClient>;
  let syncReads = 0;

  beforeAll(async () => {
    readSynchronously();
    // Count getSync calls (this process runs dynalite itself, as local/dynamo-server.ts does).
    const level = require.resolve('level', { paths: [dirname(require.resolve('dynalite'))] });
    const { ClassicLevel } = require(require.resolve('classic-level', { paths: [dirname(level)] }));
    const getSync = ClassicLevel.prototype.getSync;
    ClassicLevel.prototype.getSync = function (this: unknown, ...args: unknown[]) {
      syncReads++;
      return getSync.apply(this, args);
    };
    const dynalite = require('dynalite') as (o: object) => Server;
    server = dynalite({ path: join(tempDir('dynalite-sync-get'), 'db'), createTableMs: 0 });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    client = dynamoClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    await ensureTable(client, TABLE);
  });

  afterAll(async () => {
    client?.destroy();
    await new Promise<void>((r) => server.close(() => r()));
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
