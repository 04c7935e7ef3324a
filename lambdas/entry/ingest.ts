// Lambda entry: the ingest queue's consumer (partial batch failures, idempotent per event key).
import type { Context, SQSEvent, SQSBatchResponse } from 'aws-lambda';
import { makeIdempotent, IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { createIngestHandler } from '../handlers/ingest.ts';
import { processBatch, withFailureLog } from '../handlers/ingest-batch.ts';
import type { NativeEvent } from '../core/types.ts';
import { deps, env, ingestFailures, powertoolsMetrics, flushWakeups } from './runtime.ts';

const ingest = createIngestHandler(deps);
// Longer than an event can sit in the queue and the DLQ (CDK sets it: ingest-queue.ts), so a redrive never applies an event twice.
const idempotency = new IdempotencyConfig({
  eventKeyJmesPath: 'dedupKey',
  expiresAfterSeconds: env.IDEMPOTENCY_TTL_SECONDS,
});
const apply = env.IDEMPOTENCY_TABLE_NAME
  ? makeIdempotent((ev: NativeEvent) => ingest(ev), {
      persistenceStore: new DynamoDBPersistenceLayer({ tableName: env.IDEMPOTENCY_TABLE_NAME }),
      config: idempotency,
    })
  : ingest;

export const handler = async (event: SQSEvent, context?: Context): Promise<SQSBatchResponse> => {
  // An in-progress record expires with the invocation, so a crashed attempt does not block retries.
  if (context) idempotency.registerLambdaContext(context);
  try {
    const failures = await processBatch(
      event.Records.map((r) => ({ id: r.messageId, body: r.body, receiveCount: Number(r.attributes.ApproximateReceiveCount ?? 1) })),
      withFailureLog((ev) => apply(ev), ingestFailures),
      deps.logger,
    );
    if (failures.length) deps.metrics.count('IngestErrors', failures.length);
    return { batchItemFailures: failures.map((f) => ({ itemIdentifier: f.id })) };
  } finally {
    await flushWakeups();
    powertoolsMetrics.publishStoredMetrics();
  }
};
