// The report's rollouts section: which rollouts count (started in the window), what each did, how it renders.
import { describe, expect, it } from 'vitest';
import { computeComplianceReport, ComplianceReportSchema, renderReport } from '../../lambdas/core/report/index.ts';
import type { Rollout } from '../../lambdas/core/rollout.ts';

const FROM = new Date('2030-01-01T00:00:00Z');
const TO = new Date('2030-01-02T00:00:00Z');

function rollout(id: string, createdAt: string, items: Rollout['items'], status: Rollout['status'] = 'running'): Rollout {
  return {
    id,
    status,
    selector: { rack: 'r1' },
    maxUnavailable: 1,
    maxFailures: 1,
    reason: 'fw <24.10>',
    createdAt,
    items,
    history: [],
    version: 1,
  };
}

const paused = rollout(
  'ro-2',
  '2030-01-01T06:00:00.000Z',
  [
    { node: 'a', xpu: 'dpu0', state: 'done', rebootId: 'xr-a' },
    { node: 'b', xpu: 'dpu0', state: 'failed', rebootId: 'xr-b', reason: 'reboot failed' },
    { node: 'c', xpu: 'dpu0', state: 'pending' },
  ],
  'paused',
);

describe('rollouts in the compliance report', () => {
  const report = computeComplianceReport([], {
    from: FROM,
    to: TO,
    generatedAt: TO,
    rollouts: [
      rollout('ro-before', '2029-12-31T23:59:59.999Z', []),
      paused,
      rollout('ro-1', '2030-01-01T01:00:00.000Z', [{ node: 'a', xpu: 'dpu0', state: 'sent' }]),
      rollout('ro-at-to', '2030-01-02T00:00:00.000Z', []),
    ],
  });

  it('lists the rollouts started in [from, to), oldest first, with counts and failures', () => {
    expect(report.rollouts.map((r) => r.id)).toEqual(['ro-1', 'ro-2']);
    expect(report.rollouts[1]).toEqual({
      id: 'ro-2',
      status: 'paused',
      reason: 'fw <24.10>',
      selector: { rack: 'r1' },
      createdAt: '2030-01-01T06:00:00.000Z',
      endedAt: null,
      maxUnavailable: 1,
      maxFailures: 1,
      planned: 3,
      done: 1,
      failed: 1,
      notDone: 1,
      rebootIds: ['xr-a', 'xr-b'],
      failures: [{ node: 'b', xpu: 'dpu0', rebootId: 'xr-b', reason: 'reboot failed' }],
    });
    expect(ComplianceReportSchema.safeParse(report).success).toBe(true);
  });

  it('renders a section in the HTML page, escaped', () => {
    const html = renderReport(report, 'html').body;
    expect(html).toContain('<section id="rollouts"><h2>Rollouts (2)</h2>');
    expect(html).toContain('fw &lt;24.10&gt;');
    expect(html).toContain('b / dpu0: reboot failed');
    expect(renderReport(computeComplianceReport([], { from: FROM, to: TO }), 'html').body).toContain(
      'No rollout was started in this window.',
    );
  });
});
