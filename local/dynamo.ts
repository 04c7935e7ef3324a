// dynalite (DynamoDB on LevelDB) under DATA_DIR on 127.0.0.1, with the table the handlers use.
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient, ResourceInUseException } from '@aws-sdk/client-dynamodb';

const require = createRequire(import.meta.url);
const dynalite = require('dynalite') as (o: { path?: string; createTableMs?: number; deleteTableMs?: number; updateTableMs?: number }) => Server;

export const TABLE_NAME = 'xpu-reboot-coordinator';

export interface LocalDynamo {
  url: string;
  client: DynamoDBClient;
  table: string;
  close(): Promise<void>;
}

export function dynamoClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 5 });
}

/** The same key schema as the CDK table: pk/sk plus gsi1 (gsi1pk/gsi1sk). */
export async function ensureTable(client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
          { AttributeName: 'gsi1pk', AttributeType: 'S' },
          { AttributeName: 'gsi1sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: [
          {
            IndexName: 'gsi1',
            KeySchema: [
              { AttributeName: 'gsi1pk', KeyType: 'HASH' },
              { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
      }),
    );
  } catch (err) {
    if (!(err instanceof ResourceInUseException) && (err as Error).name !== 'ResourceInUseException') throw err;
  }
  for (let i = 0; i < 100; i++) {
    const d = await client.send(new DescribeTableCommand({ TableName: table }));
    if (d.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`table ${table} did not become ACTIVE`);
}

export async function startLocalDynamo(opts: { dataDir?: string; port?: number; host?: string; table?: string }): Promise<LocalDynamo> {
  if (opts.dataDir) mkdirSync(opts.dataDir, { recursive: true });
  const server = dynalite({ path: opts.dataDir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  const client = dynamoClient(url);
  const table = opts.table ?? TABLE_NAME;
  await ensureTable(client, table);
  return {
    url,
    client,
    table,
    async close() {
      client.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      // dynalite keeps its LevelDB open on the server object; close it so the LOCK is released.
      const db = (server as unknown as { db?: { close?: (cb: () => void) => void } }).db;
      if (db?.close) await new Promise<void>((r) => db.close!(() => r()));
    },
  };
}
