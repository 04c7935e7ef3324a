// EventQueue on SQS: the API acknowledges an event only after SendMessageBatch stored it.
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { NativeEvent } from '../core/types.ts';
import type { EventQueue } from '../ports/index.ts';

export class QueueSendFailed extends Error {
  override readonly name = 'QueueSendFailed';
}

export class SqsEventQueue implements EventQueue {
  readonly #sqs: SQSClient;
  readonly #url: string;

  constructor(sqs: SQSClient, queueUrl: string) {
    this.#sqs = sqs;
    this.#url = queueUrl;
  }

  async send(events: NativeEvent[]): Promise<void> {
    for (let i = 0; i < events.length; i += 10) {
      let batch = events.slice(i, i + 10).map((ev, j) => ({ Id: String(j), MessageBody: JSON.stringify(ev) }));
      // SendMessageBatch can fail some entries and succeed others: resend only the failed ones.
      for (let attempt = 0; batch.length > 0; attempt++) {
        const res = await this.#sqs.send(new SendMessageBatchCommand({ QueueUrl: this.#url, Entries: batch }));
        const failed = new Set((res.Failed ?? []).map((f) => f.Id));
        if (failed.size === 0) break;
        if (attempt >= 4) throw new QueueSendFailed(`the queue refused ${failed.size} event(s): ${res.Failed?.[0]?.Message ?? ''}`);
        batch = batch.filter((e) => failed.has(e.Id));
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
  }
}
