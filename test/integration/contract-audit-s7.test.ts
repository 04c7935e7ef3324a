// Black-box audit of CONTRACT.md section 7 through one real local stack, the way an outside acceptance check
// drives it: the HTTP API, Redfish payloads written here, fake agents over the real routes, disorder.
// Only statements the earlier audits (contract-audit, contract-conformance, fleet-safety, participants) do not check.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NODE,
  OPERATOR_TOKEN,
  ROOT,
  api,
  childEnv,
  startStackProcess,
  tempDir,
  waitFor,
  writeInventory,
  type RunningStack,
  waitForReboot,
} from '../support/stack.ts';

const BMC = '/redfish/v1/Systems/Bluefield';
const INVENTORY = `
policy:
  xpuReboot:
    noticeSeconds: 120
    maxExtensionSeconds: 600
    heartbeatSeconds: 30
    recoverySeconds: 30
    commandSeconds: 20
  budgets:
    - { per: rack, maxUnavailable: 1 }
nodes:
  - { id: r1, rack: ra, trusted: true, bmcToken: bmc-token-r1, agentToken: agent-token-r1, redfishSystem: /redfish/v1/Systems/system, xpus: [{ id: dpu0, redfishSystem: ${BMC} }] }
  - { id: q1, rack: rq, trusted: true, agentToken: agent-token-q1, xpus: [{ id: dpu0 }] }
  - { id: l1, rack: rl, agentToken: agent-token-l1, policy: { xpuReboot: { noticeSeconds: 1, recoverySeconds: 2 } }, xpus: [{ id: dpu0 }] }
  - { id: x1, rack: rx, trusted: true, agentToken: agent-token-x1, xpus: [{ id: dpu0 }] }
  - { id: h1, rack: rh, agentToken: agent-token-h1, xpus: [{ id: dpu0 }] }
  - { id: o1, rack: ro, agentToken: agent-token-o1, xpus: [{ id: dpu0 }] }
  - { id: o2, rack: ro, agentToken: agent-token-o2, xpus: [{ id: dpu0 }] }
  - { id: r2, rack: rb, bmcToken: bmc-token-r2, agentToken: agent-token-r2, xpus: [{ id: dpu0, redfishSystem: ${BMC} }] }
  - { id: tn, rack: rt, tenant: ta, agentToken: agent-token-tn, xpus: [{ id: dpu0, persistentPower: true }] }
  - { id: ho, rack: rr, agentToken: agent-token-ho, xpus: [{ id: dpu0, persistentPower: true }] }
  - { id: fq, rack: rf, agentToken: agent-token-fq, xpus: [{ id: dpu0 }] }
  - { id: r3, rack: rb3, bmcToken: bmc-token-r3, agentToken: agent-token-r3, xpus: [{ id: dpu0, redfishSystem: ${BMC} }] }
  - { id: lo, rack: rlo, agentToken: agent-token-lo, xpus: [{ id: dpu0 }] }
  - { id: pf, rack: rpf, agentToken: agent-token-pf, xpus: [{ id: dpu0 }] }
${['p1', 'p2'].map((id) => `  - { id: ${id}, rack: rp, agentToken: agent-token-${id}, policy: { xpuReboot: { noticeSeconds: 1, recoverySeconds: 2 } }, xpus: [{ id: dpu0 }] }`).join('\n')}
  - { id: s1, rack: rs, agentToken: agent-token-s1, policy: { xpuReboot: { noticeSeconds: 1 } }, xpus: [{ id: dpu0 }] }
  - { id: tz, rack: rtz, tenant: ta, agentToken: agent-token-tz, xpus: [{ id: dpu0, persistentPower: true }] }
  - { id: ty, rack: rty, tenant: ta, agentToken: agent-token-ty, xpus: [{ id: dpu0, persistentPower: true }] }
  - { id: u1, rack: ru, agentToken: agent-token-u1, xpus: [{ id: dpu0 }] }
  - { id: bc1, rack: rbc, agentToken: agent-token-bc1, xpus: [{ id: dpu0 }] }
  - { id: bc2, rack: rbc, agentToken: agent-token-bc2, xpus: [{ id: dpu0 }] }
  - { id: cp1, rack: rcp, agentToken: agent-token-cp1, policy: { xpuReboot: { maxExtensionSeconds: 3 } }, xpus: [{ id: dpu0 }] }
  - { id: cp2, rack: rcp, agentToken: agent-token-cp2, policy: { xpuReboot: { maxExtensionSeconds: 3 } }, xpus: [{ id: dpu0 }] }
  - { id: cr, rack: rcr, agentToken: agent-token-cr, xpus: [{ id: dpu0 }] }
  - { id: uf, rack: ruf, agentToken: agent-token-uf, xpus: [{ id: dpu0 }] }
  - { id: hb, rack: rhb, bmcToken: bmc-token-hb, agentToken: agent-token-hb, redfishSystem: /redfish/v1/Systems/system, xpus: [{ id: dpu0, persistentPower: true, redfishSystem: ${BMC} }] }
`;
const NODES = [
  'hb',
  'uf',
  'cr',
  'cp1',
  'cp2',
  'u1',
  'bc1',
  'bc2',
  'tz',
  'ty',
  's1',
  'r1',
  'q1',
  'l1',
  'x1',
  'h1',
  'o1',
  'o2',
  'r2',
  'tn',
  'ho',
  'fq',
  'r3',
  'lo',
  'pf',
  'p1',
  'p2',
];

let dir: string;
let stack: RunningStack;
let url: string;
let stopped = false;
const seen = new Map<string, any[]>();
/** Agents that answer `succeeded` to what they take; the others stay silent. */
const answering = new Set<string>([
  'hb',
  'hb.dpu0',
  'cr',
  'cr.dpu0',
  'r1',
  'l1',
  'r2',
  'tn',
  'tn.dpu0',
  'ho',
  'ho.dpu0',
  'r3',
  'lo',
  'p1',
  'p2',
  's1',
  'tz',
  'tz.dpu0',
  'ty',
  'ty.dpu0',
]);

