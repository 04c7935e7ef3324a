// CSV rendering of the compliance report: RFC 4180 quoting, formula-injection safety, and a round trip through a parser.
import { describe, expect, it } from 'vitest';
import { computeComplianceReport, csvField, renderReport, CSV_COLUMNS } from '../../lambdas/core/report/index.ts';
import { FROM, GENERATED_AT, TO, parseCsv, recordedDay, t, xpuReboot } from './report-fixtures.ts';

describe('report CSV', () => {
  it('has a header with the contract columns first and one row per reboot', () => {
    const report = computeComplianceReport(recordedDay(), { from: FROM, to: TO, generatedAt: GENERATED_AT });
    const out = renderReport(report, 'csv');
    expect(out.contentType).toBe('text/csv; charset=utf-8; header=present');
    const rows = parseCsv(out.body);
    expect(rows[0].slice(0, 9)).toEqual([
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
    expect(rows).toHaveLength(report.reboots.length + 1);
    for (const r of rows) expect(r).toHaveLength(CSV_COLUMNS.length);
    const byId = Object.fromEntries(rows.slice(1).map((r) => [r[0], Object.fromEntries(rows[0].map((h, i) => [h, r[i]]))]));
    expect(byId['x-forced']).toMatchObject({
      kind: 'xpu',
      node: 'node-b',
      xpu: 'dpu0',
      status: 'completed',
      noticeSeconds: '300',
      extendedSeconds: '0',
      forced: 'true',
      recoverySeconds: '180',
      failedCommands: 'migrate-workloads:timed-out',
      findings: 'forced-at-deadline; command-timed-out',
      worstSeverity: 'medium',
    });
    expect(byId['h-denied']).toMatchObject({ xpu: '', recoverySeconds: '', denyReason: 'xpu-rebooting: dpu0 reboot x-ok in progress' });
    expect(rows[1][0]).toBe('x-failed');
  });

  it('is just the header for an empty window', () => {
    const report = computeComplianceReport([], { from: FROM, to: TO });
    expect(parseCsv(renderReport(report, 'csv').body)).toEqual([CSV_COLUMNS.map(([h]) => h)]);
  });

  it('quotes commas, quotes and line breaks per RFC 4180', () => {
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('cr\r\nlf')).toBe('"cr\r\nlf"');
    expect(csvField('plain')).toBe('plain');
    expect(csvField(null)).toBe('');
    expect(csvField(false)).toBe('false');
  });

  it('neutralises cells a spreadsheet would run as a formula, but not plain numbers', () => {
    expect(csvField('=HYPERLINK("http://evil","x")')).toBe(`"'=HYPERLINK(""http://evil"",""x"")"`);
    expect(csvField('+cmd|calc')).toBe("'+cmd|calc");
    expect(csvField('-2+3')).toBe("'-2+3");
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvField('\tTAB')).toBe("'\tTAB");
    expect(csvField('-12')).toBe('-12');
    expect(csvField('+1.5e3')).toBe('+1.5e3');
    expect(csvField(-3)).toBe('-3');
  });

  it('keeps hostile node ids and reasons in their cells', () => {
    const evil = xpuReboot('=1+1', 'node-a', t('09:00'), {
      node: 'n,"1"\r\nx',
      reason: '@evil',
      refusals: [{ at: t('09:01'), requested: 10, reason: '-bad, "quoted"\nline' }],
      rebootingAt: t('09:05'),
      readyAt: t('09:06'),
    });
    const report = computeComplianceReport([evil], { from: FROM, to: TO });
    const [header, row] = parseCsv(renderReport(report, 'csv').body);
    const cell = (name: string) => row[header.indexOf(name)];
    expect(cell('id')).toBe("'=1+1");
    expect(cell('node')).toBe('n,"1"\r\nx');
    expect(cell('reason')).toBe("'@evil");
    expect(cell('refusalReasons')).toBe(`'-bad, "quoted"\nline`);
  });
});
