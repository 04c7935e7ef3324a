// The compliance report's HTML page in real headless Chromium: charts render, nothing is fetched, a screenshot is kept.
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeComplianceReport, renderReport } from '../../lambdas/core/report/index.ts';
import type { Reboot } from '../../lambdas/core/types.ts';
import { launchChromium } from '../support/chromium.ts';
import { FROM, GENERATED_AT, TO, addSeconds, hostReboot, recordedDay, xpuReboot } from '../unit/report-fixtures.ts';

const OUT_DIR = fileURLToPath(new URL('../../.test-tmp/', import.meta.url));

let browser: Browser;

// The first run on a machine may install Chromium with apt.
beforeAll(async () => {
  browser = await launchChromium();
}, 20 * 60_000);
afterAll(async () => {
  await browser?.close();
});

/** Opens the page with every request refused and recorded, and any console error recorded. */
async function open(html: string): Promise<{ page: Page; requests: string[]; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await context.route('**/*', (route) => {
    requests.push(route.request().url());
    return route.abort('blockedbyclient');
  });
  await page.setContent(html, { waitUntil: 'load' });
  return { page, requests, errors };
}

async function chartBox(page: Page, name: string) {
  const box = await page.locator(`svg[data-chart="${name}"]`).boundingBox();
  expect(box, `${name} is laid out`).not.toBeNull();
  expect(box!.width).toBeGreaterThan(200);
  expect(box!.height).toBeGreaterThan(100);
  return box!;
}

const inside = (inner: { x: number; y: number; width: number; height: number }, outer: typeof inner) =>
  inner.x >= outer.x - 1 &&
  inner.y >= outer.y - 1 &&
  inner.x + inner.width <= outer.x + outer.width + 1 &&
  inner.y + inner.height <= outer.y + outer.height + 1;

describe('compliance report page in Chromium', () => {
  it('renders the three charts with the expected bars and points, fetching nothing', async () => {
    const report = computeComplianceReport(recordedDay(), { from: FROM, to: TO, generatedAt: GENERATED_AT });
    const { page, requests, errors } = await open(renderReport(report, 'html').body);

    const hist = await chartBox(page, 'notice-histogram');
    const bars = page.locator('svg[data-chart="notice-histogram"] rect.bar');
    expect(await bars.count()).toBe(11);
    for (const i of [4, 10]) {
      const b = (await bars.nth(i).boundingBox())!;
      expect(b.height).toBeGreaterThan(0);
      expect(inside(b, hist)).toBe(true);
    }
    // The 9 reboots at the policy's notice stand 9 times as tall as the one with short notice.
    const tall = (await bars.nth(10).boundingBox())!.height;
    const short = (await bars.nth(4).boundingBox())!.height;
    expect(tall / short).toBeCloseTo(9, 0);
    // The stylesheet applied: bars are the report's blue, not SVG's default black.
    expect(await bars.nth(10).evaluate((el) => el.ownerDocument.defaultView!.getComputedStyle(el).fill)).toBe('rgb(47, 111, 219)');

    const rack = await chartBox(page, 'forced-by-rack');
    const rackBars = page.locator('svg[data-chart="forced-by-rack"] rect.bar');
    expect(await rackBars.count()).toBe(4);
    const widths = await Promise.all([0, 1].map(async (i) => (await rackBars.nth(i).boundingBox())!.width));
    expect(widths[0]).toBeGreaterThan(widths[1]); // r3 (1/3 forced) above r1 (1/4)
    expect(inside((await rackBars.nth(0).boundingBox())!, rack)).toBe(true);

    const scatter = await chartBox(page, 'recovery-scatter');
    const points = page.locator('svg[data-chart="recovery-scatter"] circle.point');
    expect(await points.count()).toBe(11);
    for (let i = 0; i < 11; i++) {
      const p = (await points.nth(i).boundingBox())!;
      expect(p.width).toBeGreaterThan(0);
      expect(inside(p, scatter)).toBe(true);
    }

    expect(await page.locator('table.findings tbody tr').count()).toBe(10);
    expect(await page.locator('#reboots tbody tr').count()).toBe(14);
    expect(await page.locator('table.findings tbody tr').first().textContent()).toContain('reboot-failed');

    mkdirSync(OUT_DIR, { recursive: true });
    await page.screenshot({ path: `${OUT_DIR}report.png`, fullPage: true });
    expect(requests).toEqual([]);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('shows an empty window plainly, with empty-state charts that still take their place', async () => {
    const report = computeComplianceReport([], { from: FROM, to: TO, generatedAt: GENERATED_AT });
    const { page, requests, errors } = await open(renderReport(report, 'html').body);
    await expect(page.locator('#empty-window').textContent()).resolves.toBe('No reboots in this window.');
    for (const name of ['notice-histogram', 'forced-by-rack', 'recovery-scatter']) {
      await chartBox(page, name);
      expect(await page.locator(`svg[data-chart="${name}"] text.empty`).textContent()).toBe('No data in this window');
    }
    expect(await page.locator('svg .bar, svg .point').count()).toBe(0);
    mkdirSync(OUT_DIR, { recursive: true });
    await page.screenshot({ path: `${OUT_DIR}report-empty.png`, fullPage: true });
    expect(requests).toEqual([]);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('lays out a week of a 2,000-reboot fleet with every point inside its chart', async () => {
    const reboots: Reboot[] = [];
    const week = 7 * 86_400_000;
    for (let i = 0; i < 2000; i++) {
      const at = new Date(FROM.getTime() + Math.floor((i * week) / 2000)).toISOString();
      const node = `node-${i % 240}`;
      const place = { rack: `rack-${String(i % 24).padStart(2, '0')}`, zone: `zone-${i % 3}`, tenant: `tenant-${i % 5}` };
      if (i % 9 === 0) {
        reboots.push(
          hostReboot(`h${i}`, node, at, { ...place, hostDownAt: addSeconds(at, 10), hostReadyAt: addSeconds(at, 200 + (i % 13) * 40) }),
        );
        continue;
      }
      const notice = [300, 300, 300, 240, 180, 600][i % 6];
      const forced = (i % 24) % 5 === 0 && i % 3 === 0;
      const down = forced ? addSeconds(at, notice) : addSeconds(at, Math.floor(notice * ((i % 10) / 10)));
      reboots.push(
        xpuReboot(`x${i}`, node, at, {
          ...place,
          noticeSeconds: notice,
          forced,
          rebootingAt: down,
          readyAt: addSeconds(down, 60 + ((i * 37) % 500)),
        }),
      );
    }
    const report = computeComplianceReport(reboots, {
      from: FROM,
      to: new Date(FROM.getTime() + week),
      generatedAt: new Date(FROM.getTime() + week),
    });
    const { page, requests } = await open(renderReport(report, 'html').body);
    const scatter = await chartBox(page, 'recovery-scatter');
    const points = await page.locator('svg[data-chart="recovery-scatter"] circle.point').evaluateAll((els) =>
      els.map((el) => {
        const r = el.getBoundingClientRect();
        return { x: r.x, y: r.y, width: r.width, height: r.height };
      }),
    );
    expect(points).toHaveLength(2000);
    // Both boxes are relative to the viewport, taken without scrolling in between.
    for (const p of points) expect(inside(p, scatter)).toBe(true);
    expect(await page.locator('svg[data-chart="forced-by-rack"] rect.bar').count()).toBe(24);
    await page.locator('#charts').screenshot({ path: `${OUT_DIR}report-fleet-charts.png` });
    expect(requests).toEqual([]);
    await page.context().close();
  });
});
