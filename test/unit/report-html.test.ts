// The report's HTML page as text: self-contained, escaped, in the reading order, with an empty state.
import { describe, expect, it } from 'vitest';
import { computeComplianceReport, renderReport } from '../../lambdas/core/report/index.ts';
import { FROM, GENERATED_AT, TO, hostReboot, recordedDay, t, xpuReboot } from './report-fixtures.ts';

const page = (reboots = recordedDay()) =>
  renderReport(computeComplianceReport(reboots, { from: FROM, to: TO, generatedAt: GENERATED_AT }), 'html');

describe('report HTML', () => {
  it('is one page that loads nothing: no scripts, links, images or fonts from anywhere', () => {
    const { contentType, body } = page();
    expect(contentType).toBe('text/html; charset=utf-8');
    expect(body.startsWith('<!doctype html>')).toBe(true);
    expect(body).not.toMatch(/<script|<link|<img|<iframe|<object|@import|url\(|src=|href="[^#]/i);
    // The only URL is the SVG namespace, which is a name, not a fetch.
    expect(body.match(/https?:\/\/[^"\s<]+/g)).toEqual([
      'http://www.w3.org/2000/svg',
      'http://www.w3.org/2000/svg',
      'http://www.w3.org/2000/svg',
    ]);
    expect(body).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;`);
  });

  it('reads in order: summary, findings, charts, totals, denials, then every reboot', () => {
    const { body } = page();
    const at = (id: string) => body.indexOf(`id="${id}"`);
    const order = ['summary', 'findings', 'charts', 'totals', 'denials', 'reboots'].map(at);
    expect(order.every((x) => x > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(body).toContain('Policy findings (10)');
    expect(body).toContain('xpu-rebooting: dpu0 reboot x-ok in progress');
  });

  it('escapes node ids, reasons and rack names', () => {
    const hostile = [
      xpuReboot('<b>id</b>', 'node-a', t('09:00'), {
        node: '<script>alert(1)</script>',
        xpu: '"><img src=x onerror=alert(1)>',
        rack: '</svg><script>x()</script>',
        forced: true,
        rebootingAt: t('09:05'),
        readyAt: t('09:06'),
      }),
      hostReboot('h', 'node-b', t('09:01'), { status: 'denied', denyReason: `it's <i>denied</i> & "quoted"` }),
    ];
    const { body } = page(hostile);
    expect(body).not.toContain('<script');
    expect(body).not.toContain('<img');
    expect(body).not.toContain('<i>denied');
    expect(body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(body).toContain('it&#39;s &lt;i&gt;denied&lt;/i&gt; &amp; &quot;quoted&quot;');
    expect(body).toContain('&lt;/svg&gt;&lt;script&gt;x()&lt;/script&gt;');
    expect(body).toContain('&lt;b&gt;id&lt;/b&gt;');
  });

  it('says so plainly when the window has no reboots, and still draws empty charts', () => {
    const { body } = page([]);
    expect(body).toContain('No reboots in this window.');
    expect(body.match(/data-empty="true"/g)).toHaveLength(3);
    expect(body).toContain('No data in this window');
    expect(body).not.toContain('class="bar');
    expect(body).not.toContain('class="point');
  });

  it('draws one histogram bar per notice bin, one bar per rack and one point per recovered reboot', () => {
    const { body } = page();
    const chart = (name: string) =>
      body.slice(body.indexOf(`data-chart="${name}"`), body.indexOf('</svg>', body.indexOf(`data-chart="${name}"`)));
    // Planned notices 120 and 300 (x9): 30 s bins from 0 to 300 are 11 bins.
    const bars = [...chart('notice-histogram').matchAll(/class="bar" data-count="(\d+)"/g)].map((m) => Number(m[1]));
    expect(bars).toHaveLength(11);
    expect(bars[4]).toBe(1);
    expect(bars[10]).toBe(9);
    expect(bars.reduce((a, b) => a + b, 0)).toBe(10);
    expect(chart('forced-by-rack').match(/<rect class="bar/g)).toHaveLength(4);
    expect(chart('recovery-scatter').match(/<circle class="point /g)).toHaveLength(11);
  });

  it('renders 10,000 reboots, one point each, and caps the rack bars', () => {
    const reboots = Array.from({ length: 10_000 }, (_, i) =>
      xpuReboot(`x${i}`, `node-${i % 500}`, new Date(FROM.getTime() + i * 8000).toISOString(), {
        rack: `r${i % 60}`,
        forced: i % 7 === 0,
        rebootingAt: new Date(FROM.getTime() + i * 8000 + 300_000).toISOString(),
        readyAt: new Date(FROM.getTime() + i * 8000 + 300_000 + (i % 900) * 1000).toISOString(),
      }),
    );
    const report = computeComplianceReport(reboots, { from: FROM, to: new Date(FROM.getTime() + 2 * 86_400_000) });
    // How fast this renders is measured by `npm run bench`, not here.
    const { body } = renderReport(report, 'html');
    expect(body.match(/<circle class="point /g)).toHaveLength(10_000);
    // Only the worst 30 of 60 racks get a bar; the caption says so.
    expect(body).toContain('worst 30 of 60 racks');
  });
});
