// Micro-benchmark of a dynalite write to the stack's table with an index entry (local/level-batched-writes.ts):
// sequential conditional PutItem, then an UpdateItem that moves the item's gsi1 key, as a command's life does.
//   node bench/dynalite-write-micro.ts on|off   (on: item and index entries in one LevelDB batch)
// dynalite and its client share this process, so `cpu ms` is both; the p50s skip the first 200 (warm-up).
import { createRequire } from 'node:module';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { dynamoClient, ensureTable } from '../local/dynamo.ts';
import { batchIndexWrites } from '../local/level-batched-writes.ts';
import { closeIteratorsOnReturn } from '../local/level-iterators.ts';
import { readSynchronously } from '../local/level-sync-get.ts';
const require = createRequire(import.meta.url);
closeIteratorsOnReturn();
readSynchronously();
if (process.argv[2] === 'on') batchIndexWrites();
const dynalite = require('dynalite') as (o: object) => Server;
const server = dynalite({ path: join(mkdtempSync(join(tmpdir(), 'dm-')), 'db'), createTableMs: 0 });
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
const client = dynamoClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
await ensureTable(client, 'tbl');
const N = 1500;
const put: number[] = [];
const upd: number[] = [];
for (let i = 0; i < N; i++) {
  let t = performance.now();
  await client.send(
    new PutItemCommand({
      TableName: 'tbl',
      Item: {
        pk: { S: 'p' + i },
        sk: { S: 's' },
        gsi1pk: { S: 'agent' + (i % 10) },
        gsi1sk: { S: 'pending#' + i },
        status: { S: 'pending' },
        body: { S: 'x'.repeat(400) },
      },
      ConditionExpression: 'attribute_not_exists(pk)',
    }),
  );
  put.push(performance.now() - t);
  t = performance.now();
  await client.send(
    new UpdateItemCommand({
      TableName: 'tbl',
      Key: { pk: { S: 'p' + i }, sk: { S: 's' } },
      UpdateExpression: 'SET gsi1sk = :d, #s = :s',
      ExpressionAttributeNames: { '#s': 'status' },
      ExpressionAttributeValues: { ':d': { S: 'done#' + i }, ':s': { S: 'succeeded' } },
    }),
  );
  upd.push(performance.now() - t);
}
const med = (a: number[]) =>
  a
    .slice(200)
    .sort((x, y) => x - y)
    [Math.floor((a.length - 200) / 2)].toFixed(3);
console.log(
  process.argv[2],
  'put p50 ms',
  med(put),
  'update(index key moves) p50 ms',
  med(upd),
  'cpu ms',
  ((process.cpuUsage().user + process.cpuUsage().system) / 1000).toFixed(0),
);
client.destroy();
server.close();
process.exit(0);
