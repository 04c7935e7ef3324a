// The buffer between the webhook and ingest: SQS with a dead-letter queue, both encrypted and TLS-only.
import { Duration } from 'aws-cdk-lib';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { removalPolicyOf, type StageConfig } from '../config.ts';

/** A message is tried this many times before it is parked in the DLQ. */
export { MAX_RECEIVES as MAX_RECEIVE_COUNT } from '../../lambdas/handlers/ingest-batch.ts';
import { MAX_RECEIVES as MAX_RECEIVE_COUNT } from '../../lambdas/handlers/ingest-batch.ts';
import { MAX_MESSAGE_BYTES } from '../../lambdas/adapters/sqs-queue.ts';

/** How long the DLQ keeps a message: an operator has this long to redrive it. */
export const DLQ_RETENTION = Duration.days(14);

export const QUEUE_RETENTION = Duration.days(4);
/**
 * Set, not left to the service default (which AWS has changed): the API refuses an event larger than
 * this with 413 before queuing anything, and the DLQ must take whatever the queue moves into it.
 */
export { MAX_MESSAGE_BYTES };
export const VISIBILITY_TIMEOUTS_PER_INVOCATION = 3;

export class IngestQueue extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  /**
   * How long the ingest function's idempotency records live: past the DLQ's retention plus the
   * queue's, so a redriven event that was applied before is still known and not applied twice.
   */
  readonly idempotencyTtl: Duration;

  constructor(scope: Construct, id: string, props: { consumerTimeout: Duration; config?: StageConfig }) {
    super(scope, id);
    // Events not yet processed (or parked for a redrive) are state: they go with the stage's tables.
    const removalPolicy = props.config ? removalPolicyOf(props.config) : undefined;
    this.deadLetterQueue = new Queue(this, 'IngestDLQ', {
      removalPolicy,
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: DLQ_RETENTION,
      maxMessageSizeBytes: MAX_MESSAGE_BYTES,
    });
    this.idempotencyTtl = Duration.days(DLQ_RETENTION.toDays() + QUEUE_RETENTION.toDays() + 1);
    this.queue = new Queue(this, 'IngestQueue', {
      removalPolicy,
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // The visibility timeout is the retry delay of a failed event (reportBatchItemFailures): with
      // AWS's 6x the function timeout it was 180 s, 60 % of a default 300 s notice. 3x is enough
      // here: the event source's maximum concurrency is never above the function's reserved
      // concurrency (cdk/config.ts), so Lambda does not throttle the batches it holds, which is
      // what the 6x guidance leaves room for; and 3x still outlasts an invocation and its retry.
      visibilityTimeout: Duration.seconds(props.consumerTimeout.toSeconds() * VISIBILITY_TIMEOUTS_PER_INVOCATION),
      retentionPeriod: QUEUE_RETENTION,
      maxMessageSizeBytes: MAX_MESSAGE_BYTES,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
    });
  }
}
