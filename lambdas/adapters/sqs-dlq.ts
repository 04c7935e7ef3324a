// The ingest DLQ on SQS (peek with a short visibility, redrive with SendMessage + DeleteMessage) and the
// failure reasons the ingest path writes into the table, which say why a message ended up there.
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { DeadLetter, DeadLetterQueue, IngestFailure, IngestFailureLog, RedriveResult } from '../ports/index.ts';

/** As long as the DLQ keeps a message (14 days), so a parked message never outlives its reason. */
const FAILURE_TTL_SECONDS = 14 * 86400;
/** Messages a peek or a redrive holds hidden while it walks the queue; released at the end of the call. */
const HOLD_SECONDS = 30;
/** One call walks at most this many messages, so a DLQ filling as fast as it is read cannot loop forever. */
const MAX_WALK = 10_000;

const failureKey = (key: string) => ({ pk: `F#${key}`, sk: 'F' });

/** Failure reasons as small table items keyed by the event's dedupKey (or the message id). */
export class DynamoIngestFailureLog implements IngestFailureLog {
  readonly #doc: DynamoDBDocumentClient;
  readonly #table: string;

  constructor(client: DynamoDBClient, table: string) {
    this.#doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.#table = table;
  }

  async record(f: IngestFailure): Promise<void> {
    await this.#doc.send(
      new PutCommand({
        TableName: this.#table,
        Item: { ...failureKey(f.key), ...f, ttl: Math.floor(Date.now() / 1000) + FAILURE_TTL_SECONDS },
      }),
    );
  }

  async get(keys: string[]): Promise<Map<string, IngestFailure>> {
    const out = new Map<string, IngestFailure>();
    const unique = [...new Set(keys)];
    for (let i = 0; i < unique.length; i += 100) {
      let request: Record<string, { Keys: Record<string, unknown>[] }> | undefined = {
        [this.#table]: { Keys: unique.slice(i, i + 100).map(failureKey) },
      };
      for (let attempt = 0; request && Object.keys(request).length > 0 && attempt < 8; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
        const res = await this.#doc.send(new BatchGetCommand({ RequestItems: request }));
        for (const item of res.Responses?.[this.#table] ?? []) {
          const { pk: _pk, sk: _sk, ttl: _ttl, ...f } = item as IngestFailure & { pk: string; sk: string; ttl: number };
          out.set(f.key, f);
        }
        request = res.UnprocessedKeys as typeof request;
      }
    }
    return out;
  }
}

interface Decoded {
  event: DeadLetter['event'];
  key: string;
}

function decode(m: Message): Decoded {
  try {
    const ev = JSON.parse(m.Body ?? '');
    if (ev && typeof ev === 'object' && !Array.isArray(ev) && typeof ev.dedupKey === 'string') {
      const str = (v: unknown) => (typeof v === 'string' ? v : null);
      return {
        event: { id: str(ev.id), node: str(ev.node), type: str(ev.type), xpu: str(ev.xpu), dedupKey: ev.dedupKey },
        key: ev.dedupKey,
      };
    }
  } catch {
    /* not JSON: listed without an event */
  }
  return { event: null, key: `message:${m.MessageId}` };
}

export class SqsDeadLetterQueue implements DeadLetterQueue {
  readonly #sqs: SQSClient;
  readonly #dlqUrl: string;
  readonly #queueUrl: string;
  readonly #failures: IngestFailureLog | undefined;

  constructor(sqs: SQSClient, opts: { dlqUrl: string; queueUrl: string; failures?: IngestFailureLog }) {
    this.#sqs = sqs;
    this.#dlqUrl = opts.dlqUrl;
    this.#queueUrl = opts.queueUrl;
    this.#failures = opts.failures;
  }

  /**
   * Walks the DLQ: receives (hiding what it saw for HOLD_SECONDS, so no message is seen twice) until `visit`
   * says stop or the queue has nothing more to give. The messages `visit` did not consume are made visible
   * again before returning. A concurrent walk sees fewer messages meanwhile; nothing is lost.
   */
  async #walk(visit: (m: Message) => Promise<{ consumed: boolean; stop: boolean }>): Promise<void> {
    const held: Message[] = [];
    // A hint only (SQS counts are approximate): once that many were seen, short polls finish the walk quickly.
    const res = await this.#sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: this.#dlqUrl, AttributeNames: ['ApproximateNumberOfMessages'] }),
    );
    const expected = Number(res.Attributes?.ApproximateNumberOfMessages ?? 0);
    try {
      let seen = 0;
      walking: while (seen < MAX_WALK) {
        const res = await this.#sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.#dlqUrl,
            MaxNumberOfMessages: 10,
            VisibilityTimeout: HOLD_SECONDS,
            // Long polling asks every SQS host (a short poll may answer empty while messages exist); once the
            // expected count was seen, a short poll only picks up what arrived meanwhile.
            WaitTimeSeconds: seen < expected ? 1 : 0,
            MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
          }),
        );
        const batch = res.Messages ?? [];
        if (batch.length === 0) break;
        for (const [i, m] of batch.entries()) {
          seen++;
          const what = await visit(m);
          if (!what.consumed) held.push(m);
          if (what.stop) {
            held.push(...batch.slice(i + 1));
            break walking;
          }
        }
      }
    } finally {
      await this.#release(held);
    }
  }

  async #release(messages: Message[]): Promise<void> {
    for (let i = 0; i < messages.length; i += 10) {
      const chunk = messages.slice(i, i + 10);
      try {
        await this.#sqs.send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: this.#dlqUrl,
            Entries: chunk.map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle!, VisibilityTimeout: 0 })),
          }),
        );
      } catch {
        // They become visible again by themselves after HOLD_SECONDS.
      }
    }
  }

  async list(limit: number): Promise<DeadLetter[]> {
    const found: Array<{ m: Message; d: Decoded }> = [];
    await this.#walk(async (m) => {
      found.push({ m, d: decode(m) });
      return { consumed: false, stop: found.length >= limit };
    });
    const reasons = this.#failures ? await this.#failures.get(found.map((f) => f.d.key)) : new Map<string, IngestFailure>();
    return found.map(({ m, d }) => {
      const f = reasons.get(d.key);
      const sent = Number(m.Attributes?.SentTimestamp);
      return {
        messageId: m.MessageId!,
        event: d.event,
        receiveCount: f?.receiveCount ?? Number(m.Attributes?.ApproximateReceiveCount ?? 0),
        reason: f?.reason ?? null,
        failedAt: f?.at ?? null,
        sentAt: Number.isFinite(sent) && sent > 0 ? new Date(sent).toISOString() : null,
      };
    });
  }

  async redrive(ids?: readonly string[], opts: { stopAt?: number } = {}): Promise<RedriveResult> {
    const wanted = ids ? new Set(ids) : undefined;
    const redriven: string[] = [];
    let more = false;
    await this.#walk(async (m) => {
      if (wanted && !wanted.has(m.MessageId!)) {
        // Out of time, once it has moved one (so asking again gets further): the ids not met yet are left for the next call.
        more = redriven.length > 0 && opts.stopAt !== undefined && Date.now() >= opts.stopAt;
        return { consumed: false, stop: more };
      }
      // Send first, then delete: a crash in between redrives it twice, which the ingest dedup absorbs.
      await this.#sqs.send(new SendMessageCommand({ QueueUrl: this.#queueUrl, MessageBody: m.Body ?? '' }));
      await this.#sqs.send(new DeleteMessageCommand({ QueueUrl: this.#dlqUrl, ReceiptHandle: m.ReceiptHandle! }));
      redriven.push(m.MessageId!);
      const all = !!wanted && redriven.length === wanted.size;
      // Checked after a move, so each call moves one at least and a caller that asks again gets through.
      more = !all && opts.stopAt !== undefined && Date.now() >= opts.stopAt;
      return { consumed: true, stop: all || more };
    });
    const done = new Set(redriven);
    // Stopped early, an id not met yet may still be there: not reported missing.
    const notFound = ids && !more ? [...new Set(ids)].filter((id) => !done.has(id)) : [];
    return { redriven, notFound, ...(more ? { more } : {}) };
  }
}
