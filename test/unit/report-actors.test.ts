// Who extended, forced and cancelled (contract 7.2): the report reads it from the history's `by`.
import { describe, expect, it } from 'vitest';
import { computeComplianceReport, renderReport } from '../../lambdas/core/report/index.ts';
import { FROM, TO, GENERATED_AT, parseCsv, t, xpuReboot } from './report-fixtures.ts';

describe('report: who did what', () => {
  const withBy = xpuReboot('x-by', 'node-a', t('10:00'), {
    forced: true,
    history: [
      { at: t('10:00'), phase: 'notified', detail: 'notice', by: 'bmc:node-a' },
      { at: t('10:01'), phase: 'extended', detail: 'granted 60s', by: 'agent:node-a' },
      { at: t('10:02'), phase: 'extended', detail: 'granted 60s', by: 'agent:node-a' },
      { at: t('10:09'), phase: 'forced', detail: 'deadline reached', by: 'coordinator' },
    ],
  });
  const cancelled = xpuReboot('x-cancel', 'node-b', t('11:00'), {
    status: 'cancelled',
    history: [{ at: t('11:05'), phase: 'cancelled', detail: 'cancelled', by: 'operator:alice' }],
  });
  const without = xpuReboot('x-old', 'node-c', t('12:00'), { history: [{ at: t('12:00'), phase: 'notified', detail: 'notice' }] });
  const report = computeComplianceReport([withBy, cancelled, without], { from: FROM, to: TO, generatedAt: GENERATED_AT });
  const row = (id: string) => report.reboots.find((r) => r.id === id)!;

  it('lists who extended, forced and cancelled in JSON, and says nothing for a history without `by`', () => {
    expect(row('x-by').by).toEqual({ extended: ['agent:node-a', 'agent:node-a'], forced: 'coordinator', cancelled: null });
    expect(row('x-cancel').by).toEqual({ extended: [], forced: null, cancelled: 'operator:alice' });
    expect(row('x-old').by).toBeUndefined();
  });

  it('has extendedBy, forcedBy and cancelledBy columns in CSV', () => {
    const [header, ...rows] = parseCsv(renderReport(report, 'csv').body);
    const get = (id: string, col: string) => rows.find((r) => r[0] === id)![header.indexOf(col)];
    expect(get('x-by', 'extendedBy')).toBe('agent:node-a; agent:node-a');
    expect(get('x-by', 'forcedBy')).toBe('coordinator');
    expect(get('x-cancel', 'cancelledBy')).toBe('operator:alice');
    expect(get('x-old', 'forcedBy')).toBe('');
  });
});

describe('report HTML: who did what', () => {
  it('names who extended, forced and cancelled beside those cells', () => {
    const r1 = xpuReboot('x-by', 'node-a', t('10:00'), {
      forced: true,
      extensions: [{ at: t('10:01'), requested: 60, granted: 60, reason: 'drain', deadline: t('10:06') }],
      history: [
        { at: t('10:01'), phase: 'extended', detail: 'granted 60s', by: 'agent:node-a' },
        { at: t('10:09'), phase: 'forced', detail: 'deadline reached', by: 'coordinator' },
      ],
    });
    const r2 = xpuReboot('x-cancel', 'node-b', t('11:00'), {
      status: 'cancelled',
      history: [{ at: t('11:05'), phase: 'cancelled', detail: 'x', by: 'operator:alice' }],
    });
    const html = renderReport(computeComplianceReport([r1, r2], { from: FROM, to: TO, generatedAt: GENERATED_AT }), 'html').body;
    expect(html).toContain('<b>forced</b> <span class="muted">by coordinator</span>');
    expect(html).toContain('(+1m 00s) <span class="muted">by agent:node-a</span>');
    expect(html).toContain('cancelled <span class="muted">by operator:alice</span>');
  });
});
