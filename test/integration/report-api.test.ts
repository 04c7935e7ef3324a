// The compliance report through the API and the local schedule, over reboots the pipeline really ran.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../local/stack.ts';
import { parseConfig } from '../../local/config.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { api, tempDir, waitFor } from '../support/stack.ts';
import { REPORT_SCHEMA_VERSION } from '../../lambdas/core/report/schema.ts';

const OPERATOR = 'operator-token-report';
const AGENT = 'agent-token-node-a';
const INVENTORY = `
policy:
  xpuReboot:
    noticeSeconds: 120
nodes:
  - id: node-a
    rack: r7
    zone: z2
    tenant: t9
    trusted: true
    agentToken: ${AGENT}
    xpus: [{ id: dpu0 }]
`;

let stack: Stack;
let dir: string;
const from = new Date(Date.now() - 3600_000).toISOString();
const to = new Date(Date.now() + 3600_000).toISOString();

async function answerAll(agent: string) {
  const cmds = (await api(stack.url, `/v1/agents/${agent}/commands?wait=0`, { token: AGENT })).json as Array<{ id: string }>;
  for (const c of cmds)
    await api(stack.url, `/v1/agents/${agent}/commands/${c.id}`, { token: AGENT, body: { status: 'succeeded', output: 'ok' } });
  return cmds.length;
}

beforeAll(async () => {
  dir = tempDir('report');
  writeFileSync(join(dir, 'nodes.yaml'), INVENTORY);
  stack = await startStack({
    config: parseConfig({
      PORT: '0',
      DATA_DIR: join(dir, 'data'),
      NODES_FILE: join(dir, 'nodes.yaml'),
      OPERATOR_TOKEN: OPERATOR,
      REPORT_INTERVAL_SECONDS: '1',
    }),
    logger: silentLogger,
  });
  // One reboot, run to completion with an extension on the way.
  await api(stack.url, '/v1/events', {
    token: AGENT,
    body: { id: 'r-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0', data: { reason: 'fw' } },
  });
  const reboot = await waitFor('reboot preparing', async () => {
    const r = (await api(stack.url, '/v1/reboots', { token: OPERATOR })).json.items[0];
    return r?.status === 'preparing' ? r : undefined;
  });
  expect(
    (await api(stack.url, `/v1/reboots/${reboot.id}/extensions`, { token: AGENT, body: { seconds: 60, reason: 'slow drain' } })).status,
  ).toBe(200);
  await waitFor('host commands answered', async () => (await answerAll('node-a')) > 0);
  await waitFor('proceed-reboot answered', async () => (await answerAll('node-a.dpu0')) > 0);
  await api(stack.url, '/v1/events', { token: AGENT, body: { id: 'r-2', type: 'xpu.ready', node: 'node-a', xpu: 'dpu0' } });
  // restore-pcie, then resume-workloads once it succeeded: answer each as it comes.
  await waitFor('completed, the host answering its recovery commands', async () => {
    await answerAll('node-a');
    return (await api(stack.url, `/v1/reboots/${reboot.id}`, { token: OPERATOR })).json.status === 'completed';
  });
});

afterAll(async () => {
  await stack?.close();
});

describe('compliance report over the pipeline', () => {
  it('JSON has the contract fields, with the notice and the extension the reboot really had', async () => {
    const res = await api(stack.url, `/v1/reports/compliance?from=${from}&to=${to}&format=json`, { token: OPERATOR });
    expect(res.status).toBe(200);
    expect(res.json.schemaVersion).toBe(REPORT_SCHEMA_VERSION);
    expect(res.json.from).toBe(new Date(from).toISOString());
    expect(res.json.reboots).toHaveLength(1);
    const row = res.json.reboots[0];
    expect(row).toMatchObject({
      kind: 'xpu',
      node: 'node-a',
      xpu: 'dpu0',
      status: 'completed',
      noticeSeconds: 120,
      extendedSeconds: 60,
      forced: false,
    });
    expect(typeof row.recoverySeconds).toBe('number');
    expect(res.json.totals.overall).toMatchObject({ count: 1, forced: 0 });
  });

  it('CSV has a header and one row per reboot; HTML is one self-contained page', async () => {
    const csv = await api(stack.url, `/v1/reports/compliance?from=${from}&to=${to}&format=csv`, { token: OPERATOR });
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    const lines = csv.text.trim().split(/\r?\n/);
    expect(lines[0].split(',').slice(0, 9)).toEqual([
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
    expect(lines).toHaveLength(2);
    const html = await api(stack.url, `/v1/reports/compliance?from=${from}&to=${to}&format=html`, { token: OPERATOR });
    expect(html.headers.get('content-type')).toMatch(/text\/html/);
    expect(html.text).toContain('<svg');
    expect(html.text).not.toMatch(/<script[^>]+src=|<link[^>]+href="http/);
  });

  it('is for the operator only, and a bad window is a 400 that changes nothing', async () => {
    expect((await api(stack.url, `/v1/reports/compliance?from=${from}&to=${to}`, { token: AGENT })).status).toBe(403);
    expect((await api(stack.url, `/v1/reports/compliance?from=${from}&to=${to}`)).status).toBe(401);
    const bad = await api(stack.url, `/v1/reports/compliance?from=${to}&to=${from}`, { token: OPERATOR });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe('InvalidReportQuery');
    expect((await api(stack.url, `/v1/reports/compliance?from=yesterday&to=${to}`, { token: OPERATOR })).status).toBe(400);
    expect((await api(stack.url, `/v1/reports/compliance?from=${from}&to=${to}&format=pdf`, { token: OPERATOR })).status).toBe(400);
  });

  it('the local schedule writes JSON and HTML reports under DATA_DIR/reports', async () => {
    const reports = join(dir, 'data', 'reports');
    const files = await waitFor(
      'scheduled report files',
      async () => {
        const names = existsSync(reports) ? readdirSync(reports).filter((f) => !f.startsWith('.')) : [];
        return names.some((f) => f.endsWith('.json')) && names.some((f) => f.endsWith('.html')) ? names : undefined;
      },
      10_000,
    );
    const json = JSON.parse(readFileSync(join(reports, files.find((f) => f.endsWith('.json'))!), 'utf8'));
    expect(json.schemaVersion).toBe(REPORT_SCHEMA_VERSION);
    expect(Array.isArray(json.reboots)).toBe(true);
  });
});
