// Maintenance windows: weekly local ranges in an IANA zone, across midnight and both DST changes; and the inventory key.
import { describe, expect, it } from 'vitest';
import { isWithinWindows, nextWindowOpening, type MaintenanceWindow } from '../../lambdas/core/windows.ts';
import { InventoryError, parseInventory } from '../../lambdas/core/inventory.ts';

const berlinNight: MaintenanceWindow = { days: ['sun'], start: '02:00', end: '05:00', tz: 'Europe/Berlin' };
const at = (iso: string) => new Date(iso);

describe('isWithinWindows', () => {
  it('is always open without windows', () => {
    expect(isWithinWindows(undefined, at('2026-06-03T12:00:00Z'))).toBe(true);
    expect(isWithinWindows([], at('2026-06-03T12:00:00Z'))).toBe(true);
  });

  it("reads local time in the window's zone (summer: Berlin is UTC+2)", () => {
    const w = [{ ...berlinNight, days: ['mon', 'tue'] as MaintenanceWindow['days'] }];
    expect(isWithinWindows(w, at('2026-06-01T00:00:00Z'))).toBe(true); // Mon 02:00 local
    expect(isWithinWindows(w, at('2026-06-01T02:59:00Z'))).toBe(true); // Mon 04:59 local
    expect(isWithinWindows(w, at('2026-06-01T03:00:00Z'))).toBe(false); // Mon 05:00 local: end is exclusive
    expect(isWithinWindows(w, at('2026-05-31T23:59:00Z'))).toBe(false); // Mon 01:59 local
    expect(isWithinWindows(w, at('2026-06-03T01:00:00Z'))).toBe(false); // Wed 03:00 local
  });

  it('runs a window that ends before it starts past midnight, into the next day', () => {
    const w: MaintenanceWindow[] = [{ days: ['fri'], start: '22:00', end: '04:00', tz: 'UTC' }];
    expect(isWithinWindows(w, at('2026-06-05T22:30:00Z'))).toBe(true); // Fri evening
    expect(isWithinWindows(w, at('2026-06-06T03:59:00Z'))).toBe(true); // Sat morning, still Friday's window
    expect(isWithinWindows(w, at('2026-06-06T22:30:00Z'))).toBe(false); // Sat evening
    expect(isWithinWindows(w, at('2026-06-05T03:00:00Z'))).toBe(false); // Fri morning belongs to Thursday
  });

  it('spring forward (Berlin, 2026-03-29 02:00 → 03:00): the skipped hour is not in the window, 03:00 is', () => {
    expect(isWithinWindows([berlinNight], at('2026-03-29T00:59:00Z'))).toBe(false); // 01:59 CET
    expect(isWithinWindows([berlinNight], at('2026-03-29T01:00:00Z'))).toBe(true); // 03:00 CEST
    expect(isWithinWindows([berlinNight], at('2026-03-29T02:59:00Z'))).toBe(true); // 04:59 CEST
    expect(isWithinWindows([berlinNight], at('2026-03-29T03:00:00Z'))).toBe(false); // 05:00 CEST
  });

  it('fall back (Berlin, 2026-10-25 03:00 → 02:00): the window lasts four real hours', () => {
    expect(isWithinWindows([berlinNight], at('2026-10-24T23:59:00Z'))).toBe(false); // 01:59 CEST
    expect(isWithinWindows([berlinNight], at('2026-10-25T00:00:00Z'))).toBe(true); // 02:00 CEST
    expect(isWithinWindows([berlinNight], at('2026-10-25T01:30:00Z'))).toBe(true); // 02:30 CET (the repeat)
    expect(isWithinWindows([berlinNight], at('2026-10-25T03:59:00Z'))).toBe(true); // 04:59 CET
    expect(isWithinWindows([berlinNight], at('2026-10-25T04:00:00Z'))).toBe(false); // 05:00 CET
  });
});

describe('nextWindowOpening', () => {
  it('is now when open', () => {
    const now = at('2026-06-07T01:00:00Z'); // Sun 03:00 CEST
    expect(nextWindowOpening([berlinNight], now)).toEqual(now);
  });

  it('is the next local start, in UTC', () => {
    expect(nextWindowOpening([berlinNight], at('2026-06-03T10:00:00Z'))).toEqual(at('2026-06-07T00:00:00Z'));
  });

  it('opens at the first minute after a start that DST skipped', () => {
    expect(nextWindowOpening([berlinNight], at('2026-03-28T12:00:00Z'))).toEqual(at('2026-03-29T01:00:00Z'));
  });

  it('takes the earliest of several windows and zones', () => {
    const tokyo: MaintenanceWindow = { days: ['wed'], start: '01:00', end: '02:00', tz: 'Asia/Tokyo' };
    expect(nextWindowOpening([berlinNight, tokyo], at('2026-06-01T00:00:00Z'))).toEqual(at('2026-06-02T16:00:00Z'));
  });
});

describe('policy.windows in the inventory', () => {
  const inv = (windows: string) => `policy:\n  windows: ${windows}\nnodes:\n  - id: a\n  - id: b\n    policy:\n      windows: []\n`;

  it('is inherited by nodes, and a node may lift it with an empty list', () => {
    const parsed = parseInventory(inv('[{days: [mon, tue], start: "02:00", end: "05:00", tz: "Europe/Berlin"}]'));
    expect(parsed.nodes[0].policy.windows).toEqual([{ days: ['mon', 'tue'], start: '02:00', end: '05:00', tz: 'Europe/Berlin' }]);
    expect(parsed.nodes[1].policy.windows).toEqual([]);
  });

  it('refuses an unknown time zone, a bad time or day, naming the line', () => {
    expect(() => parseInventory(inv('[{days: [mon], start: "02:00", end: "05:00", tz: "Mars/Olympus"}]'), 'nodes.yaml')).toThrow(
      /nodes\.yaml:2: an IANA time zone/,
    );
    expect(() => parseInventory(inv('[{days: [mon], start: "2am", end: "05:00", tz: "UTC"}]'))).toThrow(InventoryError);
    expect(() => parseInventory(inv('[{days: [monday], start: "02:00", end: "05:00", tz: "UTC"}]'))).toThrow(InventoryError);
  });
});
