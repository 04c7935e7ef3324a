// The AWS composition root: config from the environment (parsed once), SDK clients, Powertools.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SQSClient } from '@aws-sdk/client-sqs';
import { Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';
import { Metrics as PowertoolsMetrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { InventoryIndex } from '../core/inventory.ts';
import { CachedInventory, DynamoInventory } from '../adapters/dynamo-inventory.ts';
import { DynamoRebootStore } from '../adapters/dynamo-store.ts';
import { SqsEventQueue } from '../adapters/sqs-queue.ts';
import { DynamoIngestFailureLog, SqsDeadLetterQueue } from '../adapters/sqs-dlq.ts';
import { SfnWorkflows } from '../adapters/sfn-workflows.ts';
import { DynamoDownMarks } from '../adapters/dynamo-down-marks.ts';
import { DynamoRolloutStore } from '../adapters/dynamo-rollouts.ts';
import { PollingCommandSignal } from '../adapters/polling-signal.ts';
import { withIotWakeups } from '../adapters/iot-wake.ts';
import type { Deps, Logger } from '../handlers/deps.ts';
import { workflowArnsFrom } from '../core/workflow-io.ts';
import { LambdaEnv } from './config.ts';
import { systemClock, type EventQueue, type InventoryHint, type Metrics, type Workflows } from '../ports/index.ts';

export const env = Object.freeze(LambdaEnv.parse(process.env));

export const powertoolsLogger = new PowertoolsLogger();
export const powertoolsMetrics = new PowertoolsMetrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'XpuRebootCoordinator' });

export { InventoryMissing } from '../adapters/dynamo-inventory.ts';

const logger: Logger = {
  info: (m, e) => powertoolsLogger.info(m, e ?? {}),
  warn: (m, e) => powertoolsLogger.warn(m, e ?? {}),
  error: (m, e) => powertoolsLogger.error(m, e ?? {}),
};

const metrics: Metrics = {
  count(name, value = 1, dimensions) {
    const single = dimensions ? powertoolsMetrics.singleMetric() : powertoolsMetrics;
    for (const [k, v] of Object.entries(dimensions ?? {})) single.addDimension(k, v);
    single.addMetric(name, MetricUnit.Count, value);
  },
};

const ddb = new DynamoDBClient({});
export const store = new DynamoRebootStore(ddb, env.TABLE_NAME, { retentionDays: env.REBOOT_RETENTION_DAYS });

/** One item per node and per token hash (adapters/dynamo-inventory.ts), each cached INVENTORY_TTL_SECONDS. */
export const storedInventory = new CachedInventory(new DynamoInventory(ddb, env.TABLE_NAME), env.INVENTORY_TTL_SECONDS * 1000);
const inventory = (hint?: InventoryHint): Promise<InventoryIndex> => storedInventory.index(hint);

const notConfigured = (what: string) => () => {
  throw new Error(`${what} is not configured for this function`);
};

const sqs = new SQSClient({});
const queue: EventQueue = env.QUEUE_URL ? new SqsEventQueue(sqs, env.QUEUE_URL) : { send: notConfigured('QUEUE_URL') };

/** Why the ingest path failed on a message, for the DLQ listing (processBatch writes it via withFailureLog). */
export const ingestFailures = new DynamoIngestFailureLog(ddb, env.TABLE_NAME);
export const deadLetters =
  env.DLQ_URL && env.QUEUE_URL
    ? new SqsDeadLetterQueue(sqs, { dlqUrl: env.DLQ_URL, queueUrl: env.QUEUE_URL, failures: ingestFailures })
    : undefined;

const workflows: Workflows = new SfnWorkflows(new SFNClient({}), workflowArnsFrom(env));

/** With IOT_DATA_ENDPOINT (the push channel), every command notification is also an MQTT wake-up. */
const iotSignal = env.IOT_DATA_ENDPOINT
  ? withIotWakeups(new PollingCommandSignal(), {
      endpoint: env.IOT_DATA_ENDPOINT,
      region: process.env.AWS_REGION ?? 'us-east-1',
      credentials: () => ({
        accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? '',
        secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? '',
        sessionToken: process.env.AWS_SESSION_TOKEN,
      }),
      onError: (agent, err) => powertoolsLogger.warn('wake-up not published', { agent, error: String(err) }),
      // The agent fetches from gsi1 (eventually consistent): wake it once its commands show there.
      visible: async (agent, ids) => {
        const open = new Set((await store.openCommands(agent)).map((c) => c.id));
        return ids.every((id) => open.has(id));
      },
    })
  : undefined;
const signal = iotSignal ?? new PollingCommandSignal();
/** Entries await this before returning: publishes still in flight would freeze with the container. */
export const flushWakeups = async (): Promise<void> => iotSignal?.flush();

export const deps: Deps = {
  store,
  workflows,
  queue,
  clock: systemClock,
  inventory,
  signal,
  metrics,
  logger,
  rollouts: new DynamoRolloutStore(ddb, env.TABLE_NAME),
  downMarks: new DynamoDownMarks(ddb, env.TABLE_NAME),
};
