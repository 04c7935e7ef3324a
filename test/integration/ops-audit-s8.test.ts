// Acceptance audit (s8) of the operator surface, from the outside: the compliance report (window, columns,
// CSV, totals, findings, bad queries, the schedule across kill -9), the OpenAPI document against what the
// routes answer, the CLI's messages and exit codes, and /ui. One stack for the file.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FINDING_CODES } from '../../lambdas/core/report/schema.ts';
import { API_ROUTES } from '../../lambdas/handlers/routes.ts';
import {
  api,
  childEnv,
  freePort,
  NODE,
  OPERATOR_TOKEN,
  ROOT,
  startStackProcess,
  tempDir,
  waitFor,
  waitForReboot,
  writeInventory,
  type RunningStack,
} from '../support/stack.ts';

const WINDOW_SECONDS = 2;
const DAY = 24 * 3600_000;
const INVENTORY = `
policy:
  xpuReboot: { noticeSeconds: 300, maxExtensionSeconds: 600, maxExtensions: 1 }
nodes:
  - { id: node-a, rack: r1, zone: z1, tenant: t1, trusted: true, bmcToken: bmc-a, agentToken: agent-a, xpus: [{ id: dpu0 }] }
  - { id: node-b, rack: r2, zone: z1, tenant: t2, trusted: true, bmcToken: bmc-b, agentToken: agent-b, xpus: [{ id: dpu0 }] }
  - { id: node-d, rack: r4, zone: z2, tenant: t1, trusted: true, bmcToken: bmc-d, agentToken: agent-d, xpus: [{ id: dpu0 }] }
  - { id: node-c, rack: r3, zone: z2, tenant: t1, trusted: true, bmcToken: bmc-c, agentToken: agent-c, xpus: [{ id: dpu0 }, { id: dpu1 }, { id: dpu2 }, { id: dpu3 }, { id: dpu4 }, { id: dpu5 }] }
`;
const REASON = 'fw 2.1, "urgent"\nsecond line';

let dir: string;
let nodesFile: string;
let stack: RunningStack;
let url: string;
let planned: any; // node-a: one extension granted, two refused, then forced by the operator
let unannounced: any; // node-b: an xpu.down that belongs to no reboot

const report = (q: string, token = OPERATOR_TOKEN) => api(url, `/v1/reports/compliance?${q}`, { token });
const iso = (ms: number) => new Date(ms).toISOString();
const window = (from: number, to: number, format = 'json') => `from=${iso(from)}&to=${iso(to)}&format=${format}`;

function start() {
  return startStackProcess({ dataDir: join(dir, 'data'), nodesFile, env: { REPORT_INTERVAL_SECONDS: String(WINDOW_SECONDS) } });
}

