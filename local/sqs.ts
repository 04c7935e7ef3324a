// SQS for the local stack: fauxqs in a child process (local/sqs-server.ts), the ingest queue and its DLQ.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateQueueCommand, GetQueueAttributesCommand, SetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { MAX_RECEIVES } from '../lambdas/handlers/ingest-batch.ts';
import { startServiceProcess, type Supervision } from './service-process.ts';
import { localClientConfig } from './sdk-clients.ts';

export interface LocalSqs {
  url: string;
  client: SQSClient;
  ingestQueueUrl: string;
  dlqUrl: string;
  /** The fauxqs process (changes when it is restarted). */
  readonly pid: number;
  close(): Promise<void>;
}

export const INGEST_QUEUE = 'xpu-reboot-ingest';
export const INGEST_DLQ = 'xpu-reboot-ingest-dlq';
/** Same as the AWS redrive policy: five failed receives and the event is parked in the DLQ. */
export const MAX_RECEIVE_COUNT = MAX_RECEIVES;

export function sqsClient(endpoint: string): SQSClient {
  return new SQSClient(localClientConfig(endpoint));
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

const SERVER = fileURLToPath(new URL('./sqs-server.ts', import.meta.url));

export async function startLocalSqs(opts: {
  dataDir: string;
  visibilityTimeoutSeconds?: number;
  supervise?: Omit<Supervision, 'name' | 'restartArgs'>;
  port?: number;
}): Promise<LocalSqs> {
  mkdirSync(opts.dataDir, { recursive: true });
  // A stack start: whatever the queue still shows in flight was held by a process that is gone.
  // A restart of the child under a running stack keeps what is in flight: the stack still holds those receipts.
  const service = await startServiceProcess(
    SERVER,
    [opts.dataDir, '--release-inflight'],
    join(opts.dataDir, 'fauxqs.pid'),
    opts.supervise && { name: 'fauxqs', restartArgs: [opts.dataDir], ...opts.supervise },
    opts.port,
  );
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
    get pid() {
      return service.pid;
    },
    async close() {
      client.destroy();
      await service.stop();
    },
  };
}
