// Which windows the local report schedule writes (local/report-schedule.ts): each once, none skipped.
import { describe, expect, it } from 'vitest';
import { dueWindows, MAX_CATCH_UP_WINDOWS } from '../../local/report-schedule.ts';

const W = 60_000;

describe('dueWindows', () => {
  it('a first start writes the last window that ended, and nothing of the one running', () => {
    expect(dueWindows(null, 10 * W + 5, W)).toEqual({ windows: [[9 * W, 10 * W]], skipped: null });
  });

  it('nothing is due again until the next window ended', () => {
    expect(dueWindows(10 * W, 10 * W + 59_999, W).windows).toEqual([]);
    expect(dueWindows(10 * W, 11 * W, W).windows).toEqual([[10 * W, 11 * W]]);
  });

  it('after an outage: every window from the last one written, contiguous', () => {
    const { windows } = dueWindows(10 * W, 14 * W + 1, W);
    expect(windows).toEqual([
      [10 * W, 11 * W],
      [11 * W, 12 * W],
      [12 * W, 13 * W],
      [13 * W, 14 * W],
    ]);
  });

  it('a last window off the grid (the interval changed) is followed by a short one up to the grid', () => {
    expect(dueWindows(10 * W + 20_000, 12 * W, W).windows).toEqual([
      [10 * W + 20_000, 11 * W],
      [11 * W, 12 * W],
    ]);
  });

  it('an outage longer than the cap: the newest windows only, and the skipped range said', () => {
    const now = (MAX_CATCH_UP_WINDOWS + 50) * W;
    const { windows, skipped } = dueWindows(0, now, W);
    expect(windows).toHaveLength(MAX_CATCH_UP_WINDOWS);
    expect(skipped).toEqual([0, 50 * W]);
    expect(windows[0][0]).toBe(50 * W);
    expect(windows.at(-1)![1]).toBe(now);
  });
});