function rebootctl(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(NODE, [join(ROOT, 'cli/rebootctl.js'), ...args], { cwd: ROOT, env: childEnv(env), timeout: 60_000 }, (err, stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

/** RFC 4180: quoted fields may hold commas, doubled quotes and line breaks; records end with CRLF. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted && ch === '"' && text[i + 1] === '"') {
      field += '"';
      i++;
    } else if (quoted && ch === '"') quoted = false;
    else if (quoted) field += ch;
    else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += ch;
  }
  expect(field === '' && row.length === 0, 'the last record ends with CRLF').toBe(true);
  return rows;
}

beforeAll(async () => {
  dir = tempDir('ops-audit-s8');
  nodesFile = writeInventory(dir, INVENTORY);
  stack = await start();
  url = stack.url;

  // A planned reboot from an xPU whose clock is 10 days behind, with a reason a CSV must quote.
  const tenDaysAgo = iso(Date.now() - 10 * DAY);
  const ev = { id: 'a-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0', time: tenDaysAgo, data: { reason: REASON } };
  expect((await api(url, '/v1/events', { token: 'agent-a', body: ev })).status).toBe(202);
  const id = await waitFor(
    'the planned reboot',
    async () => (await api(url, '/v1/reboots?node=node-a', { token: OPERATOR_TOKEN })).json.items[0]?.id,
  );
  await waitForReboot(url, id, (r) => r.status === 'preparing', 'preparing');
  const ext = (reason: string) => api(url, `/v1/reboots/${id}/extensions`, { token: 'agent-a', body: { seconds: 60, reason } });
  expect((await ext('drain')).status).toBe(200);
  expect((await ext('more')).status).toBe(409);
  expect((await ext('=still more')).status).toBe(409);
  expect((await api(url, `/v1/reboots/${id}/force`, { token: OPERATOR_TOKEN, body: { reason: 'now' } })).status).toBe(200);
  planned = await waitForReboot(url, id, (r) => r.forced === true, 'forced');

  const down = { id: 'b-1', type: 'xpu.down', node: 'node-b', xpu: 'dpu0' };
  expect((await api(url, '/v1/events', { token: 'agent-b', body: down })).status).toBe(202);
  unannounced = await waitFor(
    'the unannounced reboot',
    async () => (await api(url, '/v1/reboots?node=node-b', { token: OPERATOR_TOKEN })).json.items[0],
  );
}, 180_000);

afterAll(async () => {
  await stack?.stop('SIGTERM');
});

describe('the report window [from, to) of reboots notified in it, by the coordinator clock', () => {
  it('dates a notice from a clock 10 days behind by its receipt; from is in, to is out, to the millisecond', async () => {
    const t = Date.parse(planned.notifiedAt);
    expect(Math.abs(t - Date.now())).toBeLessThan(DAY); // the receipt, not the xPU's 10-days-old time
    const ids = async (q: string) => ((await report(q)).json.reboots as any[]).map((r) => r.id);
    expect(await ids(window(t, t + 1))).toContain(planned.id);
    expect(await ids(window(t - 3600_000, t))).not.toContain(planned.id);
    expect(await ids(window(t + 1, t + 3600_000))).not.toContain(planned.id);
    expect(await ids(window(t - 11 * DAY, t - 9 * DAY))).toEqual([]);
  });

  it('a reboot still open is in with its status now, inProgress and crossing the window end', async () => {
    const t = Date.parse(unannounced.notifiedAt);
    const row = (await report(window(t, t + 1))).json.reboots.find((r: any) => r.id === unannounced.id);
    expect(row).toMatchObject({
      status: unannounced.status,
      inProgress: true,
      crossesWindowEnd: true,
      endedAt: null,
      recoverySeconds: null,
    });
  });
});

describe('the report: findings, refusals, totals', () => {
  let json: any;
  beforeAll(async () => {
    const res = await report(window(Date.now() - 3600_000, Date.now() + 3600_000));
    expect(res.status).toBe(200);
    json = res.json;
  });

  it('finds the unannounced reboot (high, policy) and the forced one, and counts the refused extensions', () => {
    const b = json.reboots.find((r: any) => r.id === unannounced.id);
    expect(b.findings).toContainEqual(expect.objectContaining({ code: 'unannounced-reboot', severity: 'high', category: 'policy' }));
    const a = json.reboots.find((r: any) => r.id === planned.id);
    expect(a).toMatchObject({
      kind: 'xpu',
      node: 'node-a',
      xpu: 'dpu0',
      forced: true,
      noticeSeconds: 300,
      extendedSeconds: 60,
      extensionsGranted: 1,
      extensionsRefused: 2,
      extensionsRequested: 3,
      extensionSecondsRequested: 180,
      reason: REASON,
    });
    expect(a.refusals).toHaveLength(2);
    expect(a.findings.map((f: any) => f.code)).toContain('forced-at-deadline');
    // The highest severity first: the unannounced reboot leads.
    expect(json.reboots[0].id).toBe(unannounced.id);
  });

  it('totals agree with the rows, and findings[] is every row finding', () => {
    const rows: any[] = json.reboots;
    const o = json.totals.overall;
    const count = (f: (r: any) => boolean) => rows.filter(f).length;
    const sum = (f: (r: any) => number) => rows.reduce((n, r) => n + f(r), 0);
    expect(o).toMatchObject({
      count: rows.length,
      xpu: count((r) => r.kind === 'xpu'),
      host: count((r) => r.kind === 'host'),
      forced: count((r) => r.forced),
      inProgress: count((r) => r.inProgress),
      completed: count((r) => r.status === 'completed'),
      extensionsGranted: sum((r) => r.extensionsGranted),
      extensionsRefused: sum((r) => r.extensionsRefused),
      extendedSeconds: sum((r) => r.extendedSeconds),
      failedCommands: sum((r) => r.failedCommands.length),
      rebootsWithFindings: count((r) => r.findings.length > 0),
      policyViolations: sum((r) => r.findings.filter((f: any) => f.category === 'policy').length),
    });
    expect(o.extensionsRefused).toBe(2);
    expect(json.findings).toHaveLength(sum((r) => r.findings.length));
    for (const group of ['byKind', 'byRack', 'byZone', 'byTenant'])
      expect(
        json.totals[group].reduce((n: number, g: any) => n + g.count, 0),
        group,
      ).toBe(rows.length);
  });

  it('docs/report-schema.md names every field the JSON carries and every finding code', () => {
    const doc = readFileSync(join(ROOT, 'docs/report-schema.md'), 'utf8');
    const documented = new Set([...doc.matchAll(/`([A-Za-z0-9-]+)`/g)].map((m) => m[1]));
    for (const m of doc.matchAll(/`[[{]([^`]*)[}\]]`/g)) for (const k of m[1].split(/[,{}\s]+/)) documented.add(k);
    const keys = new Set<string>();
    for (const k of Object.keys(json)) keys.add(k);
    for (const r of json.reboots) for (const k of Object.keys(r)) keys.add(`row.${k}`);
    for (const k of Object.keys(json.totals.overall)) keys.add(`totals.${k}`);
    for (const f of json.findings) for (const k of Object.keys(f)) keys.add(`finding.${k}`);
    const missing = [...keys].filter((k) => !documented.has(k.split('.').pop()!));
    expect(missing, 'fields in the JSON that the schema doc does not name').toEqual([]);
    const findingsTable = doc.slice(doc.indexOf('## Findings'), doc.indexOf('## Totals'));
    expect(FINDING_CODES.filter((c) => !findingsTable.includes(`\`${c}\``))).toEqual([]);
  });

  it('CSV: the documented header, RFC 4180 quoting of commas, quotes and newlines, the same values as the JSON', async () => {
    const csv = await report(window(Date.now() - 3600_000, Date.now() + 3600_000, 'csv'));
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const [header, ...records] = parseCsv(csv.text);
    const doc = readFileSync(join(ROOT, 'docs/report-schema.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## CSV'), doc.indexOf('RFC 4180:'));
    const columns = section
      .slice(section.indexOf('Columns:'), section.indexOf('Lists are joined'))
      .match(/`[^`]*,[^`]*`/g)!
      .map((s) => s.slice(1, -1).replace(/\s+/g, ''))
      .join(',')
      .split(',')
      .filter(Boolean);
    expect(header).toEqual(columns);
    expect(records).toHaveLength(json.reboots.length);
    const col = (name: string) => header.indexOf(name);
    const cell = (v: unknown) => (v === null ? '' : String(v));
    for (const [i, row] of json.reboots.entries()) {
      for (const name of ['id', 'kind', 'node', 'xpu', 'status', 'noticeSeconds', 'extendedSeconds', 'forced', 'recoverySeconds'])
        expect(records[i][col(name)], `${row.id} ${name}`).toBe(cell(row[name]));
    }
    const a = records.find((r) => r[0] === planned.id)!;
    expect(a[col('reason')]).toBe(REASON);
    expect(a[col('extensionsRefused')]).toBe('2');
    expect(records.find((r) => r[0] === unannounced.id)![col('findings')]).toContain('unannounced-reboot');
  });
});

describe('the report: a bad query is 400 InvalidReportQuery and names what is wrong', () => {
  it.each([
    ['from=2026-02-30&to=2026-03-05', 'from'],
    ['from=2026-01-01&to=2026-13-01', 'to'],
    ['from=2026-04-31T00:00:00Z&to=2026-05-02', 'from'],
    ['to=2026-05-02', 'from'],
    ['from=2026-05-01', 'to'],
    ['from=2026-05-01T00:00:00&to=2026-05-02', 'from'],
    ['from=2026-05-02&to=2026-05-01', 'before'],
    ['from=2026-05-01&to=2026-05-01T00:00:00Z', 'before'],
    ['from=2026-05-01&to=2026-05-02&format=pdf', 'format'],
    ['from=yesterday&to=2026-05-02', 'from'],
  ])('%s', async (q, named) => {
    const res = await report(q);
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ error: 'InvalidReportQuery' });
    expect(res.json.message).toContain(named);
  });

  it('a leap day is a date; the report of a day holds that day', async () => {
    const res = await report('from=2028-02-29&to=2028-03-01');
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ from: '2028-02-29T00:00:00.000Z', to: '2028-03-01T00:00:00.000Z' });
  });
});

describe('GET /openapi.json against what the app serves and answers', () => {
  let doc: any;
  beforeAll(async () => {
    doc = (await api(url, '/openapi.json')).json;
  });
  const opsOf = (d: any) =>
    Object.entries(d.paths).flatMap(([path, item]: [string, any]) =>
      Object.entries(item)
        .filter(([m]) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
        .map(([m, op]) => ({ method: m.toUpperCase(), path, op: op as any })),
    );

  it('lists exactly the routes the router serves, each with its path parameters', () => {
    const listed = opsOf(doc).map((o) => `${o.method} ${o.path}`);
    expect(listed.sort()).toEqual(API_ROUTES.map((r) => `${r.method} ${r.path}`).sort());
    for (const { method, path, op } of opsOf(doc)) {
      const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      const declared = [...(op.parameters ?? []), ...(doc.paths[path].parameters ?? [])]
        .filter((p: any) => p.in === 'path')
        .map((p: any) => p.name);
      expect(declared.sort(), `${method} ${path}`).toEqual(params.sort());
    }
  });

  it('every route answers, without a token, with the operator token and with an agent token, on unknown ids, only codes it documents', async () => {
    const undocumented: string[] = [];
    for (const { method, path, op } of opsOf(doc)) {
      if (path === '/v1/agents/{agentId}/commands') continue; // a long poll; its 401/403/404 are covered elsewhere
      const concrete = path.replace(/\{(\w+)\}/g, (_, n) => (n === 'agentId' ? 'node-zz' : `zz-${n}`));
      const body = method === 'POST' ? '{}' : undefined;
      for (const token of [undefined, OPERATOR_TOKEN, 'agent-a']) {
        if (path === '/v1/dlq/redrive' && token === OPERATOR_TOKEN) continue; // a DLQ route: the 413 test covers its body
        const res = await api(url, concrete, { method, token, raw: body });
        if (!(String(res.status) in op.responses) && !('default' in op.responses))
          undocumented.push(`${method} ${concrete} ${token ?? 'no token'} → ${res.status} ${res.text.slice(0, 80)}`);
      }
    }
    expect(undocumented).toEqual([]);
  });
  it('a body over 256 KiB is 413 on every operator body route, the DLQ redrive too, and each route documents it', async () => {
    const big = JSON.stringify({ ids: Array.from({ length: 900 }, (_, i) => `m-${i}-${'x'.repeat(300)}`) });
    expect(big.length).toBeGreaterThan(256 * 1024);
    for (const path of ['/v1/events', '/v1/holds', '/v1/rollouts', '/v1/dlq/redrive']) {
      const res = await api(url, path, { token: OPERATOR_TOKEN, raw: big });
      expect(res.status, path).toBe(413);
      expect(res.json?.error, path).toBe('PayloadTooLarge');
      expect(Object.keys(doc.paths[path].post.responses), path).toContain('413');
    }
  });
});

describe('GET /ui', () => {
  it('is served without a token, self-contained, asks for the token, and calls only routes that exist', async () => {
    const res = await fetch(`${url}/ui`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    const html = await res.text();
    expect(html.match(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/gi) ?? []).toEqual([]);
    expect(html).toMatch(/<input[^>]+type="password"/);
    const called = [...html.matchAll(/api\('([^']+)'\)/g)].map((m) => m[1]);
    expect(called.length).toBeGreaterThan(0);
    const gets = API_ROUTES.filter((r) => r.method === 'GET').map((r) => new RegExp(`^${r.path.replace(/\{\w+\}/g, '[^/]+')}$`));
    for (const rel of called) {
      const path = new URL(rel, `${url}/ui`).pathname;
      expect(
        gets.some((re) => re.test(path)),
        path,
      ).toBe(true);
      expect((await api(url, path, { token: OPERATOR_TOKEN })).status, path).toBe(200);
    }
  });
});

describe('rebootctl: messages and exit codes', () => {
  let closed: string;
  beforeAll(async () => {
    closed = `http://127.0.0.1:${await freePort()}`;
  });
  const win = ['--from', '2026-01-01', '--to', '2027-01-01'];

  it('report: prints the same report; --out writes it; a bad token is 1 naming 401', async () => {
    const csv = await rebootctl(['report', '--server', url, '--token', OPERATOR_TOKEN, ...win, '--format', 'csv']);
    expect(csv.code).toBe(0);
    expect(csv.stdout).toContain(planned.id);
    const out = join(dir, 'r.json');
    const written = await rebootctl(['report', '--server', url, '--token', OPERATOR_TOKEN, ...win, '--out', out]);
    expect(written.code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).reboots.map((r: any) => r.id)).toContain(planned.id);
    const bad = await rebootctl(['report', '--server', url, '--token', 'nope', ...win]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/401.*Unauthorized/);
  });

  it('report: a command line that does not parse is 2, missing options too, and nothing is asked', async () => {
    const help = await rebootctl(['report', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Exit status: 0 .*; 1 .*;\s+2 /s);
    for (const args of [
      ['--server', url, '--token', OPERATOR_TOKEN, '--to', '2027-01-01'],
      ['--server', url, '--token', OPERATOR_TOKEN, '--from', '2026-02-30', '--to', '2027-01-01'],
      ['--server', url, '--token', OPERATOR_TOKEN, ...win, '--format', 'pdf'],
      ['--server', url, '--token', OPERATOR_TOKEN, ...win, '--bogus'],
    ]) {
      const res = await rebootctl(['report', ...args]);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stderr.trim(), args.join(' ')).not.toBe('');
    }
  });

  it('an unreachable server: every operator command says it cannot reach it, and why; exit 1', async () => {
    for (const args of [
      ['report', '--server', closed, '--token', 't', ...win],
      ['reboots', 'list', '--server', closed, '--token', 't'],
      ['reboots', 'show', 'xr-1', '--server', closed, '--token', 't'],
      ['dlq', 'list', '--server', closed, '--token', 't'],
      ['rollout', 'status', 'ro-1', '--server', closed, '--token', 't'],
      ['rollout', 'cancel', 'ro-1', '--server', closed, '--token', 't'],
      ['status', '--server', closed, '--token', 't'],
    ]) {
      const res = await rebootctl(args);
      expect(res.code, args.join(' ')).toBe(1);
      expect(res.stderr, args.join(' ')).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    }
    // The edge kit's commands retry until --wait runs out (exit 4), then say what the last try met.
    for (const args of [
      ['announce', '--server', closed, '--agent', 'node-a.dpu0', '--token', 't', '--reason', 'x', '--wait', '1'],
      ['host-reboot', '--server', closed, '--agent', 'node-a', '--token', 't', '--wait', '1'],
    ]) {
      const res = await rebootctl(args);
      expect(res.code, args.join(' ')).toBe(4);
      expect(res.stderr, args.join(' ')).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    }
  });

  it('a bad token: 1 and the 401 in the message; an unknown id: 1 and the 404', async () => {
    for (const args of [
      ['reboots', 'list', '--server', url, '--token', 'nope'],
      ['dlq', 'list', '--server', url, '--token', 'nope'],
      ['rollout', 'status', 'ro-1', '--server', url, '--token', 'nope'],
    ]) {
      const res = await rebootctl(args);
      expect(res.code, args.join(' ')).toBe(1);
      expect(res.stderr, args.join(' ')).toMatch(/401/);
    }
    const show = await rebootctl(['reboots', 'show', 'xr-nope', '--server', url, '--token', OPERATOR_TOKEN]);
    expect(show.code).toBe(1);
    expect(show.stderr).toMatch(/404/);
  });

  it('reboots list/show and inventory check read what the API holds and what the file says', async () => {
    const list = await rebootctl(['reboots', 'list', '--server', url, '--token', OPERATOR_TOKEN, '--node', 'node-a']);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(planned.id);
    // The columns line up under their header, however long the ids.
    const [head, ...rows] = list.stdout.trim().split('\n');
    const kindAt = head.indexOf('KIND');
    for (const row of rows.filter((r) => /^[xh]r-/.test(r))) expect(row.slice(kindAt, kindAt + 5), row).toMatch(/^(xpu |host )/);
    const show = await rebootctl(['reboots', 'show', planned.id, '--server', url, '--token', OPERATOR_TOKEN, '--json']);
    expect(JSON.parse(show.stdout)).toMatchObject({ id: planned.id, forced: true });
    const ok = await rebootctl(['inventory', 'check', '--nodes-file', nodesFile]);
    expect(ok.code).toBe(0);
    const badFile = join(dir, 'bad.yaml');
    writeFileSync(badFile, INVENTORY.replace('trusted: true, bmcToken: bmc-b', 'trusted: true, colour: red, bmcToken: bmc-b'));
    const bad = await rebootctl(['inventory', 'check', '--nodes-file', badFile]);
    expect(bad.code).toBe(1);
    expect(bad.stderr + bad.stdout).toMatch(/colour/);
    // push to a table that is not there (the stack's own DynamoDB): the message names it.
    const dynamo = /dynamodb endpoint (http:\S+)/.exec(stack.output())![1];
    const push = await rebootctl(['inventory', 'push', '--table', 'no-such-table', '--endpoint', dynamo, '--nodes-file', nodesFile], {
      OPERATOR_TOKEN: 'x',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    });
    expect(push.code).toBe(1);
    expect(push.stderr).toMatch(/table no-such-table not found/);
  });
});

describe('a dependency that stops answering (SIGSTOP, not dead)', () => {
  it('the API answers 503 Unavailable with Retry-After instead of waiting for ever, and the same request works after', async () => {
    const pid = Number(readFileSync(join(dir, 'data', 'sqs', 'fauxqs.pid'), 'utf8').trim());
    const ev = { id: 'stopped-1', type: 'xpu.reboot.pending', node: 'node-d', xpu: 'dpu0', data: { reason: 'queue stopped' } };
    process.kill(pid, 'SIGSTOP');
    try {
      expect((await api(url, '/healthz')).json).toMatchObject({ ok: false, unavailable: ['queue'] });
      const res = await api(url, '/v1/events', { token: 'agent-d', body: ev });
      expect(res.status).toBe(503);
      expect(res.json.error).toBe('Unavailable');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitFor('healthz 200 again', async () => (await api(url, '/healthz')).status === 200);
    expect((await api(url, '/v1/events', { token: 'agent-d', body: ev })).status).toBe(202);
  }, 120_000);
});

describe('the scheduled reports across a kill -9, with events in flight', () => {
  const reportsDir = () => join(dir, 'data', 'reports');
  const written = () =>
    existsSync(reportsDir())
      ? readdirSync(reportsDir())
          .filter((f) => /^compliance-.*\.json$/.test(f))
          .sort()
      : [];

  it('every window is written once: no gap for the time the stack was down, no window twice; in-flight events are processed', async () => {
    await waitFor('a scheduled report', async () => written().length > 0, 20_000);
    // Events in flight when the stack dies: the kill comes as soon as the first is accepted, the others
    // still on their way (accepted or not); every one that was answered 202 must have its reboot after the restart.
    const xpus = ['dpu0', 'dpu1', 'dpu2', 'dpu3', 'dpu4', 'dpu5'];
    let killed: Promise<unknown> | undefined;
    const posts = xpus.map(async (xpu) => {
      const ev = { id: `c-${xpu}`, type: 'xpu.reboot.pending', node: 'node-c', xpu, data: { reason: 'in flight' } };
      const res = await api(url, '/v1/events', { token: 'agent-c', body: ev }).catch(() => ({ status: 0 }));
      killed ??= stack.stop('SIGKILL');
      return res.status === 202 ? xpu : null;
    });
    const accepted = (await Promise.all(posts)).filter((x): x is string => x !== null);
    await killed;
    expect(accepted.length).toBeGreaterThan(0);
    const before = written();
    // Down for several windows.
    await new Promise((r) => setTimeout(r, 3 * WINDOW_SECONDS * 1000));
    stack = await start();
    url = stack.url;
    const restartedAt = Date.now();
    const items = await waitFor(
      'the accepted events processed after the restart',
      async () => {
        const page = (await api(url, '/v1/reboots?node=node-c', { token: OPERATOR_TOKEN })).json;
        const got = new Set(page.items.map((r: any) => r.xpu));
        return accepted.every((x) => got.has(x)) ? page.items : undefined;
      },
      20_000,
    );
    const perXpu = items.map((r: any) => r.xpu);
    expect(perXpu.length, 'one reboot per xPU').toBe(new Set(perXpu).size);
    const names = await waitFor(
      'a report of a window after the restart',
      async () => {
        const all = written();
        const last = all.at(-1)!;
        const json = JSON.parse(readFileSync(join(reportsDir(), last), 'utf8'));
        return Date.parse(json.to) > restartedAt ? all : undefined;
      },
      20_000,
    );
    expect(names.length).toBeGreaterThan(before.length);
    const windows = names.map((n) => {
      const j = JSON.parse(readFileSync(join(reportsDir(), n), 'utf8'));
      expect(existsSync(join(reportsDir(), n.replace(/\.json$/, '.html'))), n).toBe(true);
      return { from: Date.parse(j.from), to: Date.parse(j.to), ids: (j.reboots as any[]).map((r) => r.id) };
    });
    for (let i = 1; i < windows.length; i++) {
      expect(windows[i].from, `window ${i} starts where ${i - 1} ended`).toBe(windows[i - 1].to);
    }
    const ids = windows.flatMap((w) => w.ids);
    expect(ids.length, 'no reboot in two windows').toBe(new Set(ids).size);
    // Also the reboots of the events the killed stack had accepted but not processed: dated before the
    // kill, recorded after the restart, in the report of the window they were accepted in.
    for (const id of [planned.id, ...items.map((r: any) => r.id)]) expect(ids, id).toContain(id);
  }, 120_000);
});
