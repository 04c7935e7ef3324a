// Known-answer tests of the compliance report over recorded reboots: rows, findings, totals and window edges.
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ComplianceReportSchema,
  computeComplianceReport,
  InvalidReportWindow,
  percentileNearestRank,
  reportJsonSchema,
  renderReport,
  parseReportQuery,
  InvalidReportQuery,
  type ComplianceReport,
} from '../../lambdas/core/report/index.ts';
import type { Reboot } from '../../lambdas/core/types.ts';
import { FROM, GENERATED_AT, TO, addSeconds, hostReboot, recordedDay, t, xpuReboot } from './report-fixtures.ts';

const day = (): ComplianceReport => computeComplianceReport(recordedDay(), { from: FROM, to: TO, generatedAt: GENERATED_AT });
const row = (r: ComplianceReport, id: string) => r.reboots.find((x) => x.id === id)!;

describe('compliance report over a recorded day', () => {
  it('includes the reboots notified in [from, to) and no others', () => {
    const ids = day().reboots.map((r) => r.id);
    expect(ids).toHaveLength(14);
    expect(ids).toContain('x-at-from');
    expect(ids).not.toContain('x-cut-start');
    expect(ids).not.toContain('x-at-to');
  });

  it('lists reboots with findings first by severity, then newest first', () => {
    expect(day().reboots.map((r) => r.id)).toEqual([
      // high
      'x-failed',
      'x-overcap',
      'x-short',
      'h-violating',
      'h-across',
      // medium
      'x-forced',
      'x-at-from',
      // low
      'x-crash',
      // no findings
      'x-cut-end',
      'x-cut-end-done',
      'x-refused',
      'x-ext2',
      'h-denied',
      'x-ok',
    ]);
  });

  it('lists the findings by severity, then newest first', () => {
    expect(day().findings.map((f) => `${f.rebootId}:${f.code}`)).toEqual([
      'x-failed:reboot-failed',
      'x-overcap:extension-count-above-cap',
      'x-overcap:extension-seconds-above-cap',
      'x-short:notice-below-policy',
      'h-violating:host-reboot-in-denied-window',
      'h-across:host-reboot-in-denied-window',
      'x-forced:forced-at-deadline',
      'x-at-from:forced-at-deadline',
      'x-crash:command-failed',
      'x-forced:command-timed-out',
    ]);
  });

  it('reports a forced reboot with its notice, recovery from the deadline and the timed-out command', () => {
    expect(row(day(), 'x-forced')).toMatchObject({
      kind: 'xpu',
      node: 'node-b',
      xpu: 'dpu0',
      status: 'completed',
      noticeSeconds: 300,
      extendedSeconds: 0,
      forced: true,
      recoverySeconds: 180,
      outstanding: ['migrate-workloads'],
      rack: 'r1',
      zone: 'z1',
      tenant: 't2',
      failedCommands: [{ id: 'c1', type: 'migrate-workloads', status: 'timed-out', agent: 'node-b' }],
    });
  });

  it('counts a reboot extended twice up to exactly the cap as compliant', () => {
    const r = row(day(), 'x-ext2');
    expect(r).toMatchObject({
      extendedSeconds: 1800,
      extensionsRequested: 2,
      extensionsGranted: 2,
      extensionsRefused: 0,
      extensionSecondsRequested: 2100,
      recoverySeconds: 240,
    });
    expect(r.findings).toEqual([]);
  });

  it('reports a refused extension with its reason', () => {
    const r = row(day(), 'x-refused');
    expect(r).toMatchObject({
      extensionsRequested: 2,
      extensionsGranted: 1,
      extensionsRefused: 1,
      extendedSeconds: 300,
      extensionSecondsRequested: 900,
    });
    expect(r.refusals).toEqual([{ at: t('13:06'), requested: 600, reason: 'past the notice phase' }]);
  });

  it('flags extensions above the count cap and above the seconds cap separately', () => {
    const f = row(day(), 'x-overcap').findings;
    expect(f.map((x) => [x.code, x.expected, x.actual])).toEqual([
      ['extension-count-above-cap', 3, 4],
      ['extension-seconds-above-cap', 1800, 2000],
    ]);
  });

  it('does not hold a crash to the notice policy, and measures its recovery from the reset', () => {
    const r = row(day(), 'x-crash');
    expect(r).toMatchObject({ mode: 'crash', noticeSeconds: 0, recoverySeconds: 300, wentDownAt: t('14:02'), recoveredAt: t('14:07') });
    expect(r.findings.map((x) => x.code)).toEqual(['command-failed']);
  });

  it('flags notice shorter than the policy', () => {
    expect(row(day(), 'x-short').findings).toMatchObject([
      { code: 'notice-below-policy', severity: 'high', category: 'policy', expected: 300, actual: 120 },
    ]);
  });

  it('reports a denied host reboot with its reason and no finding', () => {
    expect(row(day(), 'h-denied')).toMatchObject({
      status: 'denied',
      denyReason: 'xpu-rebooting: dpu0 reboot x-ok in progress',
      recoverySeconds: null,
      findings: [],
    });
  });

  it('flags a host reboot that went ahead while an xPU reboot of the node was active', () => {
    expect(row(day(), 'h-violating').findings).toMatchObject([
      { code: 'host-reboot-in-denied-window', severity: 'high', category: 'policy', relatedRebootId: 'x-forced' },
    ]);
    expect(row(day(), 'h-violating').recoverySeconds).toBe(240);
  });

  it('finds a denied-window overlap with an xPU reboot notified before the window', () => {
    expect(row(day(), 'h-across').findings).toMatchObject([{ code: 'host-reboot-in-denied-window', relatedRebootId: 'x-cut-start' }]);
  });

  it('keeps a reboot cut by the window end with its status at generation time', () => {
    const r = day();
    expect(row(r, 'x-cut-end')).toMatchObject({
      status: 'recovering',
      inProgress: true,
      crossesWindowEnd: true,
      recoverySeconds: null,
      recoveredAt: null,
    });
    expect(row(r, 'x-cut-end-done')).toMatchObject({
      status: 'completed',
      inProgress: false,
      crossesWindowEnd: true,
      recoverySeconds: 360,
    });
    expect(row(r, 'x-ok').crossesWindowEnd).toBe(false);
  });

  it('reports a failed reboot with no recovery', () => {
    expect(row(day(), 'x-failed')).toMatchObject({
      status: 'failed',
      recoverySeconds: null,
      findings: [{ code: 'reboot-failed', severity: 'high' }],
    });
  });

  it('totals the fleet', () => {
    expect(day().totals.overall).toEqual({
      count: 14,
      xpu: 11,
      host: 3,
      planned: 10,
      crash: 1,
      completed: 11,
      inProgress: 1,
      failed: 1,
      denied: 1,
      cancelled: 0,
      forced: 2,
      forcedShare: 2 / 11,
      medianNoticeSeconds: 300,
      medianRecoverySeconds: 180,
      p95RecoverySeconds: 360,
      extensionsGranted: 7,
      extensionsRefused: 1,
      extendedSeconds: 4100,
      failedCommands: 2,
      rebootsWithFindings: 8,
      policyViolations: 5,
    });
  });

  it('totals by rack, zone and tenant, unassigned ones under (none)', () => {
    const { byRack, byZone, byTenant, byKind } = day().totals;
    expect(byRack.map((g) => [g.key, g.count, g.xpu, g.forced, g.forcedShare])).toEqual([
      ['r1', 6, 4, 1, 0.25],
      ['r2', 4, 3, 0, 0],
      ['r3', 3, 3, 1, 1 / 3],
      ['r4', 1, 1, 0, 0],
    ]);
    expect(byZone.map((g) => [g.key, g.count])).toEqual([
      ['z1', 8],
      ['z2', 5],
      ['z3', 1],
    ]);
    expect(byTenant.map((g) => [g.key, g.count])).toEqual([
      ['(none)', 1],
      ['t1', 8],
      ['t2', 5],
    ]);
    expect(byKind.map((g) => [g.key, g.count, g.p95RecoverySeconds])).toEqual([
      ['host', 3, 240],
      ['xpu', 11, 360],
    ]);
  });

  it('matches the published schema, with the contract fields named exactly', () => {
    const r = day();
    expect(ComplianceReportSchema.parse(r)).toEqual(r);
    expect(Object.keys(r)).toEqual(expect.arrayContaining(['schemaVersion', 'from', 'to', 'reboots', 'totals']));
    expect(Object.keys(r.reboots[0]).slice(0, 9)).toEqual([
      'id',
      'kind',
      'node',
      'xpu',
      'status',
      'noticeSeconds',
      'extendedSeconds',
      'forced',
      'recoverySeconds',
    ]);
    expect(r).toMatchObject({
      schemaVersion: '1.1',
      from: '2024-05-01T00:00:00.000Z',
      to: '2024-05-02T00:00:00.000Z',
      generatedAt: '2024-05-02T06:00:00.000Z',
    });
  });

  it('keeps lambdas/core/report/schema.json in step with the zod schema (UPDATE_REPORT_SCHEMA=1 rewrites it)', () => {
    const path = new URL('../../lambdas/core/report/schema.json', import.meta.url);
    const generated = JSON.stringify(reportJsonSchema(), null, 2) + '\n';
    if (process.env.UPDATE_REPORT_SCHEMA === '1') writeFileSync(path, generated);
    expect(readFileSync(path, 'utf8')).toBe(generated);
  });

  it('renders the same report as JSON that parses back to it', () => {
    const r = day();
    const out = renderReport(r, 'json');
    expect(out.contentType).toBe('application/json; charset=utf-8');
    expect(JSON.parse(out.body)).toEqual(r);
  });
});

