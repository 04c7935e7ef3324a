// The two helpers that let the events of one ingest batch share requests: coalesce (one batch request for the
// calls of one turn of the event loop) and sharedRead (one holds read for the starts it is fresh enough for).
import { describe, expect, it } from 'vitest';
import { coalesce } from '../../lambdas/adapters/coalesce.ts';
import { sharedRead } from '../../lambdas/handlers/shared-read.ts';

describe('coalesce', () => {
  it('answers each caller from one request per turn, in chunks of at most max', async () => {
    const requests: number[][] = [];
    const double = coalesce(async (xs: number[]) => {
      requests.push(xs);
      return xs.map((x) => x * 2);
    }, 4);
    const answers = await Promise.all([1, 2, 3, 4, 5, 6].map((x) => double(x)));
    expect(answers).toEqual([2, 4, 6, 8, 10, 12]);
    expect(requests).toEqual([
      [1, 2, 3, 4],
      [5, 6],
    ]);
    // A later turn: a request of its own.
    expect(await double(7)).toBe(14);
    expect(requests).toHaveLength(3);
  });

  it('fails every caller of a failed request, and only them', async () => {
    const flaky = coalesce(async (xs: string[]) => {
      if (xs.includes('bad')) throw new Error('request failed');
      return xs;
    }, 2);
    const [a, b, c] = await Promise.allSettled([flaky('ok'), flaky('bad'), flaky('fine')]);
    expect(a.status).toBe('rejected');
    expect(b.status).toBe('rejected');
    expect(c).toEqual({ status: 'fulfilled', value: 'fine' });
  });
});

describe('sharedRead', () => {
  it('joins a read in flight only if it started after the caller began', async () => {
    let begun = 0;
    let loads = 0;
    const release: Array<() => void> = [];
    const holds = sharedRead(
      () => begun,
      () => {
        loads++;
        const n = loads;
        return new Promise<number>((r) => release.push(() => r(n)));
      },
    );
    const a = ++begun;
    const b = ++begun;
    const first = holds.read(a); // starts a read at begun = 2
    const sameForB = holds.read(b); // b began before that read started: joins it
    const c = ++begun;
    const forC = holds.read(c); // c began after: a read of its own
    expect(loads).toBe(2);
    for (const r of release) r();
    expect(await first).toBe(1);
    expect(await sameForB).toBe(1);
    expect(await forC).toBe(2);
    // Finished reads are not kept.
    const again = holds.read(b);
    expect(loads).toBe(3);
    release[2]();
    expect(await again).toBe(3);
  });
});
