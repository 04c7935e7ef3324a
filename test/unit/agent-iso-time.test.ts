// The agent's UTC timestamps (journal, logs, DEADLINE) are byte for byte what toISOString gives.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isoTime } from '../../agent/iso-time.ts';

const MAX = 8.64e15; // the largest time a Date holds
const FOUR_DIGITS = { min: Date.parse('0000-01-01T00:00:00.000Z'), max: Date.parse('9999-12-31T23:59:59.999Z') };

describe('isoTime', () => {
  it('equals toISOString for any valid time, including the 6-digit years it leaves to it', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer(FOUR_DIGITS), fc.integer({ min: -MAX, max: MAX })), (ms) => {
        expect(isoTime(ms)).toBe(new Date(ms).toISOString());
        expect(isoTime(new Date(ms))).toBe(new Date(ms).toISOString());
      }),
      { seed: 1919, numRuns: 2000 },
    );
  });

  it('equals toISOString at the edges of the 4-digit years and of each field', () => {
    for (const s of [
      '0000-01-01T00:00:00.000Z',
      '9999-12-31T23:59:59.999Z',
      '1970-01-01T00:00:00.000Z',
      '2024-02-29T09:05:07.010Z',
      '2026-12-06T15:50:00.100Z',
      '+010000-01-01T00:00:00.000Z',
      '-000001-12-31T23:59:59.999Z',
    ]) {
      expect(isoTime(Date.parse(s))).toBe(s);
    }
  });

  it('throws like toISOString for an invalid time', () => {
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
    expect(() => isoTime(new Date('not a date'))).toThrow(RangeError);
  });
});
