// test/support/eventually.ts: the one polling helper says what it waited for when it gives up.
import { describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.ts';

describe('eventually', () => {
  it('returns the first truthy value, retrying through falsy values and throws', async () => {
    let calls = 0;
    const v = await eventually(
      'the third call',
      () => {
        calls++;
        if (calls === 1) throw new Error('not yet');
        return calls === 3 ? { calls } : undefined;
      },
      5_000,
      1,
    );
    expect(v).toEqual({ calls: 3 });
  });

  it('names what it waited for and the last thing it saw when it times out', async () => {
    await expect(eventually('the moon to turn blue', () => false, 20, 5)).rejects.toThrow(
      /^timed out after 20 ms waiting for the moon to turn blue \(last: false\)$/,
    );
    const err = await eventually(
      () => 'a lazily described wait',
      async () => {
        throw new Error('store down');
      },
      20,
      5,
    ).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/waiting for a lazily described wait \(last: store down\)/);
    expect(((err as Error).cause as Error).message).toBe('store down');
  });
});
