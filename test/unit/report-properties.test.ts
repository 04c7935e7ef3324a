// Properties of the compliance report over arbitrary reboots (fast-check): counts add up, shares stay shares, CSV round-trips.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ComplianceReportSchema, computeComplianceReport, renderReport, CSV_COLUMNS } from '../../lambdas/core/report/index.ts';
import { COMMAND_TYPES, REBOOT_STATUSES, type Reboot } from '../../lambdas/core/types.ts';
import { parseCsv } from './report-fixtures.ts';

const FROM = Date.parse('2024-05-01T00:00:00Z');
const TO = Date.parse('2024-05-03T00:00:00Z');
const HOUR = 3_600_000;

// Times from a day before the window to a day after it, so windows cut reboots on both sides.
const time = fc.integer({ min: FROM - 24 * HOUR, max: TO + 24 * HOUR }).map((ms) => new Date(ms).toISOString());
const maybeTime = fc.option(time, { nil: undefined });
const text = fc.oneof(
  fc.string(),
  fc.constantFrom('=1+1', '@x', '-3', '+cmd', 'a,b', 'q"q', 'l\r\nm', '<script>alert(1)</script>', '__proto__'),
);
const label = fc.option(fc.oneof(fc.constantFrom('r1', 'r2', 'z1', 't1', 'constructor'), text), { nil: undefined });

const rebootArb: fc.Arbitrary<Reboot> = fc
  .record({
    id: text,
    kind: fc.constantFrom('xpu' as const, 'host' as const),
    node: fc.oneof(fc.constantFrom('node-a', 'node-b'), text),
    xpu: fc.option(text, { nil: null }),
    status: fc.constantFrom(...REBOOT_STATUSES),
    mode: fc.constantFrom('planned' as const, 'crash' as const, 'shell' as const, 'ipmi' as const, 'perst' as const, 'other' as const),
    reason: fc.option(text, { nil: undefined }),
    rack: label,
    zone: label,
    tenant: label,
    notifiedAt: time,
    deadline: fc.option(time, { nil: null }),
    noticeSeconds: fc.integer({ min: 0, max: 3600 }),
    policyNoticeSeconds: fc.constantFrom(0, 300, 600),
    extensions: fc.array(
      fc.record({
        at: time,
        requested: fc.integer({ min: 1, max: 2000 }),
        granted: fc.integer({ min: 0, max: 2000 }),
        reason: text,
        deadline: time,
      }),
      { maxLength: 5 },
    ),
    refusals: fc.array(fc.record({ at: time, requested: fc.integer({ min: 1, max: 2000 }), reason: text }), { maxLength: 3 }),
    forced: fc.boolean(),
    outstanding: fc.array(text, { maxLength: 2 }),
    commands: fc.dictionary(
      fc.string({ minLength: 1, maxLength: 4 }),
      fc.record({
        id: fc.string(),
        type: fc.constantFrom(...COMMAND_TYPES),
        agent: text,
        step: fc.string(),
        status: fc.constantFrom('pending' as const, 'succeeded' as const, 'failed' as const, 'timed-out' as const, 'skipped' as const),
        at: time,
      }),
      { maxKeys: 3 },
    ),
    crashedAt: maybeTime,
    downAt: maybeTime,
    readyAt: maybeTime,
    hostDownAt: maybeTime,
    hostReadyAt: maybeTime,
    rebootingAt: maybeTime,
    endedAt: maybeTime,
    denyReason: fc.option(text, { nil: undefined }),
    nextTenant: fc.option(text, { nil: undefined }),
  })
  .map((r) => ({ ...r, history: [], version: 1 }) as Reboot);

const windowArb = fc
  .tuple(fc.integer({ min: FROM - 12 * HOUR, max: TO }), fc.integer({ min: 1, max: 72 * HOUR }))
  .map(([from, len]) => ({ from: new Date(from), to: new Date(from + len) }));

const SEV = { high: 0, medium: 1, low: 2 } as const;
const worst = (fs: { severity: keyof typeof SEV }[]) => Math.min(3, ...fs.map((f) => SEV[f.severity]));

