import { CreateQueueCommand, GetQueueAttributesCommand, SetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { MAX_RECEIVES } from '../lambdas/handlers/ingest-batch.ts';
import type { NativeEvent } from '../lambdas/core/types.ts';
import type { Logger } from '../lambdas/handlers/deps.ts';
import type { IngestFailureLog, Metrics } from '../lambdas/ports/index.ts';
import type { ServiceProcess, Supervision } from './service-process.ts';
import { spawnFauxqs } from './prestart.ts';
import { planRelease, type ReleasedMessage, type ReleasePlan } from './sqs-restart.ts';
import { CACHE_MIDDLEWARE, leanLocalClient, localClientConfig } from './sdk-clients.ts';

export interface LocalSqs {
  url: string;
  client: SQSClient;
  ingestQueueUrl: string;
  dlqUrl: string;
  /**
   * The ingest messages the previous process had in flight when it died (this start handed them out again, or
   * parks them at their next receive): see local/sqs-restart.ts.
   */
  released: ReleasePlan;
  /** The fauxqs process (changes when it is restarted). */
  readonly pid: number;
  close(): Promise<void>;
}

export const INGEST_QUEUE = 'xpu-reboot-ingest';
export const INGEST_DLQ = 'xpu-reboot-ingest-dlq';
/** Same as the AWS redrive policy: five failed receives and the event is parked in the DLQ. */
export const MAX_RECEIVE_COUNT = MAX_RECEIVES;

export function sqsClient(endpoint: string): SQSClient {
  return leanLocalClient(new SQSClient({ ...localClientConfig(endpoint), ...CACHE_MIDDLEWARE }));
}

/**
 * Creates the queue if it is missing and applies the settings either way: CreateQueue refuses a
 * queue kept from an earlier run whose attributes differ (QueueNameExists), SetQueueAttributes
 * applies a changed setting (e.g. INGEST_VISIBILITY_SECONDS) to the kept queue and its messages.
 */
export async function ensureQueue(client: SQSClient, name: string, attributes: Record<string, string>): Promise<string> {
  const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: name }));
  await client.send(new SetQueueAttributesCommand({ QueueUrl: QueueUrl!, Attributes: attributes }));
  return QueueUrl!;
}

export async function startLocalSqs(opts: {
  dataDir: string;
  visibilityTimeoutSeconds?: number;
  supervise?: Omit<Supervision, 'name' | 'restartArgs'>;
  port?: number;
  /** The child already spawned by prestart() (npm start); else it is spawned here. */
  service?: Promise<ServiceProcess>;
}): Promise<LocalSqs> {
  const service = await (opts.service ?? spawnFauxqs(opts.dataDir, opts.supervise, opts.port));
  const url = `http://127.0.0.1:${service.port}`;
  const client = sqsClient(url);
  const dlqUrl = await ensureQueue(client, INGEST_DLQ, { MessageRetentionPeriod: String(14 * 86400) });
  const dlqArn = (await client.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ['QueueArn'] }))).Attributes!
    .QueueArn!;
  await ensureQueue(client, INGEST_QUEUE, {
    VisibilityTimeout: String(opts.visibilityTimeoutSeconds ?? 30),
    MessageRetentionPeriod: String(14 * 86400),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: MAX_RECEIVE_COUNT }),
  });
  // fauxqs finds queues by name, whatever host and port a URL names; a persisted queue keeps the
  // URL of the port it was created on, so hand out URLs on this run's port.
  const queueUrl = (name: string) => `${url}/000000000000/${name}`;
  return {
    url,
    client,
    ingestQueueUrl: queueUrl(INGEST_QUEUE),
    dlqUrl: queueUrl(INGEST_DLQ),
    released: planRelease((service.hello.released as ReleasedMessage[] | undefined) ?? [], INGEST_QUEUE, MAX_RECEIVE_COUNT),
    get pid() {
      return service.pid;
    },
    async close() {
      client.destroy();
      await service.stop();
    },
  };
}

/**
 * Records why each message the dead process had in flight was handed out again (or is about to be parked), in
 * the failure log GET /v1/dlq reads: a message parked for killing the stack shows that as its reason. Best
 * effort, like processBatch's notes: a log that cannot be written changes nothing about delivery.
 */
export async function noteReleased(
  plan: ReleasePlan,
  log: IngestFailureLog,
  logger: Logger,
  metrics: Metrics,
  at = new Date().toISOString(),
): Promise<void> {
  if (plan.notes.length === 0) return;
  metrics.count('IngestReleasedAtStart', plan.notes.length);
  logger.warn('ingest: messages in flight when the previous process died are handed out again, one at a time', {
    messageIds: plan.suspects,
  });
  for (const m of plan.parked) {
    metrics.count('IngestParkedForKillingTheStack');
    logger.error('ingest: a message the coordinator died processing on each of its receives goes to the DLQ', {
      messageId: m.messageId,
      receiveCount: m.receiveCount,
    });
  }
  await Promise.all(
    plan.notes.map((n) =>
      log
        .record({ ...n, at })
        .catch((err) => logger.warn('ingest: could not record the failure reason', { messageId: n.messageId, error: String(err) })),
    ),
  );
}

/** Test hook only (INGEST_TEST_CRASH_EVENT): the stack dies as by kill -9 while it handles that event. */
export function crashOn<T extends (ev: NativeEvent) => Promise<unknown>>(eventId: string | undefined, handle: T): T {
  if (!eventId) return handle;
  return (async (ev: NativeEvent) => {
    if (ev.id === eventId) {
      console.log(`test-hook: ingest crashes the stack on event ${eventId}`);
      process.kill(process.pid, 'SIGKILL');
    }
    return handle(ev);
  }) as T;
}