/** Agents that answer `failed` to these command types (and `succeeded` to the others). */
const failing = new Map<string, Set<string>>([
  ['pf', new Set(['restore-pcie'])],
  ['uf', new Set(['restore-pcie'])],
]);
/** What an xPU does on a command beyond answering (announce on reboot-xpu). */
const reactions = new Map<string, (cmd: any) => Promise<unknown>>();

async function fakeAgent(agent: string) {
  while (!stopped) {
    const res = await api(url, `/v1/agents/${agent}/commands?wait=1`, { token: OPERATOR_TOKEN }).catch(() => undefined);
    if (res?.status !== 200) continue;
    for (const cmd of res.json) {
      const list = seen.get(agent) ?? [];
      const first = !list.some((c) => c.id === cmd.id);
      if (first) list.push(cmd);
      seen.set(agent, list);
      if (first) await reactions.get(agent)?.(cmd);
      const status = failing.get(agent)?.has(cmd.type) ? 'failed' : 'succeeded';
      if (answering.has(agent) || failing.has(agent))
        await api(url, `/v1/agents/${agent}/commands/${cmd.id}`, { token: OPERATOR_TOKEN, body: { status } });
    }
  }
}

const types = (agent: string) => (seen.get(agent) ?? []).map((c) => c.type);
const event = (node: string, id: string, type: string, data?: Record<string, unknown>, time?: string) =>
  api(url, '/v1/events', {
    token: `agent-token-${node}`,
    body: { id, type, node, ...(type.startsWith('xpu.') ? { xpu: 'dpu0' } : {}), data, ...(time ? { time } : {}) },
  });
const get = async (id: string) => (await api(url, `/v1/reboots/${id}`, { token: OPERATOR_TOKEN })).json;
const reboots = async (node: string) => (await api(url, `/v1/reboots?node=${node}`, { token: OPERATOR_TOKEN })).json.items as any[];
const rebootOf = (node: string, kind = 'xpu') =>
  waitFor(`a ${kind} reboot of ${node}`, async () => (await reboots(node)).find((r: any) => r.kind === kind));
const until = (id: string, ok: (r: any) => boolean, what: string, ms = 20_000) => waitForReboot(url, id, ok, what, ms);
const settle = (ms = 1500) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  dir = tempDir('audit-s7');
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
  url = stack.url;
  for (const n of NODES) {
    void fakeAgent(n);
    void fakeAgent(`${n}.dpu0`);
  }
}, 90_000);

afterAll(async () => {
  stopped = true;
  await stack?.stop();
});

/** A Redfish Event as a BMC pushes it, one record per entry, OriginOfCondition the xPU's system. */
function redfish(records: Array<{ id: string; msg: string; args?: string[]; ts: string }>) {
  return {
    '@odata.type': '#Event.v1_7_0.Event',
    Id: `batch-${records[0].id}`,
    Name: 'Event Array',
    Context: 'Default Context',
    Events: records.map((r) => ({
      EventType: 'Alert',
      EventId: r.id,
      EventTimestamp: r.ts,
      Severity: 'OK',
      MessageSeverity: 'OK',
      Message: r.msg,
      MessageId: r.msg,
      MessageArgs: r.args ?? [],
      OriginOfCondition: { '@odata.id': BMC },
    })),
  };
}
const postRedfish = (body: unknown, node = 'r1') => api(url, '/v1/events/redfish', { token: `bmc-token-${node}`, body });

describe('7.1 under disorder, through Redfish: a BMC 10 days behind, the ready before the notice, every record twice', () => {
  it('makes one reboot of the outage, dated by the coordinator, and it completes', async () => {
    const back = Date.now() - 10 * 86_400_000;
    const pending = { id: 'ev-1', msg: 'XpuReboot.1.0.RebootPending', args: ['60', 'firmware'], ts: new Date(back).toISOString() };
    const ready = { id: 'ev-2', msg: 'XpuReboot.1.0.Ready', ts: new Date(back + 90_000).toISOString() };
    const before = Date.now();
    // The queue delivered the ready first, then the notice; each record comes twice.
    expect((await postRedfish(redfish([ready]))).status).toBe(202);
    expect((await postRedfish(redfish([ready]))).status).toBe(202);
    expect((await postRedfish(redfish([pending]))).status).toBe(202);
    expect((await postRedfish(redfish([pending]))).status).toBe(202);
    const r = await rebootOf('r1');
    const done = await until(r.id, (x) => x.status === 'completed', 'completed');
    await settle();
    const all = (await reboots('r1')).filter((x) => x.kind === 'xpu');
    expect(all.map((x) => x.id)).toEqual([r.id]);
    // Every time it carries is the coordinator's, not 10 days ago.
    for (const h of done.history) expect(Date.parse(h.at)).toBeGreaterThanOrEqual(before - 5_000);
    expect(types('r1').filter((t) => t === 'restore-pcie')).toHaveLength(1);
    const report = await api(
      url,
      `/v1/reports/compliance?from=${new Date(before - 60_000).toISOString()}&to=${new Date(Date.now() + 60_000).toISOString()}`,
      { token: OPERATOR_TOKEN },
    );
    const row = report.json.reboots.find((x: any) => x.id === r.id);
    // Left as the product decides (see the report): the queue delivered the ready first, so it is an unannounced reboot.
    expect(row.findings.map((f: any) => f.code)).toContain('unannounced-reboot');
  }, 40_000);
});