describe('window and policy edge cases', () => {
  it('gives an empty report with null statistics for zero reboots', () => {
    const r = computeComplianceReport([], { from: FROM, to: TO, generatedAt: GENERATED_AT });
    expect(r.reboots).toEqual([]);
    expect(r.findings).toEqual([]);
    expect(r.totals.overall).toMatchObject({ count: 0, forcedShare: null, medianNoticeSeconds: null, p95RecoverySeconds: null });
    expect(r.totals.byRack).toEqual([]);
  });

  it('refuses an empty or reversed window', () => {
    expect(() => computeComplianceReport([], { from: TO, to: FROM })).toThrow(InvalidReportWindow);
    expect(() => computeComplianceReport([], { from: FROM, to: FROM })).toThrow(InvalidReportWindow);
    expect(() => computeComplianceReport([], { from: new Date('nope'), to: TO })).toThrow(InvalidReportWindow);
  });

  it('uses the node policy it is given: no denied-window finding where the policy allows it, caps per node', () => {
    const lenient = { xpuReboot: { maxExtensions: 5, maxExtensionSeconds: 3000 }, hostReboot: { denyWhile: [] } };
    const r = computeComplianceReport(recordedDay(), {
      from: FROM,
      to: TO,
      generatedAt: GENERATED_AT,
      policy: (node) => (node === 'node-b' || node === 'node-g' ? lenient : undefined),
    });
    expect(row(r, 'h-violating').findings).toEqual([]);
    expect(row(r, 'x-overcap').findings).toEqual([]);
    expect(row(r, 'h-across').findings.map((f) => f.code)).toEqual(['host-reboot-in-denied-window']);
  });

  it('flags a host reboot during reprovisioning only when the policy denies it', () => {
    const reboots: Reboot[] = [
      hostReboot('h1', 'node-a', t('09:00'), { nextTenant: 't9', hostDownAt: t('09:00:10'), hostReadyAt: t('09:03'), endedAt: t('09:10') }),
      hostReboot('h2', 'node-a', t('09:05'), { hostDownAt: t('09:05:10'), hostReadyAt: t('09:08') }),
    ];
    const deny = (denyWhile: ('xpu-rebooting' | 'reprovisioning')[]) =>
      computeComplianceReport(reboots, {
        from: FROM,
        to: TO,
        generatedAt: GENERATED_AT,
        policy: { xpuReboot: { maxExtensions: 3, maxExtensionSeconds: 1800 }, hostReboot: { denyWhile } },
      });
    expect(row(deny(['reprovisioning']), 'h2').findings.map((f) => f.message)).toEqual([
      'host reboot proceeded at 2024-05-01T09:05:10.000Z while host reboot h1 of the node was active (policy denies host reboots while reprovisioning)',
    ]);
    expect(row(deny(['xpu-rebooting']), 'h2').findings).toEqual([]);
  });

  it('treats a still-active xPU reboot as holding the node until the report is generated', () => {
    const reboots = [
      xpuReboot('x', 'node-a', t('20:00'), { status: 'extended', deadline: t('+1 05:00') }),
      hostReboot('h', 'node-a', t('+1 01:00'), { hostDownAt: t('+1 01:00'), status: 'rebooting' }),
    ];
    const r = computeComplianceReport(reboots, { from: FROM, to: new Date('2024-05-03T00:00:00Z'), generatedAt: GENERATED_AT });
    expect(row(r, 'h').findings.map((f) => f.relatedRebootId)).toEqual(['x']);
  });

  it('counts an xPU that came back during the notice phase as recovered in zero seconds', () => {
    const r = computeComplianceReport(
      [xpuReboot('x', 'node-a', t('08:00'), { downAt: t('08:04'), readyAt: t('08:03'), endedAt: t('08:05') })],
      { from: FROM, to: TO },
    );
    expect(row(r, 'x').recoverySeconds).toBe(0);
  });
});

