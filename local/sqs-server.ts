// fauxqs (SQS) in its own process, bound to 127.0.0.1, with its SQLite persistence under DATA_DIR.
import { mkdirSync } from 'node:fs';
import { serveUntilParentGoes, tellParent } from './service-process.ts';
import type { ReleasedMessage } from './sqs-restart.ts';

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

const dataDir = process.argv[2];
mkdirSync(dataDir, { recursive: true });
const sqsStore = new SqsStore();
// Without a host, queue URLs follow the request's Host (127.0.0.1:PORT) instead of the
// unresolvable sqs.REGION.localhost that SDK clients configured by AWS_ENDPOINT_URL_SQS would dial.
sqsStore.host = '';
const snsStore = new SnsStore();
const s3Store = new S3Store();
const pm = new PersistenceManager(dataDir);
// WAL + NORMAL: a commit survives the process being killed (what we promise), and stops paying
// an fsync per message (power loss could lose the last commits, as the workflow journal can).
pm.db.exec('PRAGMA synchronous = NORMAL');
// fauxqs bug: updateMessageReady (ChangeMessageVisibility 0) writes NULL into a NOT NULL
// column and the message is lost. Clear only the in-flight fields instead.
const ready = pm.db.prepare('UPDATE sqs_messages SET receipt_handle = NULL, visibility_deadline = NULL WHERE message_id = ?');
pm.updateMessageReady = (messageId: string) => ready.run(messageId);
// Messages in flight when the stack died: fauxqs persists each received message's receipt handle
// and visibility deadline, and its loader puts such rows back in flight until that deadline (the
// ingest queue's visibility timeout, 30 s by default), though no live process holds their receipt
// handles. The stack is the only consumer of its queues, so on a stack start (not on a restart of
// this child under a running stack, whose receipt handles are still good) hand them out again at
// once. The receive that died with the stack keeps counting against the message (local/sqs-restart.ts):
// a message that kills the stack every time reaches the DLQ after maxReceiveCount starts. The stack is
// told which messages these were, to charge them and to record why.
let released: ReleasedMessage[] = [];
if (process.argv.includes('--release-inflight')) {
  released = (
    pm.db
      .prepare('SELECT message_id, queue_name, body, approximate_receive_count FROM sqs_messages WHERE receipt_handle IS NOT NULL')
      .all() as Array<{ message_id: string; queue_name: string; body: string; approximate_receive_count: number }>
  ).map((r) => ({ messageId: r.message_id, queue: r.queue_name, body: r.body, receiveCount: r.approximate_receive_count }));
  pm.db.prepare('UPDATE sqs_messages SET receipt_handle = NULL, visibility_deadline = NULL WHERE receipt_handle IS NOT NULL').run();
}
// Load before wiring persistence in, so loading does not write everything back.
pm.load(sqsStore, snsStore, s3Store);
sqsStore.persistence = pm;
snsStore.persistence = pm;
s3Store.persistence = pm;
for (const q of sqsStore.allQueues()) q.persistence = pm;
const app = buildApp({ logger: false, stores: { sqsStore, snsStore, s3Store } });
app.addHook('preClose', () => pm.close());
// SERVICE_PORT: set when the stack restarts this child where its clients already point.
let address: string;
try {
  address = await app.listen({ port: Number(process.env.SERVICE_PORT ?? 0), host: '127.0.0.1' });
} catch (err) {
  tellParent({ error: `cannot listen: ${(err as Error).message}` });
  process.exit(1);
}
serveUntilParentGoes(() => app.close());
tellParent({ port: Number(new URL(address).port), released });
