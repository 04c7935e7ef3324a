// A redrive moves what it can before its time is up and says more remain (docs/operations.md, "Redrive"):
// on the local SQS, two queues of this test's own (no ingest reads them), a walk stopped at every message.
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqsDeadLetterQueue } from '../../lambdas/adapters/sqs-dlq.ts';
import { startHarness, type Harness } from './harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

let made = 0;
/** A DLQ holding `n` messages and the queue it redrives to, both empty of readers. */
async function queues(n: number) {
  const client = h.stack.sqs.client;
  const tag = `${Date.now()}-${++made}`;
  const dlqUrl = (await client.send(new CreateQueueCommand({ QueueName: `budget-dlq-${tag}` }))).QueueUrl!;
  const queueUrl = (await client.send(new CreateQueueCommand({ QueueName: `budget-q-${tag}` }))).QueueUrl!;
  for (let i = 0; i < n; i += 10)
    await client.send(
      new SendMessageBatchCommand({
        QueueUrl: dlqUrl,
        Entries: Array.from({ length: Math.min(10, n - i) }, (_, j) => ({ Id: String(j), MessageBody: JSON.stringify({ n: i + j }) })),
      }),
    );
  const depth = async (url: string) =>
    Number(
      (await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages'] }))).Attributes
        ?.ApproximateNumberOfMessages,
    );
  return { dlq: new SqsDeadLetterQueue(client, { dlqUrl, queueUrl }), dlqDepth: () => depth(dlqUrl), queueDepth: () => depth(queueUrl) };
}

describe('a redrive with a time budget', () => {
  it('out of time, moves one message at least and says more remain; asked again until done, every message is moved once', async () => {
    const q = await queues(12);
    const moved: string[] = [];
    let calls = 0;
    for (;;) {
      // Out of time from the start: each call moves exactly the one it must.
      const res = await q.dlq.redrive(undefined, { stopAt: 0 });
      calls++;
      moved.push(...res.redriven);
      if (!res.more) break;
      expect(res.redriven).toHaveLength(1);
      expect(calls).toBeLessThan(50);
    }
    // One call per message, and the last finds the DLQ empty.
    expect(calls).toBe(13);
    expect(new Set(moved).size).toBe(12);
    expect(moved).toHaveLength(12);
    expect(await q.dlqDepth()).toBe(0);
    expect(await q.queueDepth()).toBe(12);
  });

  it('with time left, moves everything in one call (more: false)', async () => {
    const q = await queues(12);
    const res = await q.dlq.redrive(undefined, { stopAt: Date.now() + 60_000 });
    expect(res.redriven).toHaveLength(12);
    expect(res.more).toBeUndefined();
    expect(await q.dlqDepth()).toBe(0);
  });

  it('by ids, out of time: the ids not met yet are not reported missing, and the next call gets them', async () => {
    const q = await queues(5);
    const ids = (await q.dlq.list(5)).map((d) => d.messageId);
    const first = await q.dlq.redrive([...ids, 'not-there'], { stopAt: 0 });
    expect(first.redriven).toHaveLength(1);
    expect(first).toMatchObject({ notFound: [], more: true });
    const rest = ids.filter((id) => !first.redriven.includes(id));
    const second = await q.dlq.redrive([...rest, 'not-there'], { stopAt: Date.now() + 60_000 });
    expect(second.redriven.sort()).toEqual([...rest].sort());
    expect(second.notFound).toEqual(['not-there']);
    expect(second.more).toBeUndefined();
  });
});