describe('7.3 cancel of a queued reboot', () => {
  it('is 200 cancelled, the xPU gets cancel-reboot, the host (told nothing yet) gets nothing', async () => {
    const hold = await api(url, '/v1/holds', { token: OPERATOR_TOKEN, body: { selector: { node: 'q1' }, reason: 'audit' } });
    expect(hold.status).toBe(201);
    await event('q1', 'q1-n', 'xpu.reboot.pending', { reason: 'firmware' });
    const r = await until((await rebootOf('q1')).id, (x) => x.status === 'queued', 'queued');
    const postponed = await waitFor('postpone-reboot to q1.dpu0', async () =>
      seen.get('q1.dpu0')?.find((c) => c.type === 'postpone-reboot'),
    );
    expect(postponed.args).toEqual(expect.objectContaining({ deadline: r.deadline, reason: expect.any(String) }));
    // Not yet in its notice phase: an extension is refused (409), and the message says why truthfully.
    const ext = await api(url, `/v1/reboots/${r.id}/extensions`, { token: 'agent-token-q1', body: { seconds: 60, reason: 'x' } });
    expect(ext.status).toBe(409);
    expect(ext.json.message).not.toMatch(/past its notice phase/);
    expect(ext.json.message).toMatch(/queued/);
    const res = await api(url, `/v1/reboots/${r.id}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'not now' } });
    expect(res.status).toBe(200);
    expect(res.json.status).toBe('cancelled');
    await waitFor('cancel-reboot', async () => types('q1.dpu0').includes('cancel-reboot'));
    expect((await api(url, `/v1/holds/${hold.json.id}`, { method: 'DELETE', token: OPERATOR_TOKEN })).status).toBe(204);
    await settle();
    expect(types('q1')).toEqual([]);
    expect((await get(r.id)).status).toBe('cancelled');
    expect(types('q1.dpu0')).toEqual(['postpone-reboot', 'cancel-reboot']);
  }, 40_000);
});

describe('7.1 recovered-late', () => {
  it('an xpu.ready after the reboot failed for want of it sends restore-pcie then resume-workloads (phase recovered-late)', async () => {
    await event('l1', 'l1-n', 'xpu.reboot.pending', { reason: 'firmware' });
    const r = await rebootOf('l1');
    await event('l1', 'l1-d', 'xpu.down');
    const failed = await until(r.id, (x) => x.status === 'failed', 'failed for want of xpu.ready', 30_000);
    expect(types('l1')).not.toContain('restore-pcie');
    await event('l1', 'l1-r', 'xpu.ready');
    const late = await until(r.id, (x) => x.history.some((h: any) => h.phase === 'recovered-late'), 'recovered-late');
    await waitFor('resume-workloads after restore-pcie', async () => types('l1').includes('resume-workloads'));
    const t = types('l1');
    expect(t.indexOf('restore-pcie')).toBeGreaterThan(-1);
    expect(t.indexOf('restore-pcie')).toBeLessThan(t.indexOf('resume-workloads'));
    expect(failed.id).toBe(late.id);
  }, 50_000);
});

describe('7.1 postpone-reboot on an extension', () => {
  it('the xPU hears the moved deadline with a reason', async () => {
    await event('x1', 'x1-n', 'xpu.reboot.pending', { reason: 'firmware' });
    const r = await rebootOf('x1');
    const ext = await api(url, `/v1/reboots/${r.id}/extensions`, { token: 'agent-token-x1', body: { seconds: 60, reason: 'drain' } });
    expect(ext.status).toBe(200);
    const p = await waitFor('postpone-reboot to x1.dpu0', async () => seen.get('x1.dpu0')?.find((c) => c.type === 'postpone-reboot'));
    expect(Date.parse(p.args.deadline)).toBe(Date.parse(ext.json.deadline));
    expect(typeof p.args.reason).toBe('string');
    expect((await api(url, `/v1/reboots/${r.id}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'done' } })).status).toBe(200);
  }, 30_000);
});

