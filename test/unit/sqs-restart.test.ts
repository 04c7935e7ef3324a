// The counting rule for messages in flight when the stack died (local/sqs-restart.ts), against a model of the
// queue's redrive (SQS and fauxqs: a receive that makes the count exceed maxReceiveCount moves the message to the
// DLQ). On failure fast-check prints the seed and the shrunk case; FC_SEED reproduces it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { handedOutAgain, planRelease, receiveCountAfterRelease, type ReleasedMessage } from '../../local/sqs-restart.ts';

const SEED = Number(process.env.FC_SEED ?? 20261206);
type Outcome = 'ok' | 'fails' | 'kills-the-stack';

/** One message through the queue: each receive ends as `outcomes` says (then 'ok' for ever). */
function deliver(outcomes: Outcome[], max: number): { end: 'processed' | 'dlq'; receives: number; starts: number } {
  let count = 0;
  let starts = 1;
  for (let i = 0; ; i++) {
    count++;
    if (count > max) return { end: 'dlq', receives: count - 1, starts };
    const outcome = outcomes[i] ?? 'ok';
    if (outcome === 'ok') return { end: 'processed', receives: count, starts };
    if (outcome === 'kills-the-stack') {
      // The next start finds it in flight and releases it.
      starts++;
      count = receiveCountAfterRelease(count);
      // The start hands it out again at once unless its receives are used up (it is parked at the next receive).
      expect(handedOutAgain(count, max)).toBe(count < max);
    }
  }
}

describe('messages in flight when the stack died', () => {
  it('a message that kills the stack on every receive is parked after maxReceiveCount receives, like a failing one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.constantFrom<Outcome>('fails', 'kills-the-stack'), (max, bad) => {
        const r = deliver(Array(100).fill(bad), max);
        expect(r).toEqual({ end: 'dlq', receives: max, starts: bad === 'kills-the-stack' ? max + 1 : 1 });
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('any mix of deaths and failures: processed if one of the first maxReceiveCount receives succeeds, else parked', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.constantFrom<Outcome>('ok', 'fails', 'kills-the-stack'), { maxLength: 12 }),
        (max, outcomes) => {
          const firstOk = outcomes.indexOf('ok');
          const okAt = firstOk < 0 ? outcomes.length : firstOk;
          const r = deliver(outcomes, max);
          if (okAt < max) expect(r).toMatchObject({ end: 'processed', receives: okAt + 1 });
          else expect(r).toMatchObject({ end: 'dlq', receives: max });
          // The stack is never killed more than maxReceiveCount times by one message.
          expect(r.starts - 1).toBeLessThanOrEqual(max);
        },
      ),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it('one ordinary crash costs one receive: the message is handed out again at once and processed', () => {
    expect(deliver(['kills-the-stack'], 5)).toEqual({ end: 'processed', receives: 2, starts: 2 });
  });

  it('plans the release: suspects handed out one at a time, used-up messages parked, a reason for each', () => {
    const msg = (messageId: string, receiveCount: number, body: string, queue = 'ingest'): ReleasedMessage => ({
      messageId,
      queue,
      body,
      receiveCount,
    });
    const plan = planRelease(
      [
        msg('m1', 1, JSON.stringify({ id: 'e1', dedupKey: 'k1' })),
        msg('m2', 5, JSON.stringify({ id: 'e2', dedupKey: 'k2' })),
        msg('m3', 2, 'not json'),
        msg('d1', 3, JSON.stringify({ dedupKey: 'k9' }), 'ingest-dlq'),
      ],
      'ingest',
      5,
    );
    expect(plan.suspects).toEqual(['m1', 'm3']);
    expect(plan.parked.map((m) => m.messageId)).toEqual(['m2']);
    expect(plan.notes.map((n) => [n.key, n.receiveCount])).toEqual([
      ['k1', 1],
      ['k2', 5],
      ['message:m3', 2],
    ]);
    expect(plan.notes[0].reason).toMatch(/receive 1 of 5\); handed out again/);
    expect(plan.notes[1].reason).toMatch(/receive 5 of 5\); parked in the DLQ/);
  });
});
