// GET /ui in real headless Chromium against a real stack: sign in with the operator token, see a running reboot, a rollout, the timeline.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../support/chromium.ts';
import { api, OPERATOR_TOKEN, ROOT, startStackProcess, tempDir, waitFor, writeInventory, type RunningStack } from '../support/stack.ts';

const OUT_DIR = join(ROOT, '.test-tmp');
const INVENTORY = `policy:
  budgets: [{per: rack, maxUnavailable: 2}]
nodes:
${['a', 'b', 'c']
  .map((n) => `  - id: node-${n}\n    rack: r1\n    zone: z1\n    agentToken: agent-token-${n}\n    xpus: [{ id: dpu0 }]\n`)
  .join('')}${['d', 'e']
  .map((n) => `  - id: node-${n}\n    rack: r2\n    zone: z1\n    agentToken: agent-token-${n}\n    xpus: [{ id: dpu0 }, { id: dpu1 }]\n`)
  .join('')}`;

let stack: RunningStack;
let browser: Browser;
let rebootId: string;
let rolloutId: string;

beforeAll(async () => {
  const dir = tempDir('fleet-ui');
  [stack, browser] = await Promise.all([
    startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) }),
    launchChromium(),
  ]);
  await api(stack.url, '/v1/events', {
    token: 'agent-token-b',
    body: { id: 'ui-1', type: 'xpu.reboot.pending', node: 'node-b', xpu: 'dpu0', data: { reason: 'firmware' } },
  });
  rebootId = await waitFor('the reboot', async () => (await api(stack.url, '/v1/reboots', { token: OPERATOR_TOKEN })).json.items[0]?.id);
  await api(stack.url, '/v1/holds', { token: OPERATOR_TOKEN, body: { selector: { node: 'node-c' }, reason: 'disk swap' } });
  rolloutId = (
    await api(stack.url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { rack: 'r2' }, maxUnavailable: 1, reason: 'BlueField firmware 24.10' },
    })
  ).json.id;
}, 20 * 60_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

describe('the fleet page', () => {
  it('asks for the token, then shows the running reboot, its node by rack, the rollout and the timeline; fetches nothing elsewhere', async () => {
    const context = await browser.newContext({ viewport: { width: 1360, height: 1000 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    const origin = new URL(stack.url).origin;
    const foreign: string[] = [];
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(origin)) return route.continue();
      foreign.push(url);
      return route.abort('blockedbyclient');
    });

    await page.goto(`${stack.url}/ui`);
    await expect.poll(() => page.locator('#login').isVisible()).toBe(true);
    expect(await page.locator('#app').isVisible()).toBe(false);

    // A wrong token is refused and the sign-in stays.
    await page.fill('#tok', 'not-the-token');
    await page.click('#login button');
    await expect.poll(() => page.locator('#loginErr').textContent()).toMatch(/refused \(401\)/);

    await page.fill('#tok', OPERATOR_TOKEN);
    await page.click('#login button');
    const row = page.locator(`#inflight tr[data-reboot="${rebootId}"]`);
    await row.waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toMatch(/node-b\/dpu0.*(notified|preparing)/);
    expect(await page.locator('[data-node="node-b"]').getAttribute('data-state')).toBe('xpu-rebooting');
    expect(await page.locator('[data-node="node-a"]').getAttribute('data-state')).toBe('idle');
    expect(await page.locator('[data-rack]').evaluateAll((els) => els.map((e) => e.getAttribute('data-rack')))).toEqual(['r1', 'r2']);
    expect(await page.evaluate(() => sessionStorage.getItem('rebootctl.operatorToken'))).toBe(OPERATOR_TOKEN);

    // Budgets with their use, and the hold on node-c (its tile dashed).
    await expect.poll(() => page.locator('[data-budget="rack:r1"]').textContent(), { timeout: 15_000 }).toMatch(/1\/2$/);
    expect(await page.locator('#holds').textContent()).toContain('node=node-c');
    expect(await page.locator('[data-node="node-c"]').getAttribute('class')).toContain('held');

    // The rollout shows with its progress; its first xPU is asked (in flight).
    const ro = page.locator(`[data-rollout="${rolloutId}"]`);
    await expect.poll(async () => ro.textContent(), { timeout: 15_000 }).toMatch(/0\/4 done, 1 in flight/);
    expect(await ro.textContent()).toContain('BlueField firmware 24.10');

    // The timeline draws the running reboot as a bar inside the chart.
    const bar = page.locator(`#timeline rect[data-reboot="${rebootId}"]`);
    const box = await bar.boundingBox();
    const chart = await page.locator('#timeline').boundingBox();
    expect(box!.width).toBeGreaterThan(2);
    expect(box!.x + box!.width).toBeLessThanOrEqual(chart!.x + chart!.width + 1);

    // Live: a new reboot shows without reloading the page.
    await api(stack.url, '/v1/events', {
      token: 'agent-token-a',
      body: { id: 'ui-2', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0', data: { reason: 'fw' } },
    });
    await expect.poll(() => page.locator('[data-node="node-a"]').getAttribute('data-state'), { timeout: 15_000 }).toBe('xpu-rebooting');

    mkdirSync(OUT_DIR, { recursive: true });
    await page.screenshot({ path: join(OUT_DIR, 'fleet-ui.png'), fullPage: true });
    expect(foreign).toEqual([]);
    // The one 401 is the wrong token above (Chromium logs refused fetches to the console).
    const unexpected = errors.filter((e) => !/status of 401/.test(e));
    expect(unexpected, unexpected.join('\n')).toEqual([]);
    expect(errors).toHaveLength(1);
    await context.close();
  });

  it('serves the page without a token, with a CSP that allows no other origin', async () => {
    const res = await fetch(`${stack.url}/ui`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("connect-src 'self'");
    const html = await res.text();
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=/);
  });
});