describe('7.3 rollouts: shapes, dry run, cancel, bad input', () => {
  it('a dry run plans and starts nothing; a rollout reads done/pending/failed; cancel makes it cancelled', async () => {
    const bad = [
      { selector: { rack: 'ro' }, maxUnavailable: 0, reason: 'x' },
      { selector: { rack: 'ro' }, maxUnavailable: 'one', reason: 'x' },
      { selector: { shelf: 'ro' }, maxUnavailable: 1, reason: 'x' },
      { selector: { rack: 'ro' }, maxUnavailable: 1, reason: 'x', maxFailures: -1 },
    ];
    for (const body of bad) {
      const res = await api(url, '/v1/rollouts', { token: OPERATOR_TOKEN, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json).toMatchObject({ error: expect.any(String), message: expect.any(String) });
    }
    const dry = await api(url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { rack: 'ro' }, maxUnavailable: 1, reason: 'fw', dryRun: true },
    });
    expect(dry.status).toBe(201);
    expect(dry.json.plan).toEqual([
      { node: 'o1', xpu: 'dpu0' },
      { node: 'o2', xpu: 'dpu0' },
    ]);
    await settle();
    expect(types('o1.dpu0')).toEqual([]);

    const ro = await api(url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { rack: 'ro' }, maxUnavailable: 1, reason: 'fw', noticeSeconds: 60 },
    });
    expect(ro.status).toBe(201);
    expect(ro.json).toMatchObject({ id: expect.any(String), status: 'running', plan: dry.json.plan });
    const cmd = await waitFor('reboot-xpu', async () =>
      [...(seen.get('o1.dpu0') ?? []), ...(seen.get('o2.dpu0') ?? [])].find((c) => c.type === 'reboot-xpu'),
    );
    expect(cmd.args).toMatchObject({ reason: 'fw', noticeSeconds: 60, rolloutId: ro.json.id });
    const st = await api(url, `/v1/rollouts/${ro.json.id}`, { token: OPERATOR_TOKEN });
    expect(st.status).toBe(200);
    expect(st.json).toMatchObject({ id: ro.json.id, status: 'running' });
    for (const k of ['done', 'pending', 'failed']) expect(Array.isArray(st.json[k]), k).toBe(true);
    expect(st.json.done).toEqual([]);
    expect(st.json.failed).toEqual([]);
    expect(st.json.pending.length).toBeGreaterThanOrEqual(1);
    expect((await api(url, `/v1/rollouts/${ro.json.id}`, { token: 'agent-token-o1' })).status).toBe(403);
    const c = await api(url, `/v1/rollouts/${ro.json.id}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'stop' } });
    expect(c.status).toBe(200);
    expect((await api(url, `/v1/rollouts/${ro.json.id}`, { token: OPERATOR_TOKEN })).json.status).toBe('cancelled');
    expect((await api(url, '/v1/rollouts/ro-doesnotexist', { token: OPERATOR_TOKEN })).status).toBe(404);
  }, 40_000);
});

describe('7.3 bad input to holds, cancel and force: a clear 4xx that changes nothing', () => {
  it('answers 400/404/409 and leaves holds and reboots as they were', async () => {
    const holdsBefore = (await api(url, '/v1/holds', { token: OPERATOR_TOKEN })).json.items.length;
    for (const body of [
      { selector: { node: 'h1' }, reason: 'x', until: 'tomorrow' },
      { selector: {}, reason: 'x' },
      { selector: { node: 'h1' } },
      { selector: { node: 'h1' }, reason: 42 },
    ]) {
      const res = await api(url, '/v1/holds', { token: OPERATOR_TOKEN, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect((await api(url, '/v1/holds', { token: OPERATOR_TOKEN, raw: '{"selector":' })).status).toBe(400);
    expect((await api(url, '/v1/holds', { token: OPERATOR_TOKEN })).json.items.length).toBe(holdsBefore);
    expect((await api(url, '/v1/reboots/xr-nope/cancel', { token: OPERATOR_TOKEN, body: { reason: 'x' } })).status).toBe(404);
    expect((await api(url, '/v1/reboots/xr-nope/force', { token: OPERATOR_TOKEN, body: {} })).status).toBe(404);
    expect((await api(url, '/v1/holds/hold-nope', { method: 'DELETE', token: OPERATOR_TOKEN })).status).toBe(404);
  });
});

describe('7.2 host-reboot under a hold', () => {
  it('rebootctl host-reboot exits 3 with the reason hold on stderr', async () => {
    const hold = await api(url, '/v1/holds', { token: OPERATOR_TOKEN, body: { selector: { rack: 'rh' }, reason: 'audit hold' } });
    expect(hold.status).toBe(201);
    const proc = spawn(
      NODE,
      [join(ROOT, 'cli/rebootctl.js'), 'host-reboot', '--server', url, '--agent', 'h1', '--token', 'agent-token-h1', '--wait', '20'],
      { cwd: ROOT, env: childEnv({ REBOOT_BOOT_ID_FILE: join(dir, 'boot_id') }), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    expect(code, err).toBe(3);
    expect(err).toMatch(/hold/);
    await api(url, `/v1/holds/${hold.json.id}`, { method: 'DELETE', token: OPERATOR_TOKEN });
  }, 40_000);
});

describe('7.4 the OpenAPI document of the running stack', () => {
  it('lists every section-7 route', async () => {
    const doc = (await api(url, '/openapi.json')).json;
    expect(doc.openapi).toMatch(/^3\.1/);
    const paths = Object.keys(doc.paths).map((p) => p.replace(/\{[^}]+\}/g, '{}'));
    for (const p of [
      '/v1/holds',
      '/v1/holds/{}',
      '/v1/rollouts',
      '/v1/rollouts/{}',
      '/v1/rollouts/{}/cancel',
      '/v1/reboots/{}/cancel',
      '/v1/reboots/{}/force',
      '/v1/nodes/{}',
      '/healthz',
    ])
      expect(paths, p).toContain(p);
  });
});

describe('7.1 clocks: a BMC days ahead, and sources that disagree', () => {
  it('a notice from a BMC 2 days ahead gets its notice from the receipt, and its ready ends it', async () => {
    const ahead = Date.now() + 2 * 86_400_000;
    await waitFor('the first r1 reboot to end', async () => (await reboots('r1')).every((x) => x.status === 'completed'));
    const before = Date.now();
    const res = await postRedfish(
      redfish([{ id: 'ev-a1', msg: 'XpuReboot.1.0.RebootPending', args: ['60', 'firmware'], ts: new Date(ahead).toISOString() }]),
    );
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ accepted: 1, ignored: 0 });
    const r = await waitFor('a second r1 reboot', async () => (await reboots('r1')).find((x) => x.status !== 'completed'));
    expect(Date.parse(r.deadline)).toBeGreaterThanOrEqual(before + 55_000);
    expect(Date.parse(r.deadline)).toBeLessThanOrEqual(Date.now() + 65_000);
    await postRedfish(redfish([{ id: 'ev-a2', msg: 'XpuReboot.1.0.Ready', ts: new Date(ahead + 30_000).toISOString() }]));
    await until(r.id, (x) => x.status === 'completed', 'completed');
  }, 30_000);

  it('a notice from the agent (coordinator time) is ended by a ready from a BMC 10 days behind', async () => {
    await event('r2', 'r2-n', 'xpu.reboot.pending', { reason: 'firmware' });
    const r = await rebootOf('r2');
    const back = Date.now() - 10 * 86_400_000;
    expect((await postRedfish(redfish([{ id: 'ev-b1', msg: 'XpuReboot.1.0.Ready', ts: new Date(back).toISOString() }]), 'r2')).status).toBe(
      202,
    );
    await until(r.id, (x) => x.status === 'completed', 'completed');
    await settle();
    expect((await reboots('r2')).map((x) => x.id)).toEqual([r.id]);
  }, 30_000);
});

describe('7.1 a host reboot whose signals came before it, from a host clock hours ahead', () => {
  it('keeps host.ready and host.down and applies them when the request arrives: one reboot, completed', async () => {
    const t = Date.now() + 5 * 3_600_000;
    const at = (s: number) => new Date(t + s * 1000).toISOString();
    expect((await event('ho', 'ho-3', 'host.ready', undefined, at(30))).status).toBe(202);
    expect((await event('ho', 'ho-2', 'host.down', undefined, at(10))).status).toBe(202);
    await settle(500);
    expect((await event('ho', 'ho-1', 'host.reboot.requested', { method: 'shell' }, at(0))).status).toBe(202);
    const hr = await rebootOf('ho', 'host');
    const done = await until(hr.id, (x) => ['completed', 'failed', 'denied'].includes(x.status), 'ended', 30_000);
    expect(done.status).toBe('completed');
    expect((await reboots('ho')).filter((x) => x.kind === 'host')).toHaveLength(1);
  }, 40_000);
});

describe('7.1 tenants that come back', () => {
  const hostReboot = async (n: number, tenant: string) => {
    await event('tn', `tn-req-${n}`, 'host.reboot.requested', { method: 'shell' });
    const hr = await waitFor('the host reboot', async () =>
      (await reboots('tn')).find((x) => x.kind === 'host' && !['completed', 'denied', 'failed'].includes(x.status)),
    );
    await until(hr.id, (x) => x.status === 'rebooting', 'rebooting');
    await event('tn', `tn-down-${n}`, 'host.down');
    await event('tn', `tn-ready-${n}`, 'host.ready', { tenant });
    return until(hr.id, (x) => x.status === 'completed', 'completed');
  };
  const reprovisions = () => (seen.get('tn.dpu0') ?? []).filter((c) => c.type === 'reprovision').map((c) => c.args.tenant);
  const node = async () => (await api(url, '/v1/nodes/tn', { token: 'agent-token-tn' })).json;

  it('ta → tb → ta: reprovision each time, the node says which; a hold by tenant follows the provisioned one', async () => {
    expect((await node()).provisionedTenant).toBe('ta');
    await hostReboot(1, 'tb');
    await waitFor('reprovision tb', async () => reprovisions().length === 1);
    expect(reprovisions()).toEqual(['tb']);
    expect(await node()).toMatchObject({ id: 'tn', rack: 'rt', provisionedTenant: 'tb', xpus: [{ id: 'dpu0', persistentPower: true }] });

    const hold = await api(url, '/v1/holds', { token: OPERATOR_TOKEN, body: { selector: { tenant: 'tb' }, reason: 'tenant freeze' } });
    expect(hold.status).toBe(201);
    expect(hold.json.nodes).toContain('tn');
    await event('tn', 'tn-x1', 'xpu.reboot.pending', { reason: 'fw' });
    const q = await until((await rebootOf('tn')).id, (x) => x.status === 'queued', 'queued by the tenant hold');
    expect((await api(url, `/v1/holds/${hold.json.id}`, { method: 'DELETE', token: OPERATOR_TOKEN })).status).toBe(204);
    await until(q.id, (x) => x.status !== 'queued', 'out of the queue');
    await event('tn', 'tn-x1-d', 'xpu.down');
    await event('tn', 'tn-x1-r', 'xpu.ready');
    await until(q.id, (x) => x.status === 'completed', 'completed');

    // The first tenant comes back; a repeated host.ready with the same tenant asks for nothing more.
    await hostReboot(2, 'ta');
    await waitFor('reprovision ta', async () => reprovisions().length === 2);
    await event('tn', 'tn-ready-2b', 'host.ready', { tenant: 'ta' });
    await settle();
    expect(reprovisions()).toEqual(['tb', 'ta']);
    expect((await node()).provisionedTenant).toBe('ta');
  }, 80_000);
});

describe('7.3 force of a queued reboot (observed)', () => {
  it('answers something clear and never leaves it half-queued', async () => {
    const hold = await api(url, '/v1/holds', { token: OPERATOR_TOKEN, body: { selector: { node: 'fq' }, reason: 'audit' } });
    await event('fq', 'fq-n', 'xpu.reboot.pending', { reason: 'firmware' });
    const r = await until((await rebootOf('fq')).id, (x) => x.status === 'queued', 'queued');
    const res = await api(url, `/v1/reboots/${r.id}/force`, { token: OPERATOR_TOKEN, body: { reason: 'now' } });
    const after = await get(r.id);
    const rep = await api(
      url,
      `/v1/reports/compliance?from=${new Date(Date.now() - 600_000).toISOString()}&to=${new Date(Date.now() + 60_000).toISOString()}`,
      { token: OPERATOR_TOKEN },
    );
    expect([200, 409]).toContain(res.status);
    if (res.status === 200) {
      // Recorded as for a forced reboot, but honestly: the operator forced it, long before its deadline.
      const row = rep.json.reboots.find((x: any) => x.id === r.id);
      expect(row.forced).toBe(true);
      const finding = row.findings.find((f: any) => f.code === 'forced-at-deadline');
      expect(finding.message).toMatch(/^forced by operator before the deadline/);
    }
    if (res.status === 409) expect(after.status).toBe('queued');
    else await waitFor('proceed-reboot', async () => types('fq.dpu0').includes('proceed-reboot'));
    await api(url, `/v1/holds/${hold.json.id}`, { method: 'DELETE', token: OPERATOR_TOKEN });
  }, 30_000);
});

describe('7.1 a late xpu.down of an outage that already ended', () => {
  it('through Redfish (BMC 3 days behind): the power-off record delivered after the ready starts no unannounced reboot', async () => {
    const back = Date.now() - 3 * 86_400_000;
    const ts = (s: number) => new Date(back + s * 1000).toISOString();
    await postRedfish(redfish([{ id: 'r3-1', msg: 'XpuReboot.1.0.RebootPending', args: ['60', 'fw'], ts: ts(0) }]), 'r3');
    const r = await rebootOf('r3');
    await postRedfish(redfish([{ id: 'r3-3', msg: 'XpuReboot.1.0.Ready', ts: ts(90) }]), 'r3');
    await until(r.id, (x) => x.status === 'completed', 'completed');
    const late = await postRedfish(redfish([{ id: 'r3-2', msg: 'ResourceEvent.1.0.ResourcePoweredOff', args: [BMC], ts: ts(30) }]), 'r3');
    expect(late.json).toEqual({ accepted: 1, ignored: 0 });
    await settle(2500);
    expect((await reboots('r3')).map((x) => [x.id, x.status])).toEqual([[r.id, 'completed']]);
  }, 30_000);

  it('from the host agent, its own times ordering: the down after the ready starts no unannounced reboot', async () => {
    const t = Date.now() - 7_200_000;
    const at = (s: number) => new Date(t + s * 1000).toISOString();
    await event('lo', 'lo-1', 'xpu.reboot.pending', { reason: 'fw' }, at(0));
    const r = await rebootOf('lo');
    await event('lo', 'lo-3', 'xpu.ready', undefined, at(90));
    await until(r.id, (x) => x.status === 'completed', 'completed');
    await event('lo', 'lo-2', 'xpu.down', undefined, at(30));
    await settle(2500);
    expect((await reboots('lo')).map((x) => [x.id, x.status])).toEqual([[r.id, 'completed']]);
  }, 30_000);
});

describe('7.1 a failed restore-pcie', () => {
  it('ends the reboot failed naming restore-pcie; resume-workloads never follows, also not on a repeated xpu.ready', async () => {
    await event('pf', 'pf-n', 'xpu.reboot.pending', { reason: 'fw' });
    const r = await rebootOf('pf');
    await waitFor('preparation', async () => types('pf').includes('protect-pcie'));
    await event('pf', 'pf-d', 'xpu.down');
    await event('pf', 'pf-r', 'xpu.ready');
    const failed = await until(r.id, (x) => x.status === 'failed', 'failed');
    expect(JSON.stringify(failed.history.slice(-3))).toMatch(/restore-pcie/);
    await event('pf', 'pf-r2', 'xpu.ready');
    await settle();
    expect(types('pf')).not.toContain('resume-workloads');
    expect(types('pf')).not.toContain('reboot-host');
    expect((await get(r.id)).status).toBe('failed');
    expect((await get(r.id)).history.some((h: any) => h.phase === 'recovered-late')).toBe(false);
  }, 30_000);
});

describe('7.3 a rollout pauses after maxFailures failed reboots', () => {
  it('GET says paused, the failed xPU in failed, the other still pending and never asked', async () => {
    for (const n of ['p1', 'p2'])
      reactions.set(`${n}.dpu0`, async (cmd) => {
        if (cmd.type === 'reboot-xpu')
          await event(n, `${n}-ann`, 'xpu.reboot.pending', { reason: cmd.args.reason, rolloutId: cmd.args.rolloutId });
        if (cmd.type === 'proceed-reboot') await event(n, `${n}-down`, 'xpu.down'); // and never comes back
      });
    const ro = await api(url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { rack: 'rp' }, maxUnavailable: 1, reason: 'fw 3' },
    });
    expect(ro.status).toBe(201);
    const paused = await waitFor(
      'paused',
      async () => {
        const st = (await api(url, `/v1/rollouts/${ro.json.id}`, { token: OPERATOR_TOKEN })).json;
        if (st.status === 'paused') return st;
        throw new Error(JSON.stringify(st));
      },
      30_000,
    );
    expect(paused.failed).toHaveLength(1);
    expect(paused.done).toEqual([]);
    expect(paused.pending).toHaveLength(1);
    const asked = ['p1', 'p2'].filter((n) => types(`${n}.dpu0`).includes('reboot-xpu'));
    expect(asked).toHaveLength(1);
    expect(JSON.stringify(paused.failed)).toContain(asked[0]);
    // It failed because its reboot failed, not for want of the reboot-xpu result its rebooting xPU never sent.
    expect(paused.failed[0].reason).toBe('reboot failed');
  }, 40_000);
});

describe('7.3 a rollout follows the reboot its xPU announced, not the reboot-xpu result', () => {
  it('an xPU that reboots before its agent reports reboot-xpu still counts as done once its reboot completed', async () => {
    // The hook announced and the xPU went down at once: its agent never got to post the result.
    reactions.set('s1.dpu0', async (cmd) => {
      if (cmd.type === 'reboot-xpu')
        await event('s1', 's1-ann', 'xpu.reboot.pending', { reason: cmd.args.reason, rolloutId: cmd.args.rolloutId });
      if (cmd.type === 'proceed-reboot') {
        await event('s1', 's1-down', 'xpu.down');
        await event('s1', 's1-ready', 'xpu.ready');
      }
    });
    const ro = await api(url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { node: 's1' }, maxUnavailable: 1, reason: 'fw 4' },
    });
    expect(ro.status).toBe(201);
    const r = await rebootOf('s1');
    await until(r.id, (x) => x.status === 'completed', 'completed');
    const st = await waitFor(
      'the rollout to end',
      async () => {
        const x = (await api(url, `/v1/rollouts/${ro.json.id}`, { token: OPERATOR_TOKEN })).json;
        return x.status === 'running' ? undefined : x;
      },
      30_000,
    );
    expect(st).toMatchObject({ status: 'completed', failed: [], pending: [] });
    expect(st.done).toEqual([expect.objectContaining({ node: 's1', xpu: 'dpu0' })]);
  }, 40_000);
});

describe('7.4 no blame for downtime', () => {
  it('a host that heartbeats before and right after a kill -9 longer than its heartbeat window is never recorded silent', async () => {
    const own = tempDir('audit-s7-down');
    const nodesFile = writeInventory(
      own,
      `
policy: { xpuReboot: { noticeSeconds: 120, heartbeatSeconds: 5, commandSeconds: 120 } }
nodes:
  - { id: k1, agentToken: agent-token-k1, xpus: [{ id: dpu0 }] }
`,
    );
    const dataDir = join(own, 'data');
    let s = await startStackProcess({ dataDir, nodesFile });
    let beating = true;
    const held = new Set<string>();
    // The host agent takes its preparation commands and says `running` every second, never done.
    const heart = (async () => {
      while (beating) {
        const at = s.url;
        const res = await api(at, '/v1/agents/k1/commands?wait=1', { token: 'agent-token-k1' }).catch(() => undefined);
        if (res?.status === 200) for (const c of res.json) held.add(c.id);
        for (const id of held)
          await api(at, `/v1/agents/k1/commands/${id}`, { token: 'agent-token-k1', body: { status: 'running' } }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    try {
      await api(s.url, '/v1/events', {
        token: 'agent-token-k1',
        body: { id: 'k1-n', type: 'xpu.reboot.pending', node: 'k1', xpu: 'dpu0' },
      });
      await waitFor('both preparation commands', async () => held.size === 2);
      await settle(6000); // heartbeats keep it from being silent while the coordinator is up
      expect(await s.stop('SIGKILL')).toBe(null);
      await settle(11_000); // down for twice the heartbeat window
      s = await startStackProcess({ dataDir, nodesFile });
      await settle(7000); // the host goes on beating from the restart
      const r = (await api(s.url, '/v1/reboots?node=k1', { token: OPERATOR_TOKEN })).json.items[0];
      expect(r.status).toBe('preparing');
      expect(r.history.map((h: any) => h.phase)).not.toContain('silent-host');
    } finally {
      beating = false;
      await heart;
      await s.stop();
    }
  }, 80_000);
});

// A host.ready for another tenant outside a requested host reboot is an unannounced host reboot (model.ts
// unannouncedHostReboot): its xPUs free the host context and are re-provisioned for that tenant.
describe('7.1 a host.ready with another tenant outside a requested host reboot', () => {
  const reprovisions = (n: string) => (seen.get(`${n}.dpu0`) ?? []).filter((c) => c.type === 'reprovision').map((c) => c.args.tenant);
  it('alone: reprovision with that tenant, which becomes the provisioned one', async () => {
    await event('tz', 'tz-ready', 'host.ready', { tenant: 'tc' });
    await waitFor('reprovision tc', async () => reprovisions('tz').length > 0, 30_000);
    expect(reprovisions('tz')).toEqual(['tc']);
    // The reprovision step makes the tenant the provisioned one as it registers: a moment after the command went out.
    await waitFor(
      'tz provisioned for tc',
      async () => (await api(url, '/v1/nodes/tz', { token: OPERATOR_TOKEN })).json.provisionedTenant === 'tc',
      30_000,
    );
  }, 75_000);
  it('after an unrequested power cycle (host.down, host.ready): the same', async () => {
    await event('ty', 'ty-down', 'host.down');
    await event('ty', 'ty-ready', 'host.ready', { tenant: 'tc' });
    await waitFor('reprovision tc', async () => reprovisions('ty').length > 0, 30_000);
    expect(reprovisions('ty')).toEqual(['tc']);
    // The reprovision step makes the tenant the provisioned one as it registers: a moment after the command went out.
    await waitFor(
      'ty provisioned for tc',
      async () => (await api(url, '/v1/nodes/ty', { token: OPERATOR_TOKEN })).json.provisionedTenant === 'tc',
      30_000,
    );
  }, 75_000);
});

describe('7.3 what frees a slot or ends a hold lets the queue go on', () => {
  it('a hold that ends by its until: what it queued goes on (long before its cap)', async () => {
    const hold = await api(url, '/v1/holds', {
      token: OPERATOR_TOKEN,
      // 10 s, not 2.5: the notice must be queued by the hold before it ends, and at load the event can take
      // seconds through the queue to the ingest (it would then go on unqueued and 'queued' never come).
      body: { selector: { node: 'u1' }, reason: 'short', until: new Date(Date.now() + 10_000).toISOString() },
    });
    expect(hold.status).toBe(201);
    await event('u1', 'u1-n', 'xpu.reboot.pending', { reason: 'fw' });
    const q = await until((await rebootOf('u1')).id, (x) => x.status === 'queued', 'queued');
    const goes = await until(q.id, (x) => x.status !== 'queued', 'out of the queue once the hold ended', 30_000);
    expect(goes.history.some((h: any) => h.phase === 'admitted')).toBe(true);
    expect(goes.history.some((h: any) => h.phase === 'budget-exceeded')).toBe(false);
  }, 60_000);

  it('a cancel of the reboot that holds the rack slot lets the queued one go on', async () => {
    await event('bc1', 'bc1-n', 'xpu.reboot.pending', { reason: 'fw' });
    const first = await rebootOf('bc1');
    await event('bc2', 'bc2-n', 'xpu.reboot.pending', { reason: 'fw' });
    const q = await until((await rebootOf('bc2')).id, (x) => x.status === 'queued', 'queued');
    expect((await api(url, `/v1/reboots/${first.id}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'not now' } })).status).toBe(200);
    const goes = await until(q.id, (x) => x.status !== 'queued', 'out of the queue once the slot freed', 30_000);
    expect(goes.history.some((h: any) => h.phase === 'admitted')).toBe(true);
    expect(goes.history.some((h: any) => h.phase === 'budget-exceeded')).toBe(false);
  }, 60_000);
});

