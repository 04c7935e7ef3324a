// A second black-box audit of CONTRACT.md sections 1-6, driven as an outside acceptance check drives the
// product: `npm start` as a user runs it, and the HTTP API of one shared stack with bad input, retries and
// BMC clocks that are days off. Each test holds a statement the earlier audits (contract-audit,
// contract-conformance, api-contract, report-api) do not check, or check less than the contract says.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { parseConfig } from '../../local/config.ts';
import { type Stack, startStack } from '../../local/stack.ts';
import { api, childEnv, NODE, OPERATOR_TOKEN, rackPerNodeInventory, ROOT, startStackProcess, tempDir, waitFor } from '../support/stack.ts';

const OPERATOR = 'operator-token-audit-2';
const NODES = ['b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7'];
const INVENTORY = rackPerNodeInventory(NODES);

let stack: Stack;

beforeAll(async () => {
  const dir = tempDir('audit2');
  writeFileSync(join(dir, 'nodes.yaml'), INVENTORY);
  stack = await startStack({
    config: parseConfig({ PORT: '0', DATA_DIR: join(dir, 'data'), NODES_FILE: join(dir, 'nodes.yaml'), OPERATOR_TOKEN: OPERATOR }),
    logger: silentLogger,
  });
});

afterAll(async () => {
  await stack?.close();
});

const agent = (n: string) => `agent-token-${n}`;
const list = async (query: string, token = OPERATOR) => (await api(stack.url, `/v1/reboots?${query}`, { token })).json;
const pending = (n: string, id: string, data: Record<string, unknown> = {}, time?: string) =>
  api(stack.url, '/v1/events', {
    token: agent(n),
    body: { id, type: 'xpu.reboot.pending', node: n, xpu: 'dpu0', ...(time ? { time } : {}), data: { reason: 'audit', ...data } },
  });
/** The one reboot of node `n` once it is in its notice phase. */
const inNotice = (n: string) =>
  waitFor(`a reboot of ${n} in its notice phase`, async () => {
    const r = (await list(`node=${n}`)).items[0];
    return r?.status === 'preparing' ? r : undefined;
  });
/** POSTs `text` as a stream: no Content-Length, the way a chunked client sends it. */
async function streamed(path: string, token: string, text: string) {
  const body = new ReadableStream({
    start(c) {
      c.enqueue(new TextEncoder().encode(text));
      c.close();
    },
  });
  const res = await fetch(stack.url + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body,
    duplex: 'half',
  } as RequestInit);
  return { status: res.status, json: await res.json() };
}

