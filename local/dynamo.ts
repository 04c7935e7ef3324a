import { CreateTableCommand, DescribeTableCommand, DynamoDBClient, ResourceInUseException } from '@aws-sdk/client-dynamodb';
import { GSI1_ATTRIBUTES, GSI2_ATTRIBUTES, GSI3_ATTRIBUTES } from '../lambdas/adapters/table-schema.ts';
import type { ServiceProcess, Supervision } from './service-process.ts';
import { spawnDynalite } from './prestart.ts';
import { leanLocalClient, localClientConfig } from './sdk-clients.ts';

export const TABLE_NAME = 'xpu-reboot-coordinator';

export interface LocalDynamo {
  url: string;
  client: DynamoDBClient;
  table: string;
  /** The dynalite process (its own core; memory counted with the stack's). */
  pid: number;
  close(): Promise<void>;
}

export function dynamoClient(endpoint: string): DynamoDBClient {
  return leanLocalClient(new DynamoDBClient({ ...localClientConfig(endpoint), maxAttempts: 5 }));
}

/** The same key schema as the CDK table: pk/sk plus gsi1 (gsi1pk/gsi1sk, GSI1_ATTRIBUTES projected). */
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
          { AttributeName: 'gsi2pk', AttributeType: 'S' },
          { AttributeName: 'gsi2sk', AttributeType: 'S' },
          { AttributeName: 'gsi3pk', AttributeType: 'S' },
          { AttributeName: 'gsi3sk', AttributeType: 'S' },
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
            Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...GSI1_ATTRIBUTES] },
          },
          {
            IndexName: 'gsi2',
            KeySchema: [
              { AttributeName: 'gsi2pk', KeyType: 'HASH' },
              { AttributeName: 'gsi2sk', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...GSI2_ATTRIBUTES] },
          },
          {
            // Sparse: the reboots not ended (the reconciler). A table from before it works without (slower reconciler).
            IndexName: 'gsi3',
            KeySchema: [
              { AttributeName: 'gsi3pk', KeyType: 'HASH' },
              { AttributeName: 'gsi3sk', KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...GSI3_ATTRIBUTES] },
          },
        ],
      }),
    );
  } catch (err) {
    if (!(err instanceof ResourceInUseException) && (err as Error).name !== 'ResourceInUseException') throw err;
  }
  for (let i = 0; i < 100; i++) {
    const d = await client.send(new DescribeTableCommand({ TableName: table }));
    if (d.Table?.TableStatus === 'ACTIVE') {
      // dynalite cannot add an index to a table: a DATA_DIR from before gsi2 must be started afresh.
      if (!d.Table.GlobalSecondaryIndexes?.some((g) => g.IndexName === 'gsi2'))
        throw new Error(`table ${table} predates the node index gsi2 (release 2): move DATA_DIR/dynamodb away and start again`);
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`table ${table} did not become ACTIVE`);
}

export async function startLocalDynamo(opts: {
  dataDir?: string;
  table?: string;
  supervise?: Omit<Supervision, 'name'>;
  port?: number;
  /** The child already spawned by prestart() (npm start); else it is spawned here. */
  service?: Promise<ServiceProcess>;
}): Promise<LocalDynamo> {
  const service = await (opts.service ?? spawnDynalite(opts.dataDir, opts.supervise, opts.port));
  const url = `http://127.0.0.1:${service.port}`;
  const client = dynamoClient(url);
  const table = opts.table ?? TABLE_NAME;
  await ensureTable(client, table);
  return {
    url,
    client,
    table,
    get pid() {
      return service.pid;
    },
    async close() {
      client.destroy();
      await service.stop();
    },
  };
}