describe('7.1/7.3 postpone-reboot each time the deadline moves', () => {
  it('a queued reboot that goes on at its cap: the xPU hears every deadline it had after the announced one', async () => {
    await event('cp1', 'cp1-n', 'xpu.reboot.pending', { reason: 'fw' });
    await rebootOf('cp1');
    await event('cp2', 'cp2-n', 'xpu.reboot.pending', { reason: 'fw' });
    const q = await until((await rebootOf('cp2')).id, (x) => x.status === 'queued', 'queued');
    const after = await until(q.id, (x) => x.status !== 'queued', 'out of the queue at its cap', 30_000);
    expect(after.history.some((h: any) => h.phase === 'budget-exceeded')).toBe(true);
    const told = async () =>
      (seen.get('cp2.dpu0') ?? []).filter((c) => c.type === 'postpone-reboot').map((c) => Date.parse(c.args.deadline));
    await waitFor('the xPU told of its deadline now', async () => (await told()).includes(Date.parse(after.deadline)), 20_000).catch(
      () => {},
    );
    const heard = await told();
    expect(heard).toContain(Date.parse(q.deadline));
    if (after.deadline !== q.queue.announcedDeadline) expect(heard).toContain(Date.parse(after.deadline));
  }, 75_000);
});

describe('7.1 a crash delivered after the ready of its outage', () => {
  it('joins the unannounced reboot: one reboot, completed, and no core dump asked of an xPU that is back', async () => {
    const t = Date.now() - 3_600_000;
    const at = (s: number) => new Date(t + s * 1000).toISOString();
    await event('cr', 'cr-ready', 'xpu.ready', undefined, at(60));
    const r = await until((await rebootOf('cr')).id, (x) => x.status === 'completed', 'completed');
    await event('cr', 'cr-crash', 'xpu.crashed', { reason: 'NMI' }, at(0));
    await settle(2500);
    expect((await reboots('cr')).map((x) => [x.id, x.status])).toEqual([[r.id, 'completed']]);
    expect(types('cr.dpu0')).not.toContain('allow-coredump');
    expect(types('cr').filter((x) => x === 'restore-pcie')).toHaveLength(1);
  }, 30_000);
});

