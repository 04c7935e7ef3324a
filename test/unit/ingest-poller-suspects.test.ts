// The ingest consumer after a start that released messages in flight (local/sqs-restart.ts): one message at a
// time until each suspect was handled once, so that a message that kills the stack again is charged alone.
import type { SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { startIngestPoller } from '../../local/ingest-poller.ts';
import { eventually } from '../support/eventually.ts';

/** A queue as the poller sees it: receives take the oldest visible messages; deletes remove them. */
function fakeQueue(ids: string[]) {
  const visible = ids.map((id, i) => ({
    MessageId: id,
    ReceiptHandle: `r-${id}`,
    Body: JSON.stringify({ id, type: 't', node: `n${i}`, dedupKey: id }),
  }));
  const receives: Array<{ max: number; got: string[] }> = [];
  const client = {
    async send(cmd: { constructor: { name: string }; input: Record<string, any> }) {
      if (cmd.constructor.name === 'ReceiveMessageCommand') {
        const got = visible.splice(0, cmd.input.MaxNumberOfMessages);
        receives.push({ max: cmd.input.MaxNumberOfMessages, got: got.map((m) => m.MessageId) });
        if (got.length === 0) await new Promise((r) => setTimeout(r, 5));
        return { Messages: got.map((m) => ({ ...m, Attributes: { ApproximateReceiveCount: '2' } })) };
      }
      return {};
    },
  } as unknown as SQSClient;
  return { client, receives };
}

async function run(ids: string[], suspects: string[], concurrency: number) {
  const q = fakeQueue(ids);
  let handling = 0;
  const handled: Array<{ id: string; alongside: number }> = [];
  const poller = startIngestPoller({
    sqs: q.client,
    queueUrl: 'q',
    concurrency,
    logger: silentLogger,
    suspects,
    handle: async (ev: NativeEvent) => {
      handling++;
      handled.push({ id: ev.id, alongside: handling - 1 });
      await new Promise((r) => setTimeout(r, 2));
      handling--;
    },
  });
  await eventually('every message handled', async () => handled.length === ids.length, 5_000, 5);
  await poller.stop();
  return { handled, receives: q.receives.filter((r) => r.got.length > 0) };
}

describe('ingest consumer after a start that released messages in flight', () => {
  const ids = Array.from({ length: 25 }, (_, i) => `m${i}`);

  it('takes one message at a time, on one consumer, until every suspect was handled; then batches again', async () => {
    const { handled, receives } = await run(ids, ['m3', 'm7'], 4);
    const lastSuspect = handled.findIndex((h) => h.id === 'm7');
    // Up to the last suspect: single receives, nothing handled alongside.
    expect(receives.slice(0, lastSuspect + 1).every((r) => r.max === 1 && r.got.length === 1)).toBe(true);
    expect(handled.slice(0, lastSuspect + 1).every((h) => h.alongside === 0)).toBe(true);
    // After it: batches of ten again.
    expect(receives.slice(lastSuspect + 1).some((r) => r.max === 10 && r.got.length > 1)).toBe(true);
  });

  it('without suspects (a clean start), batches from the first receive', async () => {
    const { receives } = await run(ids, [], 2);
    expect(receives[0]).toMatchObject({ max: 10 });
    expect(receives[0].got.length).toBe(10);
  });
});
