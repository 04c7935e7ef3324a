// fauxqs (SQS) bound to 127.0.0.1 with its SQLite persistence under DATA_DIR, wired by hand.
import { mkdirSync } from 'node:fs';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';

// startFauxqs() listens on 0.0.0.0 whatever `host` says, and the package exports only app.js:
// the stores and the persistence manager are imported by path. Pinned to fauxqs 2.4.1 exactly.
const base = import.meta.resolve('fauxqs');
const { buildApp } = (await import(base)) as { buildApp: (o: unknown) => FastifyLike };
const { SqsStore } = await import(new URL('./sqs/sqsStore.js', base).href);
const { SnsStore } = await import(new URL('./sns/snsStore.js', base).href);
const { S3Store } = await import(new URL('./s3/s3Store.js', base).href);
const { PersistenceManager } = await import(new URL('./persistence.js', base).href);

interface FastifyLike {
  listen(o: { port: number; host: string }): Promise<string>;
  addHook(name: string, fn: () => void): void;
  close(): Promise<void>;
}

export interface LocalSqs {
  url: string;
  client: SQSClient;
  ingestQueueUrl: string;
  dlqUrl: string;
  close(): Promise<void>;
}

export const INGEST_QUEUE = 'xpu-reboot-ingest';
export const INGEST_DLQ = 'xpu-reboot-ingest-dlq';
/** Same as the AWS redrive policy: five failed receives and the event is parked in the DLQ. */
export { MAX_RECEIVES as MAX_RECEIVE_COUNT } from '../lambdas/handlers/ingest-batch.ts';
import { MAX_RECEIVES as MAX_RECEIVE_COUNT } from '../lambdas/handlers/ingest-batch.ts';

export function sqsClient(endpoint: string): SQSClient {
  return new SQSClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
}

export async function startLocalSqs(opts: { dataDir: string; port?: number; host?: string; visibilityTimeoutSeconds?: number }): Promise<LocalSqs> {
  mkdirSync(opts.dataDir, { recursive: true });
  const sqsStore = new SqsStore();
  // Without a host, queue URLs follow the request's Host (127.0.0.1:PORT) instead of the
  // unresolvable sqs.REGION.localhost that SDK clients configured by AWS_ENDPOINT_URL_SQS would dial.
  sqsStore.host = '';
  const snsStore = new SnsStore();
  const s3Store = new S3Store();
  const pm = new PersistenceManager(opts.dataDir);
  // WAL + NORMAL: a commit survives the process being killed (what we promise), and stops paying
  // an fsync per message (power loss could lose the last commits, as the workflow journal can).
  pm.db.exec('PRAGMA synchronous = NORMAL');
  // fauxqs bug: updateMessageReady (ChangeMessageVisibility 0) writes NULL into a NOT NULL
  // column and the message is lost. Clear only the in-flight fields instead.
  const ready = pm.db.prepare('UPDATE sqs_messages SET receipt_handle = NULL, visibility_deadline = NULL WHERE message_id = ?');
  pm.updateMessageReady = (messageId: string) => ready.run(messageId);
  // Load before wiring persistence in, so loading does not write everything back.
  pm.load(sqsStore, snsStore, s3Store);
  sqsStore.persistence = pm;
  snsStore.persistence = pm;
  s3Store.persistence = pm;
  for (const q of sqsStore.allQueues()) q.persistence = pm;
  const app = buildApp({ logger: false, stores: { sqsStore, snsStore, s3Store } });
  app.addHook('preClose', () => pm.close());
  const host = opts.host ?? '127.0.0.1';
  const address = await app.listen({ port: opts.port ?? 0, host });
  const url = address.replace('localhost', '127.0.0.1');
  const client = sqsClient(url);

  const dlq = await client.send(new CreateQueueCommand({ QueueName: INGEST_DLQ, Attributes: { MessageRetentionPeriod: String(14 * 86400) } }));
  const dlqArn = (await client.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl!, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
  const ingest = await client.send(
    new CreateQueueCommand({
      QueueName: INGEST_QUEUE,
      Attributes: {
        VisibilityTimeout: String(opts.visibilityTimeoutSeconds ?? 30),
        MessageRetentionPeriod: String(14 * 86400),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: MAX_RECEIVE_COUNT }),
      },
    }),
  );
  // fauxqs finds queues by name, whatever host and port a URL names; a persisted queue keeps the
  // URL of the port it was created on, so hand out URLs on this run's port.
  const queueUrl = (name: string) => `${url}/000000000000/${name}`;
  void ingest;
  return {
    url,
    client,
    ingestQueueUrl: queueUrl(INGEST_QUEUE),
    dlqUrl: queueUrl(INGEST_DLQ),
    async close() {
      client.destroy();
      await app.close();
    },
  };
}
