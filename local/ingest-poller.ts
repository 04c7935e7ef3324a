// Drains the ingest queue into the ingest handler, as the SQS event source mapping does in AWS.
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { NativeEvent } from '../lambdas/core/types.ts';
import type { Logger } from '../lambdas/handlers/deps.ts';
import { NodeLanes, processBatch } from '../lambdas/handlers/ingest-batch.ts';

export interface IngestPoller {
  stop(): Promise<void>;
}

export function startIngestPoller(opts: {
  sqs: SQSClient;
  queueUrl: string;
  handle: (ev: NativeEvent) => Promise<unknown>;
  concurrency: number;
  logger: Logger;
  /** Tests only: wait this long between receiving a batch and handling it. */
  holdMs?: number;
  /** Called once, the first time the queue is found empty with no batch in hand (the backlog is processed). */
  onDrained?: () => void;
  /**
   * Messages the previous process had in flight when it died (local/sqs-restart.ts). Until each was handled
   * once (or the queue was found empty), one consumer takes one message at a time: if one of them kills the
   * stack again, it alone is charged with that receive, not the messages that shared its batch.
   */
  suspects?: readonly string[];
}): IngestPoller {
  const abort = new AbortController();
  const holdMs = opts.holdMs ?? 0;
  let drained = false;
  let busy = 0;
  let stopping = false;
  // Consumers run batches side by side; a node's events still apply in the order their batches came.
  const lanes = new NodeLanes();
  const suspects = new Set(opts.suspects ?? []);

  async function loop(consumer: number): Promise<void> {
    while (!stopping) {
      if (suspects.size > 0 && consumer > 0) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      let messages: Message[] = [];
      try {
        const res = await opts.sqs.send(
          // Until the backlog is drained once, do not long-poll: an empty answer must come at once.
          new ReceiveMessageCommand({
            QueueUrl: opts.queueUrl,
            MaxNumberOfMessages: suspects.size > 0 ? 1 : 10,
            WaitTimeSeconds: drained ? 5 : 0,
            MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          }),
          { abortSignal: abort.signal },
        );
        messages = res.Messages ?? [];
      } catch (err) {
        if (stopping) return;
        opts.logger.warn('ingest queue receive failed; retrying', { error: String(err) });
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (messages.length === 0) {
        // The suspects left are gone (parked in the DLQ at their receive, or deleted): nothing to isolate.
        suspects.clear();
        if (!drained && busy === 0) {
          drained = true;
          opts.onDrained?.();
        } else if (!drained) await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      busy++;
      try {
        await handleBatch(messages);
      } finally {
        busy--;
        for (const m of messages) suspects.delete(m.MessageId!);
      }
    }
  }

  async function handleBatch(messages: Message[]): Promise<void> {
    if (holdMs > 0) {
      // Test hook only (INGEST_TEST_HOLD_MS): keep the batch in flight long enough for a test to kill -9 us here.
      console.log(`test-hook: ingest holds ${messages.length} message(s)`);
      await new Promise((r) => setTimeout(r, holdMs));
    }
    // Once received, a batch is finished even during shutdown: what is not deleted comes back.
    const failed = new Set(
      (
        await processBatch(
          messages.map((m) => ({ id: m.MessageId!, body: m.Body ?? '', receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 1) })),
          opts.handle,
          opts.logger,
          lanes,
        )
      ).map((f) => f.id),
    );
    const done = messages.filter((m) => !failed.has(m.MessageId!));
    if (done.length === 0) return;
    try {
      await opts.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: opts.queueUrl,
          Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    } catch (err) {
      // Not deleted means redelivered later: the handler is idempotent, so that is only extra work.
      opts.logger.warn('ingest queue delete failed; events will be redelivered', { error: String(err) });
    }
  }

  const loops = Array.from({ length: opts.concurrency }, (_, i) => loop(i));
  return {
    async stop() {
      stopping = true;
      abort.abort();
      await Promise.allSettled(loops);
    },
  };
}