describe('percentiles', () => {
  it('uses the nearest rank', () => {
    expect(percentileNearestRank([], 50)).toBeNull();
    expect(percentileNearestRank([7], 95)).toBe(7);
    expect(percentileNearestRank([1, 2, 3, 4], 50)).toBe(2);
    expect(percentileNearestRank([1, 2, 3, 4, 5], 50)).toBe(3);
    expect(
      percentileNearestRank(
        Array.from({ length: 20 }, (_, i) => i + 1),
        95,
      ),
    ).toBe(19);
    expect(
      percentileNearestRank(
        Array.from({ length: 100 }, (_, i) => i + 1),
        95,
      ),
    ).toBe(95);
    expect(percentileNearestRank([1, 2, 3], 0)).toBe(1);
  });
});

describe('route query', () => {
  it('parses from, to and format, defaulting to json', () => {
    expect(parseReportQuery({ from: '2024-05-01T00:00:00Z', to: '2024-05-02' })).toEqual({ from: FROM, to: TO, format: 'json' });
    expect(parseReportQuery({ from: '2024-05-01T02:00:00+02:00', to: '2024-05-02', format: 'csv' }).from).toEqual(FROM);
  });

  it.each([
    [{ to: '2024-05-02' }],
    [{ from: 'yesterday', to: '2024-05-02' }],
    [{ from: '2024-05-01T00:00:00', to: '2024-05-02' }],
    [{ from: '2024-05-02', to: '2024-05-01' }],
    [{ from: '2024-05-01', to: '2024-05-02', format: 'pdf' }],
    [{ from: '2024-13-01', to: '2024-05-02' }],
  ])('rejects %o', (q) => {
    expect(() => parseReportQuery(q)).toThrow(InvalidReportQuery);
  });
});

