// Issue 19: dynalite closes the LevelDB iterator of every Query once it has read what it needs. Before
// local/level-iterators.ts each one stayed open until the database closed, pinning memtables and deleted
// table files (the local stack's memory grew with every Query).
import { PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeIteratorsOnReturn } from '../../local/level-iterators.ts';
import { dynaliteLevelModule, startInProcessDynalite, type InProcessDynalite } from '../support/dynalite.ts';

const TABLE = 'iterators';

describe('dynalite Query iterators', () => {
  let dynamo: InProcessDynalite;
  let client: InProcessDynalite['client'];
  let closes = 0;

  beforeAll(async () => {
    closeIteratorsOnReturn();
    // Count iterator closes as they happen (this process runs dynalite itself, as local/dynamo-server.ts does).
    const abstractLevel = dynaliteLevelModule('abstract-level');
    for (const name of ['AbstractIterator', 'AbstractKeyIterator', 'AbstractValueIterator']) {
      const proto = abstractLevel[name].prototype;
      const close = proto.close as (...args: unknown[]) => unknown;
      proto.close = function (this: unknown, ...args: unknown[]) {
        closes++;
        return close.apply(this, args);
      };
    }
    dynamo = await startInProcessDynalite('dynalite-iterators', TABLE);
    client = dynamo.client;
  });

  afterAll(async () => {
    await dynamo?.close();
  });

  it('closes each Query iterator when the Query is answered, not when the database closes', async () => {
    for (let i = 0; i < 5; i++) {
      await client.send(new PutItemCommand({ TableName: TABLE, Item: { pk: { S: 'node#1' }, sk: { S: `cmd#${i}` } } }));
    }
    const before = closes;
    const queries = 20;
    for (let i = 0; i < queries; i++) {
      // Limit 2 of 5: the stream is abandoned part-way, as an open-commands read with a page size is.
      const out = await client.send(
        new QueryCommand({
          TableName: TABLE,
          KeyConditionExpression: 'pk = :p',
          ExpressionAttributeValues: { ':p': { S: 'node#1' } },
          Limit: i % 2 === 0 ? 2 : undefined,
        }),
      );
      expect(out.Items?.length).toBe(i % 2 === 0 ? 2 : 5);
    }
    // Closing is asynchronous (after the answer is sent): wait for it rather than for a time.
    for (let i = 0; i < 100 && closes - before < queries; i++) await new Promise((r) => setTimeout(r, 20));
    expect(closes - before).toBeGreaterThanOrEqual(queries);
  });
});
