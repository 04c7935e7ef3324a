// A reboot item stays bounded whatever is appended to it, and its counters still count everything.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { boundReboot, REBOOT_BOUNDS, refusalTotal, refusedSecondsTotal, truncate } from '../../lambdas/core/bounds.ts';
import { history, newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import { computeComplianceReport } from '../../lambdas/core/report/compute.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { EXAMPLE, parseInventory } from './inventory-fixture.ts';

const SEED = Number(process.env.FC_SEED ?? 20261206);
const node = parseInventory(EXAMPLE, 'test').nodes[0];
const T0 = '2030-01-01T00:00:00.000Z';
const MAX_ITEM_BYTES = 64 * 1024;

function fresh(): StoredReboot {
  const ev: NativeEvent = {
    id: 'e1',
    type: 'xpu.reboot.pending',
    node: node.id,
    xpu: 'dpu0',
    time: T0,
    source: 'native',
    dedupKey: 'k',
    receivedAt: T0,
  };
  return newXpuReboot('xr-01jabcdefghjkmnpqrstvwxyz0', node, 'dpu0', ev, 'planned');
}

const bytes = (r: unknown) => Buffer.byteLength(JSON.stringify(r));

/** What the API appends for a refused request (the writer knows nothing of bounds). */
function refuse(r: StoredReboot, seconds: number, reason: string): StoredReboot {
  r.refusals.push({ at: T0, requested: seconds, reason });
  r.history.push({
    ...history(T0, 'extension-refused', `asked ${seconds}s (${reason}): 2 extensions were already granted`),
    by: 'agent:node-a',
  });
  return r;
}

describe('truncate', () => {
  it('keeps short text, cuts long text to the byte limit on a code point boundary', () => {
    expect(truncate('short', 200)).toBe('short');
    const cut = truncate('x'.repeat(1000), 200);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(200);
    expect(cut.endsWith('…')).toBe(true);
    const emoji = truncate('😀'.repeat(300), 200);
    expect(Buffer.byteLength(emoji)).toBeLessThanOrEqual(200);
    expect(emoji).not.toMatch(/\uFFFD/);
    expect([...emoji.slice(0, -1)].every((c) => c === '😀')).toBe(true);
  });
});

describe('boundReboot', () => {
  it('after any number of refused requests with 1,000-character reasons the stored reboot stays under 64 KiB, and the counters and the report count every one', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            seconds: fc.integer({ min: 1, max: 7 * 24 * 3600 }),
            reason: fc.oneof(
              fc.string({ minLength: 1000, maxLength: 1000 }),
              fc.string({ unit: 'grapheme', minLength: 0, maxLength: 1000 }),
            ),
          }),
          { minLength: 0, maxLength: 300, size: 'max' },
        ),
        (asks) => {
          let r = fresh();
          let largest = 0;
          for (const a of asks) {
            // The store bounds each write (updateReboot); the writer just appends.
            r = boundReboot(refuse(structuredClone(r), a.seconds, a.reason));
            largest = Math.max(largest, bytes(r));
          }
          expect(largest).toBeLessThan(MAX_ITEM_BYTES);
          expect(refusalTotal(r)).toBe(asks.length);
          expect(r.refusalCount ?? 0).toBe(asks.length);
          expect(refusedSecondsTotal(r)).toBe(asks.reduce((s, a) => s + a.seconds, 0));
          expect(r.refusals.length).toBe(Math.min(asks.length, REBOOT_BOUNDS.refusals));
          // The last refusals kept are the last ones asked for.
          expect(r.refusals.map((x) => x.requested)).toEqual(asks.slice(-REBOOT_BOUNDS.refusals).map((a) => a.seconds));
          // History: the first entries and the last ones, and a count of those in between.
          expect(r.history[0].phase).toBe('notified');
          expect(r.history.length + (r.historyDropped ?? 0)).toBe(1 + asks.length);
          const row = computeComplianceReport([r], {
            from: new Date('2029-12-31T00:00:00Z'),
            to: new Date('2030-01-02T00:00:00Z'),
            generatedAt: new Date(T0),
          }).reboots[0];
          expect(row.extensionsRefused).toBe(asks.length);
          expect(row.extensionsRequested).toBe(asks.length);
          expect(row.extensionSecondsRequested).toBe(asks.reduce((s, a) => s + a.seconds, 0));
        },
      ),
      { seed: SEED, numRuns: 12 },
    );
  });

  it('is idempotent: bounding a bounded reboot changes nothing', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.string({ maxLength: 1000 }), (n, reason) => {
        let r = fresh();
        for (let i = 0; i < n; i++) r = refuse(r, i + 1, reason);
        const once = boundReboot(r);
        expect(boundReboot(structuredClone(once))).toEqual(once);
      }),
      { seed: SEED, numRuns: 50 },
    );
  });

  it('leaves a small reboot as it was', () => {
    const r = refuse(fresh(), 60, 'need a minute');
    expect(boundReboot(structuredClone(r))).toEqual({ ...r, refusalCount: 1 });
  });
});