describe('compliance report properties', () => {
  it('counts every reboot notified in the window once, and every group adds up to the total', () => {
    fc.assert(
      fc.property(fc.array(rebootArb, { maxLength: 40 }), windowArb, (reboots, w) => {
        const report = computeComplianceReport(reboots, { ...w, generatedAt: new Date(TO) });
        const expected = reboots.filter((r) => Date.parse(r.notifiedAt) >= w.from.getTime() && Date.parse(r.notifiedAt) < w.to.getTime());
        expect(report.reboots).toHaveLength(expected.length);
        expect(report.totals.overall.count).toBe(report.reboots.length);
        for (const groups of [report.totals.byRack, report.totals.byZone, report.totals.byTenant, report.totals.byKind]) {
          expect(groups.reduce((n, g) => n + g.count, 0)).toBe(report.totals.overall.count);
          expect(new Set(groups.map((g) => g.key)).size).toBe(groups.length);
        }
        expect(report.findings.length).toBe(report.reboots.reduce((n, r) => n + r.findings.length, 0));
      }),
    );
  });

  it('keeps shares in [0, 1], percentiles ordered, and the output inside the schema', () => {
    fc.assert(
      fc.property(fc.array(rebootArb, { maxLength: 40 }), windowArb, (reboots, w) => {
        const report = computeComplianceReport(reboots, { ...w, generatedAt: new Date(TO) });
        for (const t of [report.totals.overall, ...report.totals.byRack]) {
          if (t.forcedShare !== null) {
            expect(t.forcedShare).toBeGreaterThanOrEqual(0);
            expect(t.forcedShare).toBeLessThanOrEqual(1);
          } else expect(t.xpu).toBe(0);
          if (t.p95RecoverySeconds !== null) expect(t.p95RecoverySeconds).toBeGreaterThanOrEqual(t.medianRecoverySeconds!);
        }
        for (const r of report.reboots) if (r.recoverySeconds !== null) expect(r.recoverySeconds).toBeGreaterThanOrEqual(0);
        ComplianceReportSchema.parse(report);
      }),
    );
  });

  it('lists reboots with findings first, worst first, then newest first', () => {
    fc.assert(
      fc.property(fc.array(rebootArb, { maxLength: 40 }), windowArb, (reboots, w) => {
        const rows = computeComplianceReport(reboots, { ...w, generatedAt: new Date(TO) }).reboots;
        for (let i = 1; i < rows.length; i++) {
          const a = worst(rows[i - 1].findings);
          const b = worst(rows[i].findings);
          expect(a).toBeLessThanOrEqual(b);
          if (a === b) expect(Date.parse(rows[i - 1].notifiedAt)).toBeGreaterThanOrEqual(Date.parse(rows[i].notifiedAt));
        }
      }),
    );
  });

  it('writes CSV that parses back to one record per reboot with the ids intact', () => {
    fc.assert(
      fc.property(fc.array(rebootArb, { maxLength: 30 }), windowArb, (reboots, w) => {
        const report = computeComplianceReport(reboots, { ...w, generatedAt: new Date(TO) });
        const records = parseCsv(renderReport(report, 'csv').body);
        expect(records).toHaveLength(report.reboots.length + 1);
        for (const r of records) expect(r).toHaveLength(CSV_COLUMNS.length);
        records.slice(1).forEach((r, i) => {
          const id = report.reboots[i].id;
          // A neutralised cell is the original with one leading quote.
          expect(r[0] === id || r[0] === `'${id}`).toBe(true);
          expect(/^[=+\-@\t\r]/.test(r[0]) && !/^[+-]?[\d.]/.test(r[0])).toBe(false);
        });
      }),
    );
  });

  it('never lets user data open a tag in the HTML page', () => {
    fc.assert(
      fc.property(fc.array(rebootArb, { maxLength: 20 }), (reboots) => {
        const html = renderReport(
          computeComplianceReport(reboots, { from: new Date(FROM - 24 * HOUR), to: new Date(TO + 25 * HOUR) }),
          'html',
        ).body;
        expect(html).not.toMatch(/<script/i);
        expect(html.match(/<svg /g)).toHaveLength(3);
      }),
      { numRuns: 50 },
    );
  });
});
