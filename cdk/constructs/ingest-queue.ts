// The buffer between the webhook and ingest: SQS with a dead-letter queue, both encrypted and TLS-only.
import { Duration } from 'aws-cdk-lib';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** A message is tried this many times before it is parked in the DLQ. */
export { MAX_RECEIVES as MAX_RECEIVE_COUNT } from '../../lambdas/handlers/ingest-batch.ts';
import { MAX_RECEIVES as MAX_RECEIVE_COUNT } from '../../lambdas/handlers/ingest-batch.ts';

export class IngestQueue extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: { consumerTimeout: Duration }) {
    super(scope, id);
    this.deadLetterQueue = new Queue(this, 'IngestDLQ', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new Queue(this, 'IngestQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // AWS's guidance for Lambda event sources: at least 6x the function timeout, so retries of a
      // throttled batch do not make the message visible again while it is still being processed.
      visibilityTimeout: Duration.seconds(props.consumerTimeout.toSeconds() * 6),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
    });
  }
}
