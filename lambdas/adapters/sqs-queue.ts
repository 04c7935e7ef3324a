// EventQueue on SQS: the API acknowledges an event only after SendMessageBatch stored it.
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { PayloadTooLarge } from '../core/errors.ts';
import type { NativeEvent } from '../core/types.ts';
import type { EventQueue } from '../ports/index.ts';

export class QueueSendFailed extends Error {
  override readonly name = 'QueueSendFailed';
}

/** SQS limits a batch to 10 messages and 256 KiB of UTF-8 bytes (not characters); stay clear of the byte limit. */
const MAX_ENTRIES = 10;
const MAX_BATCH_BYTES = 200 * 1024;
/**
 * The ingest queue's limit on one message (cdk/constructs/ingest-queue.ts sets it; fauxqs takes more): SQS's
 * maximum since 2025. Well above the API's 256 KiB body limit (contract 3), because the event queued is the body
 * plus the coordinator's fields: a body of exactly 256 KiB must be accepted. Checked all the same, for a Redfish
 * POST whose records each carry the whole Event's fields.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

interface Pending {
  body: string;
  done: (err?: Error) => void;
}

/**
 * Events from concurrent requests share SendMessageBatch calls: under a burst one call stores up
 * to ten requests' events, instead of one call each. Every caller still waits for its own
 * events to be stored, so nothing is acknowledged early.
 */
export class SqsEventQueue implements EventQueue {
  readonly #sqs: SQSClient;
  readonly #url: string;
  #pending: Pending[] = [];
  #bytes = 0;
  #scheduled = false;

  constructor(sqs: SQSClient, queueUrl: string) {
    this.#sqs = sqs;
    this.#url = queueUrl;
  }

  send(events: NativeEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    // Bytes as SQS counts them: text in a reason or a Redfish message may be several bytes a character.
    const bodies = events.map((ev) => JSON.stringify(ev));
    const sizes = bodies.map((b) => Buffer.byteLength(b, 'utf8'));
    // Checked before any is queued: a request refused changes nothing. A body just under the API's
    // limit grows past SQS's once the coordinator's fields are added; SQS would refuse it for ever.
    const over = sizes.findIndex((n) => n > MAX_MESSAGE_BYTES);
    if (over >= 0) {
      return Promise.reject(
        new PayloadTooLarge(`event ${events[over].id} is ${sizes[over]} bytes once queued; the queue takes at most ${MAX_MESSAGE_BYTES}`),
      );
    }
    return Promise.all(
      bodies.map(
        (body, i) =>
          new Promise<void>((resolve, reject) => {
            const bytes = sizes[i];
            if (this.#pending.length >= MAX_ENTRIES || this.#bytes + bytes > MAX_BATCH_BYTES) this.#flush();
            this.#pending.push({ body, done: (err) => (err ? reject(err) : resolve()) });
            this.#bytes += bytes;
            if (this.#pending.length >= MAX_ENTRIES) this.#flush();
            else if (!this.#scheduled) {
              // Whatever else arrives in this turn of the event loop goes in the same call.
              this.#scheduled = true;
              setImmediate(() => {
                this.#scheduled = false;
                this.#flush();
              });
            }
          }),
      ),
    ).then(() => undefined);
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#bytes = 0;
    void this.#sendBatch(batch);
  }

  async #sendBatch(batch: Pending[]): Promise<void> {
    let entries = batch.map((p, i) => ({ Id: String(i), MessageBody: p.body }));
    try {
      // SendMessageBatch can fail some entries and succeed others: resend only the failed ones.
      for (let attempt = 0; entries.length > 0; attempt++) {
        const res = await this.#sqs.send(new SendMessageBatchCommand({ QueueUrl: this.#url, Entries: entries }));
        const failed = new Map((res.Failed ?? []).map((f) => [f.Id, f.Message]));
        for (const e of entries) if (!failed.has(e.Id)) batch[Number(e.Id)].done();
        if (failed.size === 0) return;
        if (attempt >= 4) {
          const err = new QueueSendFailed(`the queue refused ${failed.size} event(s): ${[...failed.values()][0] ?? ''}`);
          for (const e of entries) if (failed.has(e.Id)) batch[Number(e.Id)].done(err);
          return;
        }
        entries = entries.filter((e) => failed.has(e.Id));
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    } catch (err) {
      // Not stored: every caller still waiting gets the error (a 500, and the sender retries).
      for (const e of entries) batch[Number(e.Id)].done(err as Error);
    }
  }
}