// A small deterministic PRNG so the 5,000 reboots are the same on every run.
function mulberry32(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

describe('5,000 generated reboots', () => {
  const rnd = mulberry32(42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const from = new Date('2024-06-01T00:00:00Z');
  const to = new Date('2024-06-08T00:00:00Z');
  const reboots: Reboot[] = [];
  for (let i = 0; i < 5000; i++) {
    // Some fall outside the window on either side.
    const notifiedAt = new Date(from.getTime() - 86_400_000 + Math.floor(rnd() * 9 * 86_400_000)).toISOString();
    const node = `node-${Math.floor(rnd() * 400)}`;
    const place = { rack: `r${Math.floor(rnd() * 40)}`, zone: pick(['z1', 'z2', 'z3', undefined]), tenant: pick(['t1', 't2', 't3', 't4']) };
    if (rnd() < 0.2) {
      const down = addSeconds(notifiedAt, 5);
      const status = pick(['completed', 'completed', 'denied', 'failed'] as const);
      reboots.push(
        hostReboot(`h${i}`, node, notifiedAt, {
          ...place,
          status,
          ...(status === 'denied' ? { denyReason: 'xpu-rebooting' } : { hostDownAt: down }),
          ...(status === 'completed' ? { hostReadyAt: addSeconds(down, 60 + Math.floor(rnd() * 600)) } : {}),
        }),
      );
    } else {
      const notice = pick([300, 300, 300, 120, 600]);
      const forced = rnd() < 0.3;
      const deadline = addSeconds(notifiedAt, notice);
      const rebootingAt = forced ? deadline : addSeconds(notifiedAt, Math.floor(rnd() * notice));
      const recovered = rnd() < 0.9;
      reboots.push(
        xpuReboot(`x${i}`, node, notifiedAt, {
          ...place,
          mode: rnd() < 0.1 ? 'crash' : 'planned',
          noticeSeconds: notice,
          deadline,
          forced,
          rebootingAt,
          status: recovered ? 'completed' : pick(['failed', 'recovering'] as const),
          ...(recovered ? { readyAt: addSeconds(rebootingAt, 30 + Math.floor(rnd() * 900)) } : {}),
        }),
      );
    }
  }

  // The independent answer: straight from the records, without the report's code.
  const inWindow = reboots.filter((r) => Date.parse(r.notifiedAt) >= from.getTime() && Date.parse(r.notifiedAt) < to.getTime());
  const nearestRank = (values: number[], p: number) => {
    const s = [...values].sort((a, b) => a - b);
    return s.length ? s[Math.ceil((p * s.length) / 100) - 1] : null;
  };
  const recoveryOf = (r: Reboot) => {
    const a = r.kind === 'xpu' ? r.rebootingAt : r.hostDownAt;
    const b = r.kind === 'xpu' ? r.readyAt : r.hostReadyAt;
    return a && b ? (Date.parse(b) - Date.parse(a)) / 1000 : null;
  };
  const expectedTotals = (rs: Reboot[]) => {
    const xpu = rs.filter((r) => r.kind === 'xpu');
    const recoveries = rs.map(recoveryOf).filter((v): v is number => v !== null);
    return {
      count: rs.length,
      forced: rs.filter((r) => r.forced).length,
      forcedShare: xpu.length ? xpu.filter((r) => r.forced).length / xpu.length : null,
      medianNoticeSeconds: nearestRank(
        xpu.filter((r) => r.mode === 'planned').map((r) => r.noticeSeconds),
        50,
      ),
      p95RecoverySeconds: nearestRank(recoveries, 95),
      failed: rs.filter((r) => r.status === 'failed').length,
      denied: rs.filter((r) => r.status === 'denied').length,
    };
  };

  it('totals the fleet and each rack as a direct computation does', () => {
    const report = computeComplianceReport(reboots, { from, to, generatedAt: new Date('2024-06-09T00:00:00Z') });
    expect(inWindow.length).toBeGreaterThan(3500);
    expect(report.reboots).toHaveLength(inWindow.length);
    expect(report.totals.overall).toMatchObject(expectedTotals(inWindow));
    const racks = [...new Set(inWindow.map((r) => r.rack!))].sort();
    expect(report.totals.byRack.map((g) => g.key)).toEqual(racks);
    for (const g of report.totals.byRack) expect(g).toMatchObject(expectedTotals(inWindow.filter((r) => r.rack === g.key)));
    const noZone = report.totals.byZone.find((g) => g.key === '(none)')!;
    expect(noZone.count).toBe(inWindow.filter((r) => r.zone === undefined).length);
  });

  it('renders all three formats of it, one line or row per reboot', () => {
    const report = computeComplianceReport(reboots, { from, to, generatedAt: new Date('2024-06-09T00:00:00Z') });
    for (const format of ['json', 'csv', 'html'] as const) {
      const out = renderReport(report, format);
      expect(out.body.length).toBeGreaterThan(100_000);
      if (format === 'csv') expect(out.body.trim().split('\n')).toHaveLength(report.reboots.length + 1);
      if (format === 'json') expect(JSON.parse(out.body).reboots).toHaveLength(report.reboots.length);
    }
  });
});