describe('1: `npm start` as a user runs it', () => {
  /** `npm start` in the repository, with its own DATA_DIR and inventory; resolves at its ready line. */
  async function npmStart(dataDir: string, nodesFile: string) {
    const proc: ChildProcess = spawn('npm', ['start'], {
      cwd: ROOT,
      env: childEnv({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, NODES_FILE: nodesFile, OPERATOR_TOKEN }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const url = await waitFor('the ready line', async () => /ready at (http:\/\/\S+)/.exec(out)?.[1], 90_000);
    // The stack's own process (the DATA_DIR lock names it): it must stop, whatever npm does.
    const pid = Number(readFileSync(join(dataDir, 'stack.pid'), 'utf8'));
    return { proc, url, pid, exited, output: () => out };
  }
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it('SIGTERM or SIGINT to the npm process stops the stack itself cleanly, and what it accepted is not lost', async () => {
    const dir = tempDir('audit2-npm');
    const nodesFile = join(dir, 'nodes.yaml');
    writeFileSync(nodesFile, INVENTORY);
    const dataDir = join(dir, 'data');
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const run = await npmStart(dataDir, nodesFile);
      try {
        if (signal === 'SIGTERM') {
          const event = { id: 'npm-1', type: 'xpu.reboot.pending', node: 'b1', xpu: 'dpu0' };
          expect((await api(run.url, '/v1/events', { token: agent('b1'), body: event })).status).toBe(202);
        }
        run.proc.kill(signal);
        await run.exited;
        await waitFor(`the stack process ${run.pid} gone after ${signal} to npm`, async () => !alive(run.pid), 20_000);
        expect(run.output(), signal).toContain('stopped');
      } finally {
        // Only if it outlived npm (the deviation this test is about): ended by its own id.
        if (alive(run.pid)) process.kill(run.pid, 'SIGKILL');
      }
    }
    const again = await startStackProcess({ dataDir, nodesFile });
    try {
      const r = await waitFor('the reboot accepted before the SIGTERM', async () => {
        const items = (await api(again.url, '/v1/reboots?node=b1', { token: OPERATOR_TOKEN })).json.items;
        return items[0]?.status === 'preparing' ? items[0] : undefined;
      });
      expect(r).toMatchObject({ node: 'b1', xpu: 'dpu0', kind: 'xpu' });
    } finally {
      await again.stop();
    }
  });
});

describe('3: extensions', () => {
  it('a request beyond the remaining maxExtensionSeconds is trimmed (200, S < N), however large N is', async () => {
    expect((await pending('b1', 'b1-pending')).status).toBe(202);
    const r = await inNotice('b1');
    const asked = 30 * 24 * 3600; // a month: an agent that asks for "as long as you can give"
    const res = await api(stack.url, `/v1/reboots/${r.id}/extensions`, { token: agent('b1'), body: { seconds: asked, reason: 'drain' } });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toEqual({ granted: 600, deadline: new Date(Date.parse(r.deadline) + 600_000).toISOString() });
    // Nothing remains: 409, counted on the reboot.
    const none = await api(stack.url, `/v1/reboots/${r.id}/extensions`, { token: agent('b1'), body: { seconds: asked, reason: 'more' } });
    expect(none.status).toBe(409);
    expect(none.json).toEqual({ error: expect.any(String), message: expect.any(String) });
  });

  it('a repeated refused request with the same Idempotency-Key answers the same 409 and is counted once', async () => {
    expect((await pending('b2', 'b2-pending')).status).toBe(202);
    const r = await inNotice('b2');
    const ask = (key: string, seconds: number) =>
      fetch(`${stack.url}/v1/reboots/${r.id}/extensions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${agent('b2')}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ seconds, reason: 'x' }),
      }).then(async (res) => ({ status: res.status, body: await res.json() }));
    for (const key of ['k1', 'k2', 'k3']) expect((await ask(key, 10)).status).toBe(200);
    const first = await ask('k4', 10);
    expect(first.status).toBe(409);
    expect(await ask('k4', 10)).toEqual(first);
    expect(await ask('k4', 500)).toEqual(first);
    const stored = (await api(stack.url, `/v1/reboots/${r.id}`, { token: OPERATOR })).json;
    expect(stored.extensions).toHaveLength(3);
    expect(stored.history.filter((h: { phase: string }) => h.phase === 'extension-refused')).toHaveLength(1);
  });
});

describe('3: bodies at the 256 KiB limit', () => {
  it('exactly 256 KiB is read; one byte more is 413 also without Content-Length, on every body route, and changes nothing', async () => {
    const event = (pad: string) => JSON.stringify({ id: 'b3-big', type: 'xpu.reboot.pending', node: 'b3', xpu: 'dpu0', data: { pad } });
    const fill = 256 * 1024 - event('').length;
    expect(Buffer.byteLength(event('x'.repeat(fill)))).toBe(256 * 1024);
    const over = await streamed('/v1/events', agent('b3'), event('x'.repeat(fill + 1)));
    expect(over).toEqual({ status: 413, json: { error: expect.any(String), message: expect.any(String) } });
    const rf = JSON.stringify({ Events: [], pad: 'x'.repeat(256 * 1024) });
    expect((await streamed('/v1/events/redfish', 'bmc-token-b3', rf)).status).toBe(413);
    await new Promise((r) => setTimeout(r, 500));
    expect((await list('node=b3')).items).toEqual([]);

    const exact = await api(stack.url, '/v1/events', { token: agent('b3'), raw: event('x'.repeat(fill)) });
    expect(exact.status).toBe(202);
    const r = await inNotice('b3');
    const ext = JSON.stringify({ seconds: 10, reason: 'x'.repeat(256 * 1024) });
    expect((await streamed(`/v1/reboots/${r.id}/extensions`, agent('b3'), ext)).status).toBe(413);
    expect((await api(stack.url, `/v1/reboots/${r.id}`, { token: OPERATOR })).json.extensions).toEqual([]);
  });
});

describe('4: deadlines by the coordinator, however wrong the source clock', () => {
  it('a notice above the policy is capped at it, also from a BMC three days ahead and from a native event dated next week', async () => {
    const before = Date.now();
    const rf = await api(stack.url, '/v1/events/redfish', {
      token: 'bmc-token-b4',
      body: {
        Events: [
          {
            EventId: 'b4-1',
            EventTimestamp: new Date(before + 3 * 86_400_000).toISOString(),
            MessageId: 'XpuReboot.1.0.RebootPending',
            MessageArgs: ['86400', 'firmware'],
            OriginOfCondition: { '@odata.id': '/redfish/v1/Systems/Bluefield' },
          },
        ],
      },
    });
    expect(rf.json).toEqual({ accepted: 1, ignored: 0 });
    expect((await pending('b5', 'b5-pending', { noticeSeconds: '120' }, new Date(before + 7 * 86_400_000).toISOString())).status).toBe(202);
    const after = Date.now() + 5_000;
    for (const [n, notice] of [
      ['b4', 300],
      ['b5', 120],
    ] as const) {
      const r = await inNotice(n);
      expect(Date.parse(r.notifiedAt), n).toBeGreaterThanOrEqual(before);
      expect(Date.parse(r.notifiedAt), n).toBeLessThanOrEqual(after);
      expect(Date.parse(r.deadline) - Date.parse(r.notifiedAt), n).toBe(notice * 1000);
      // Notice-phase commands carry the reboot's deadline.
      const cmds = (await api(stack.url, `/v1/agents/${n}/commands?wait=0`, { token: agent(n) })).json;
      expect(cmds.map((c: { deadline: string }) => c.deadline)).toEqual([r.deadline, r.deadline]);
      for (const c of cmds) expect(Object.keys(c).sort()).toEqual(['args', 'deadline', 'id', 'node', 'rebootId', 'type', 'xpu']);
    }
  });

  it('a Redfish record without EventId delivered again (same content) counts as accepted and starts nothing', async () => {
    const body = {
      Events: [
        {
          EventTimestamp: '2019-01-01T00:00:00Z', // a BMC that lost its clock years ago
          MessageId: 'XpuReboot.1.7.RebootPending', // another registry version: same key
          MessageArgs: ['60', 'no id'],
          OriginOfCondition: '/redfish/v1/Systems/Bluefield',
        },
      ],
    };
    for (let i = 0; i < 3; i++)
      expect((await api(stack.url, '/v1/events/redfish?access_token=bmc-token-b6', { body })).json).toEqual({ accepted: 1, ignored: 0 });
    const r = await inNotice('b6');
    expect(Date.parse(r.deadline) - Date.parse(r.notifiedAt)).toBe(60_000);
    await new Promise((res) => setTimeout(res, 500));
    expect((await list('node=b6')).items).toHaveLength(1);
  });
});

describe('3: GET /v1/reboots filters and paging, and the report window', () => {
  it('status and node filters hold on every page, newest first, and the cursor neither repeats nor skips', async () => {
    await waitFor('the reboots of the tests before', async () => (await list('status=preparing')).items.length >= 3 || undefined);
    const all = (await list('status=preparing')).items;
    const seen: Array<{ id: string; status: string; notifiedAt: string }> = [];
    let next: string | null = null;
    do {
      const page: { items: typeof seen; next: string | null } = await list(
        `status=preparing&limit=2${next ? `&cursor=${encodeURIComponent(next)}` : ''}`,
      );
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items);
      next = page.next;
    } while (next);
    expect(seen.map((r) => r.id)).toEqual(all.map((r: { id: string }) => r.id));
    expect(seen.every((r) => r.status === 'preparing')).toBe(true);
    const times = seen.map((r) => Date.parse(r.notifiedAt));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    // An agent's listing with a status filter is its own node's only.
    const own = (await list('status=preparing', agent('b4'))).items;
    expect(own.map((r: { node: string }) => r.node)).toEqual(['b4']);
    expect((await list('status=completed', agent('b4'))).items).toEqual([]);
  });

  it('the report holds the reboots notified in [from, to): from is in, to is out; CSV quotes what needs it', async () => {
    expect((await pending('b7', 'b7-pending', { reason: 'a,"b"\nc' })).status).toBe(202);
    const r = await inNotice('b7');
    const at = Date.parse(r.notifiedAt);
    const report = async (from: number, to: number, format = 'json') =>
      api(stack.url, `/v1/reports/compliance?from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}&format=${format}`, {
        token: OPERATOR,
      });
    const from = await report(at, at + 1);
    expect(from.json.reboots.map((x: { id: string }) => x.id)).toEqual([r.id]);
    expect(from.json).toMatchObject({
      schemaVersion: expect.any(String),
      from: new Date(at).toISOString(),
      to: new Date(at + 1).toISOString(),
    });
    expect((await report(at - 60_000, at)).json.reboots.map((x: { id: string }) => x.id)).not.toContain(r.id);
    const csv = (await report(at, at + 1, 'csv')).text;
    expect(csv).toContain('"a,""b""\nc"');
  });

  it('a host reboot has every field of a reboot: xpu null, no deadline, and no extension (409)', async () => {
    const posted = await api(stack.url, '/v1/events', {
      token: agent('b1'),
      body: { id: 'b1-host', type: 'host.reboot.requested', node: 'b1', data: { method: 'shell' } },
    });
    expect(posted.status).toBe(202);
    const h = await waitFor('the host reboot', async () => (await list('node=b1')).items.find((x: { kind: string }) => x.kind === 'host'));
    const r = (await api(stack.url, `/v1/reboots/${h.id}`, { token: agent('b1') })).json;
    for (const key of ['id', 'kind', 'node', 'xpu', 'status', 'deadline', 'extensions', 'history']) expect(r, key).toHaveProperty(key);
    expect(r).toMatchObject({ kind: 'host', node: 'b1', xpu: null, extensions: [] });
    const ext = await api(stack.url, `/v1/reboots/${h.id}/extensions`, { token: agent('b1'), body: { seconds: 10, reason: 'x' } });
    expect(ext.status).toBe(409);
  });
});

describe('2: unknown inventory keys', () => {
  const VALID = `policy:
  xpuReboot:
    noticeSeconds: 300
nodes:
  - id: node-a
    trusted: true
    agentToken: agent-token-node-a
    xpus:
      - id: dpu0
        persistentPower: false
`;
  it('anywhere in the file (policy, an xPU, the top level; YAML or JSON) stop the start and name file, line and key', () => {
    const dir = tempDir('audit2-inv');
    const cases: Array<[string, string, number, string]> = [
      ['policy.yaml', VALID.replace('    noticeSeconds: 300\n', '    noticeSeconds: 300\n    noticeSecs: 60\n'), 4, 'noticeSecs'],
      [
        'xpu.yaml',
        VALID.replace('        persistentPower: false\n', '        persistentPower: false\n        colour: red\n'),
        11,
        'colour',
      ],
      ['top.yaml', `${VALID}budget: 1\n`, 11, 'budget'],
      [
        'nodes.json',
        '{"nodes": [\n  {"id": "node-a", "agentToken": "agent-token-node-a",\n   "xpus": [{"id": "dpu0", "slot": 1}]}\n]}\n',
        3,
        'slot',
      ],
    ];
    for (const [name, text, line, key] of cases) {
      const file = join(dir, name);
      writeFileSync(file, text);
      const res = spawnSync(NODE, [join(ROOT, 'local/main.ts')], {
        env: childEnv({ PORT: '0', DATA_DIR: join(dir, `data-${name}`), NODES_FILE: file, OPERATOR_TOKEN }),
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(res.status, name).not.toBe(0);
      expect(res.stdout, name).not.toContain('ready');
      expect(res.stderr, name).toContain(`${file}:${line}:`);
      expect(res.stderr, name).toContain(`'${key}'`);
    }
  });
});

describe('3: bad input is a clear 4xx', () => {
  it('an id longer than any the API hands out is 404 in the error shape (not 500) on every route that takes one', async () => {
    for (const x of ['x'.repeat(1100), 'x'.repeat(5000), 'é'.repeat(700)]) {
      const id = encodeURIComponent(x);
      const cases: Array<[string, string, string, unknown?]> = [
        ['GET', `/v1/reboots/${id}`, OPERATOR],
        ['POST', `/v1/reboots/${id}/extensions`, agent('b1'), { seconds: 5, reason: 'x' }],
        ['POST', `/v1/reboots/${id}/cancel`, OPERATOR, { reason: 'x' }],
        ['POST', `/v1/reboots/${id}/force`, OPERATOR, { reason: 'x' }],
        ['POST', `/v1/agents/b1/commands/${id}`, agent('b1'), { status: 'succeeded', output: '' }],
        ['DELETE', `/v1/holds/${id}`, OPERATOR],
        ['GET', `/v1/rollouts/${id}`, OPERATOR],
        ['POST', `/v1/rollouts/${id}/cancel`, OPERATOR, { reason: 'x' }],
        ['GET', `/v1/nodes/${id}`, OPERATOR],
      ];
      for (const [method, path, token, body] of cases) {
        const res = await api(stack.url, path, { method, token, body });
        expect(res.status, `${method} ${path.slice(0, 30)}… (${x.length} chars)`).toBe(404);
        expect(res.json).toEqual({ error: 'NotFound', message: expect.any(String) });
      }
    }
  });
});