describe('7.1 an unannounced reboot whose restore-pcie fails', () => {
  it('ends failed naming restore-pcie, not completed; nothing follows it', async () => {
    await event('uf', 'uf-d', 'xpu.down');
    const r = await rebootOf('uf');
    expect(r.mode).toBe('unannounced');
    await event('uf', 'uf-r', 'xpu.ready');
    const failed = await until(r.id, (x) => ['failed', 'completed'].includes(x.status), 'ended');
    expect(failed.status).toBe('failed');
    expect(JSON.stringify(failed.history.slice(-3))).toMatch(/restore-pcie/);
    await settle();
    expect(types('uf')).toEqual(['restore-pcie']);
  }, 30_000);
});

describe('7.1 every history entry says who', () => {
  it('by is bmc:<node>, agent:<agentId>, operator or coordinator on every entry of every reboot this file made', async () => {
    const all: any[] = [];
    let cursor: string | null = null;
    do {
      const page: any = (
        await api(url, `/v1/reboots?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: OPERATOR_TOKEN })
      ).json;
      all.push(...page.items);
      cursor = page.next;
    } while (cursor);
    expect(all.length).toBeGreaterThan(20);
    const wrong: string[] = [];
    for (const r of all)
      for (const h of r.history) {
        const ok =
          h.by === 'operator' ||
          h.by === 'coordinator' ||
          h.by === `bmc:${r.node}` ||
          h.by === `agent:${r.node}` ||
          (typeof h.by === 'string' && h.by.startsWith(`agent:${r.node}.`));
        if (!ok) wrong.push(`${r.id} ${h.phase}: ${JSON.stringify(h.by)}`);
      }
    expect(wrong).toEqual([]);
  });
});

describe('7.1 a host reboot asked by the agent and ended by a BMC whose clock is 10 days behind', () => {
  it('completes: the BMC power-off and BIOS boot apply, dated by the coordinator', async () => {
    const before = Date.now();
    await event('hb', 'hb-req', 'host.reboot.requested', { method: 'shell' });
    const hr = await rebootOf('hb', 'host');
    await until(hr.id, (x) => x.status === 'rebooting', 'rebooting');
    const back = Date.now() - 10 * 86_400_000;
    const host = (id: string, msg: string, args: string[], s: number) => ({
      '@odata.type': '#Event.v1_7_0.Event',
      Id: id,
      Name: 'Event Array',
      Context: 'Default Context',
      Events: [
        {
          EventType: 'Alert',
          EventId: id,
          EventTimestamp: new Date(back + s * 1000).toISOString(),
          MessageId: msg,
          MessageArgs: args,
          OriginOfCondition: { '@odata.id': '/redfish/v1/Systems/system' },
        },
      ],
    });
    const off = await postRedfish(host('hb-1', 'ResourceEvent.1.0.ResourcePoweredOff', ['/redfish/v1/Systems/system'], 0), 'hb');
    expect(off.json).toEqual({ accepted: 1, ignored: 0 });
    const boot = await postRedfish(host('hb-2', 'OpenBMC.0.1.BIOSBoot', [], 60), 'hb');
    expect(boot.json).toEqual({ accepted: 1, ignored: 0 });
    const done = await until(hr.id, (x) => ['completed', 'failed'].includes(x.status), 'ended');
    expect(done.status).toBe('completed');
    expect(done.history.map((h: any) => h.phase)).toEqual(expect.arrayContaining(['host-down', 'host-ready']));
    for (const h of done.history) expect(Date.parse(h.at)).toBeGreaterThanOrEqual(before - 5_000);
  }, 30_000);
});
