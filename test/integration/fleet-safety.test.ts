// Fleet safety (docs/fleet-safety.md) through the real local stack: budgets, holds, cancel and force.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  OPERATOR_TOKEN,
  startStackProcess,
  tempDir,
  waitFor,
  writeInventory,
  type RunningStack,
  waitForReboot,
} from '../support/stack.ts';

// Real time passes: short notices where the flow must run through, a long one where an operator acts first.
const INVENTORY = `
policy:
  xpuReboot:
    noticeSeconds: 5
    maxExtensionSeconds: 120
    heartbeatSeconds: 30
    recoverySeconds: 30
    commandSeconds: 20
  budgets:
    - { per: rack, maxUnavailable: 1 }
nodes:
  - { id: a1, rack: r1, trusted: true, agentToken: agent-token-a1, xpus: [{ id: dpu0 }] }
  - { id: a2, rack: r1, trusted: true, agentToken: agent-token-a2, xpus: [{ id: dpu0 }] }
  - { id: a3, rack: r1, agentToken: agent-token-a3, xpus: [{ id: dpu0 }] }
  - { id: b1, rack: r2, agentToken: agent-token-b1, xpus: [{ id: dpu0 }] }
  - { id: b2, rack: r2, agentToken: agent-token-b2, xpus: [{ id: dpu0 }] }
  - { id: e1, rack: r5, agentToken: agent-token-e1, policy: { xpuReboot: { maxExtensionSeconds: 3 } }, xpus: [{ id: dpu0 }] }
  - { id: e2, rack: r5, agentToken: agent-token-e2, policy: { xpuReboot: { maxExtensionSeconds: 3 } }, xpus: [{ id: dpu0 }] }
${['d1', 'd2', 'd3', 'd4'].map((id) => `  - { id: ${id}, rack: r6, agentToken: agent-token-${id}, xpus: [{ id: dpu0 }] }`).join('\n')}
${['g1', 'g2', 'g3'].map((id) => `  - { id: ${id}, rack: r8, agentToken: agent-token-${id}, xpus: [{ id: dpu0 }] }`).join('\n')}
  - { id: f1, rack: r7, agentToken: agent-token-f1, xpus: [{ id: dpu0 }] }
  - { id: f2, rack: r7, agentToken: agent-token-f2, xpus: [{ id: dpu0 }] }
  - { id: f3, rack: r7, agentToken: agent-token-f3, xpus: [{ id: dpu0 }] }
${['c1', 'c2', 'c3']
  .map(
    (id, i) =>
      `  - { id: ${id}, rack: rc${i}, agentToken: agent-token-${id}, policy: { xpuReboot: { noticeSeconds: 120 } }, xpus: [{ id: dpu0${id === 'c1' ? ', agentToken: xpu-token-c1' : ''} }] }`,
  )
  .join('\n')}
`;

let stack: RunningStack;
let url: string;
let stopped = false;
const seen = new Map<string, any[]>();
/** Which agents answer their commands (`succeeded`); the others only take them and stay silent. */
const answering = new Set<string>();

/** What an xPU does on a command, beyond answering (an xPU of a rollout announces, reboots and comes back). */
const reactions = new Map<string, (cmd: any) => Promise<unknown>>();

/** A fake agent per node and xPU: takes its commands over the real API, answers when told to. */
async function fakeAgent(agent: string) {
  while (!stopped) {
    const res = await api(url, `/v1/agents/${agent}/commands?wait=1`, { token: OPERATOR_TOKEN }).catch(() => undefined);
    if (res?.status !== 200) continue;
    for (const cmd of res.json) {
      const list = seen.get(agent) ?? [];
      if (!list.some((c) => c.id === cmd.id)) list.push(cmd);
      seen.set(agent, list);
      if (!answering.has(agent)) continue;
      await reactions.get(agent)?.(cmd);
      await api(url, `/v1/agents/${agent}/commands/${cmd.id}`, { token: OPERATOR_TOKEN, body: { status: 'succeeded' } });
    }
  }
}

const types = (agent: string) => (seen.get(agent) ?? []).map((c) => c.type);
const event = (node: string, id: string, type: string, data?: Record<string, unknown>) =>
  api(url, '/v1/events', {
    token: node === 'c1' ? OPERATOR_TOKEN : `agent-token-${node}`,
    body: { id, type, node, ...(type.startsWith('xpu.') ? { xpu: 'dpu0' } : {}), data },
  });
const get = async (id: string) => (await api(url, `/v1/reboots/${id}`, { token: OPERATOR_TOKEN })).json;
const rebootOf = (node: string, kind = 'xpu') =>
  waitFor(`a ${kind} reboot of ${node}`, async () =>
    (await api(url, `/v1/reboots?node=${node}`, { token: OPERATOR_TOKEN })).json.items.find((r: any) => r.kind === kind),
  );
const until = (id: string, ok: (r: any) => boolean, what: string, ms = 20_000) => waitForReboot(url, id, ok, what, ms);

beforeAll(async () => {
  const dir = tempDir('fleet');
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
  url = stack.url;
  for (const n of [
    'a1',
    'a2',
    'a3',
    'b1',
    'b2',
    'e1',
    'e2',
    'c1',
    'c2',
    'c3',
    'd1',
    'd2',
    'd3',
    'd4',
    'f1',
    'f2',
    'f3',
    'g1',
    'g2',
    'g3',
  ]) {
    void fakeAgent(n);
    void fakeAgent(`${n}.dpu0`);
  }
  for (const a of [
    'f1',
    'f2',
    'f3',
    'f1.dpu0',
    'f2.dpu0',
    'f3.dpu0',
    'a1',
    'a2',
    'a1.dpu0',
    'a2.dpu0',
    'a3',
    'a3.dpu0',
    'b1',
    'b1.dpu0',
    'b2',
    'e1',
    'e1.dpu0',
    'e2',
    'e2.dpu0',
    'c1.dpu0',
    'c3.dpu0',
  ])
    answering.add(a);
}, 60_000);

afterAll(async () => {
  stopped = true;
  await stack?.stop();
});

describe('disruption budgets', () => {
  it('with 1 per rack, of two notices one is queued (its xPU postponed), and goes on once the first ends; a host reboot in the full rack is denied (budget)', async () => {
    await event('a1', 'a1-n', 'xpu.reboot.pending', { reason: 'firmware' });
    const first = await until((await rebootOf('a1')).id, (r) => r.status === 'rebooting', 'told to reboot early');
    await event('a2', 'a2-n', 'xpu.reboot.pending', { reason: 'firmware' });
    const second = await until((await rebootOf('a2')).id, (r) => r.status === 'queued', 'queued');
    expect(second.queue.reason).toMatch(/^budget: rack r1 has 1 of 1 nodes unavailable \(a1\)/);
    // Held at most maxExtensionSeconds beyond the announced deadline, and the xPU is told so.
    expect(Date.parse(second.deadline)).toBe(Date.parse(second.queue.announcedDeadline) + 120_000);
    const postponed = await waitFor('postpone-reboot to a2.dpu0', async () =>
      seen.get('a2.dpu0')?.find((c) => c.type === 'postpone-reboot'),
    );
    expect(postponed.args).toMatchObject({ deadline: second.deadline, reason: expect.stringMatching(/^queued: budget/) });
    expect(types('a2')).toEqual([]); // the host hears nothing while queued

    // A host reboot in the full rack is denied, with reason budget.
    await event('a3', 'a3-h', 'host.reboot.requested', { method: 'shell' });
    const denied = await until((await rebootOf('a3', 'host')).id, (r) => r.status === 'denied', 'denied');
    expect(denied.denyReason).toBe('budget');
    const deny = await waitFor('deny-host-reboot to a3', async () => seen.get('a3')?.find((c) => c.type === 'deny-host-reboot'));
    expect(deny.args.reason).toBe('budget');

    // The first ends: the queued one goes on with a full notice from now, and the xPU hears the new deadline.
    await event('a1', 'a1-d', 'xpu.down');
    await event('a1', 'a1-r', 'xpu.ready');
    await until(first.id, (r) => r.status === 'completed', 'completed');
    const admitted = await until(second.id, (r) => r.status !== 'queued', 'out of the queue');
    expect(admitted.history.some((h: any) => h.phase === 'admitted')).toBe(true);
    expect(Date.parse(admitted.deadline)).toBeLessThan(Date.parse(second.deadline));
    await waitFor('the host of a2 to be told', async () => types('a2').includes('migrate-workloads'));
    // The xPU's agent polls on its own: its postpone-reboot may reach it after the host's command.
    const postpones = () => (seen.get('a2.dpu0') ?? []).filter((c) => c.type === 'postpone-reboot').map((c) => c.args.deadline);
    const moved = await waitFor('the second postpone-reboot to a2.dpu0', async () => postpones().length >= 2 && postpones());
    expect(moved).toEqual([second.deadline, admitted.deadline]);
    await until(second.id, (r) => r.status === 'rebooting', 'rebooting');
    await event('a2', 'a2-r', 'xpu.ready');
    await until(second.id, (r) => r.status === 'completed', 'completed');

    // Host reboots count too: while a3's host reboots, a notice in the rack is queued until it is back.
    await event('a3', 'a3-h2', 'host.reboot.requested', { method: 'shell' });
    const host = await waitFor('the allowed host reboot', async () =>
      (await api(url, '/v1/reboots?node=a3', { token: OPERATOR_TOKEN })).json.items.find(
        (r: any) => r.kind === 'host' && r.status !== 'denied',
      ),
    );
    await event('a1', 'a1-n2', 'xpu.reboot.pending');
    const third = await until(
      (
        await waitFor('a second reboot of a1', async () =>
          (await api(url, '/v1/reboots?node=a1', { token: OPERATOR_TOKEN })).json.items.find((r: any) => r.id !== first.id),
        )
      ).id,
      (r) => r.status === 'queued',
      'queued',
    );
    expect(third.queue.reason).toMatch(/\(a3\)/);
    await event('a3', 'a3-hd', 'host.down');
    await event('a3', 'a3-hr', 'host.ready');
    await event('a3', 'a3-xr', 'xpu.ready');
    await until(host.id, (r) => r.status === 'completed', 'host reboot completed');
    await until(third.id, (r) => r.status !== 'queued', 'out of the queue');
    await until(third.id, (r) => r.status === 'rebooting', 'rebooting');
    await event('a1', 'a1-r2', 'xpu.ready');
    await until(third.id, (r) => r.status === 'completed', 'completed');
  }, 90_000);

  it('a queued reboot goes on at its cap anyway, beyond its budget, and the report says budget-exceeded', async () => {
    await event('e1', 'e1-n', 'xpu.reboot.pending');
    const first = await until((await rebootOf('e1')).id, (r) => r.status === 'rebooting', 'rebooting');
    await event('e2', 'e2-n', 'xpu.reboot.pending');
    const queued = await until((await rebootOf('e2')).id, (r) => r.status === 'queued', 'queued');
    const after = await until(queued.id, (r) => r.status !== 'queued', 'out of the queue at its cap', 20_000);
    expect(after.queue.exceeded).toBe(true);
    expect(after.history.some((h: any) => h.phase === 'budget-exceeded')).toBe(true);
    const report = await api(
      url,
      `/v1/reports/compliance?from=${new Date(Date.now() - 3600_000).toISOString()}&to=${new Date(Date.now() + 60_000).toISOString()}`,
      {
        token: OPERATOR_TOKEN,
      },
    );
    const row = report.json.reboots.find((r: any) => r.id === queued.id);
    expect(row.findings.map((f: any) => f.code)).toContain('budget-exceeded');
    expect(row.budgetWaitSeconds).toBeGreaterThanOrEqual(1);
    await event('e1', 'e1-r', 'xpu.ready');
    await event('e2', 'e2-r', 'xpu.ready');
    await until(first.id, (r) => r.status === 'completed', 'completed');
  }, 60_000);
});

describe('budgets under concurrency and outages', () => {
  it('four notices at once in a rack of budget 1: one goes on, three are queued, and they go on one at a time', async () => {
    const nodes = ['d1', 'd2', 'd3', 'd4'];
    for (const n of nodes) {
      answering.add(n);
      answering.add(`${n}.dpu0`);
    }
    await Promise.all(nodes.map((n) => event(n, `${n}-n`, 'xpu.reboot.pending')));
    const ids = await Promise.all(nodes.map(async (n) => (await rebootOf(n)).id));
    const done = new Set<string>();
    while (done.size < nodes.length) {
      const all = await Promise.all(ids.map(get));
      // Never two in flight at once: every reboot not queued and not ended holds the rack's one slot.
      const inFlight = all.filter((r) => r.status !== 'queued' && r.status !== 'completed');
      expect(inFlight.length, JSON.stringify(all.map((r) => [r.node, r.status]))).toBeLessThanOrEqual(1);
      const running = inFlight.find((r) => r.status === 'rebooting' && !done.has(r.id));
      if (running) {
        await event(running.node, `${running.node}-r`, 'xpu.ready');
        await until(running.id, (r) => r.status === 'completed', 'completed');
        done.add(running.id);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const finals = await Promise.all(ids.map(get));
    expect(finals.filter((r) => r.history.some((h: any) => h.phase === 'queued'))).toHaveLength(3);
    expect(finals.every((r) => r.status === 'completed')).toBe(true);
  }, 90_000);

  it('a crash in a full rack is never held but counts, and says so; a queued reboot whose xPU goes down anyway leaves the queue', async () => {
    await event('f1', 'f1-n', 'xpu.reboot.pending');
    const first = await until((await rebootOf('f1')).id, (r) => r.status === 'rebooting', 'rebooting');
    await event('f2', 'f2-n', 'xpu.reboot.pending');
    const queued = await until((await rebootOf('f2')).id, (r) => r.status === 'queued', 'queued');
    await event('f2', 'f2-d', 'xpu.down');
    const gone = await until(queued.id, (r) => r.status === 'rebooting', 'rebooting after it went down');
    expect(gone.history.map((h: any) => h.phase)).toEqual(expect.arrayContaining(['queued', 'admitted', 'budget-exceeded']));
    await event('f2', 'f2-r', 'xpu.ready');
    await until(queued.id, (r) => r.status === 'completed', 'completed');

    await event('f2', 'f2-c', 'xpu.crashed', { reason: 'NMI' });
    const crash = await waitFor('the crash reboot', async () =>
      (await api(url, '/v1/reboots?node=f2', { token: OPERATOR_TOKEN })).json.items.find((r: any) => r.mode === 'crash'),
    );
    expect(crash.status).not.toBe('queued');
    expect(crash.history.find((h: any) => h.phase === 'budget-exceeded').detail).toMatch(/crash is never held.*rack r7/);
    // An xPU that reboots without notice in the full rack: recorded at once, counted, and said.
    await event('f3', 'f3-d', 'xpu.down');
    const unannounced = await until((await rebootOf('f3')).id, (r) => r.mode === 'unannounced', 'unannounced');
    expect(unannounced.history.find((h: any) => h.phase === 'budget-exceeded').detail).toMatch(/unannounced reboot is never held.*rack r7/);
    await event('f3', 'f3-r', 'xpu.ready');
    await until(unannounced.id, (r) => r.status === 'completed', 'completed');
    await event('f1', 'f1-r', 'xpu.ready');
    await event('f2', 'f2-cr', 'xpu.ready');
    await until(first.id, (r) => r.status === 'completed', 'completed');
    await until(crash.id, (r) => r.status === 'completed', 'completed');
  }, 60_000);
});

describe('rollouts within budgets', () => {
  it('a rollout of maxUnavailable 3 across a rack of budget 1 reboots one xPU at a time, holding the others back itself', async () => {
    const nodes = ['g1', 'g2', 'g3'];
    for (const n of nodes) {
      answering.add(n);
      answering.add(`${n}.dpu0`);
      reactions.set(`${n}.dpu0`, async (cmd) => {
        if (cmd.type === 'reboot-xpu')
          await event(n, `${n}-${cmd.id}`, 'xpu.reboot.pending', {
            reason: cmd.args.reason,
            noticeSeconds: cmd.args.noticeSeconds,
            rolloutId: cmd.args.rolloutId,
          });
        if (cmd.type === 'proceed-reboot') {
          await event(n, `${n}-down`, 'xpu.down');
          await event(n, `${n}-ready`, 'xpu.ready');
        }
      });
    }
    const started = await api(url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { rack: 'r8' }, maxUnavailable: 3, reason: 'firmware 2.1' },
    });
    expect(started.status).toBe(201);
    let most = 0;
    const all = await waitFor(
      'the rollout to complete',
      async () => {
        const items = (await api(url, '/v1/reboots?limit=200', { token: OPERATOR_TOKEN })).json.items.filter((r: any) =>
          nodes.includes(r.node),
        );
        most = Math.max(most, items.filter((r: any) => !['queued', 'completed', 'failed', 'cancelled'].includes(r.status)).length);
        const ro = (await api(url, `/v1/rollouts/${started.json.id}`, { token: OPERATOR_TOKEN })).json;
        if (ro.status === 'completed') return items;
        throw new Error(
          JSON.stringify({
            ro: { status: ro.status, blocked: ro.blocked, done: ro.done, pending: ro.pending, history: ro.history?.slice(-3) },
            reboots: items.map((r: any) => [r.node, r.status, r.history.at(-1)?.detail]),
            seen: nodes.map((n) => [types(n), types(`${n}.dpu0`)]),
          }),
        );
      },
      30_000,
      50,
    );
    expect(most).toBe(1);
    expect(all).toHaveLength(3);
    // The rollout held them back itself: none had to be queued by the coordinator.
    expect(all.filter((r: any) => r.history.some((h: any) => h.phase === 'queued'))).toEqual([]);
  }, 90_000);
});

describe('holds', () => {
  it('a hold on a rack queues its planned reboots and denies host reboots (hold); DELETE lets what it queued go on', async () => {
    const bad = await api(url, '/v1/holds', { token: OPERATOR_TOKEN, body: { selector: { rack: 'r2', zone: 'z' }, reason: 'x' } });
    expect(bad.status).toBe(400);
    expect((await api(url, '/v1/holds', { token: OPERATOR_TOKEN, body: { selector: { rack: 'nope' }, reason: 'x' } })).status).toBe(404);
    expect((await api(url, '/v1/holds', { token: 'agent-token-b1', body: { selector: { rack: 'r2' }, reason: 'x' } })).status).toBe(403);
    expect((await api(url, '/v1/holds', { body: { selector: { rack: 'r2' }, reason: 'x' } })).status).toBe(401);
    const created = await api(url, '/v1/holds', {
      token: OPERATOR_TOKEN,
      body: { selector: { rack: 'r2' }, reason: 'network maintenance' },
    });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({
      id: expect.any(String),
      selector: { rack: 'r2' },
      reason: 'network maintenance',
      by: 'operator',
      nodes: ['b1', 'b2'],
    });
    expect((await api(url, '/v1/holds', { token: OPERATOR_TOKEN })).json.items.map((h: any) => h.id)).toContain(created.json.id);

    await event('b1', 'b1-n', 'xpu.reboot.pending');
    const queued = await until((await rebootOf('b1')).id, (r) => r.status === 'queued', 'queued');
    expect(queued.queue.reason).toMatch(/^hold: hold .* on rack r2 \(network maintenance\)/);
    await event('b2', 'b2-h', 'host.reboot.requested', { method: 'ipmi' });
    const denied = await until((await rebootOf('b2', 'host')).id, (r) => r.status === 'denied', 'denied');
    expect(denied.denyReason).toBe('hold');

    expect((await api(url, `/v1/holds/${created.json.id}`, { method: 'DELETE', token: OPERATOR_TOKEN })).status).toBe(204);
    expect((await api(url, `/v1/holds/${created.json.id}`, { method: 'DELETE', token: OPERATOR_TOKEN })).status).toBe(404);
    const goes = await until(queued.id, (r) => r.status !== 'queued', 'out of the queue');
    expect(goes.history.some((h: any) => h.phase === 'admitted')).toBe(true);
    await until(queued.id, (r) => r.status === 'rebooting', 'rebooting');
    await event('b1', 'b1-r', 'xpu.ready');
    await until(queued.id, (r) => r.status === 'completed', 'completed');
  }, 60_000);

  it('a hold with an end time ends by itself', async () => {
    const created = await api(url, '/v1/holds', {
      token: OPERATOR_TOKEN,
      body: { selector: { node: 'b2' }, reason: 'short', until: new Date(Date.now() + 1500).toISOString() },
    });
    expect(created.status).toBe(201);
    await waitFor(
      'the hold to end',
      async () => !(await api(url, '/v1/holds', { token: OPERATOR_TOKEN })).json.items.some((h: any) => h.id === created.json.id),
    );
  });
});

describe('cancel and force', () => {
  it('cancel before the xPU went down: cancel-reboot to the xPU, restore-pcie then (once it succeeded) resume-workloads to the host; a second cancel changes nothing', async () => {
    await event('c1', 'c1-n', 'xpu.reboot.pending');
    const r = await rebootOf('c1');
    await waitFor('the preparation commands', async () => types('c1').includes('protect-pcie'));
    expect((await api(url, `/v1/reboots/${r.id}/cancel`, { token: 'agent-token-c2', body: { reason: 'x' } })).status).toBe(403);
    // The xPU has a token of its own: the host's token may not speak for it.
    expect((await api(url, `/v1/reboots/${r.id}/cancel`, { token: 'agent-token-c1', body: { reason: 'x' } })).status).toBe(403);
    const res = await api(url, `/v1/reboots/${r.id}/cancel`, { token: 'xpu-token-c1', body: { reason: 'wrong xPU' } });
    expect(res.status).toBe(200);
    expect(res.json.status).toBe('cancelled');
    expect(res.json.history.find((h: any) => h.phase === 'cancelled')).toMatchObject({
      by: 'agent:c1.dpu0',
      detail: expect.stringMatching(/wrong xPU/),
    });
    await waitFor('cancel-reboot', async () => types('c1.dpu0').includes('cancel-reboot'));
    await waitFor('the host to restore PCIe', async () => types('c1').includes('restore-pcie'));
    expect(types('c1')).toEqual(['migrate-workloads', 'protect-pcie', 'restore-pcie']);
    const restore = seen.get('c1')!.find((c) => c.type === 'restore-pcie');
    expect((await api(url, `/v1/agents/c1/commands/${restore.id}`, { token: OPERATOR_TOKEN, body: { status: 'succeeded' } })).status).toBe(
      200,
    );
    await waitFor('the host to resume', async () => types('c1').includes('resume-workloads'));
    expect(types('c1')).toEqual(['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads']);
    expect(types('c1.dpu0')).toEqual(['cancel-reboot']);
    const again = await api(url, `/v1/reboots/${r.id}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'again' } });
    expect(again.status).toBe(200);
    expect(again.json.history.filter((h: any) => h.phase === 'cancelled')).toHaveLength(1);
    expect((await api(url, `/v1/reboots/${r.id}/force`, { token: OPERATOR_TOKEN, body: {} })).status).toBe(409);
  }, 40_000);

  it('cancel after the xPU went down is 409; its own agent may try, another node may not', async () => {
    await event('c2', 'c2-n', 'xpu.reboot.pending');
    const r = await rebootOf('c2');
    await event('c2', 'c2-d', 'xpu.down');
    await until(r.id, (x) => !!x.downAt, 'down');
    const res = await api(url, `/v1/reboots/${r.id}/cancel`, { token: 'agent-token-c2', body: { reason: 'too late' } });
    expect(res.status).toBe(409);
    expect((await get(r.id)).status).not.toBe('cancelled');
  });

  it('force in the notice phase: proceed-reboot to the xPU at once, what the host left undone recorded; later 409', async () => {
    await event('c3', 'c3-n', 'xpu.reboot.pending');
    const r = await rebootOf('c3');
    await waitFor('the preparation commands', async () => types('c3').includes('protect-pcie'));
    expect((await api(url, `/v1/reboots/${r.id}/force`, { token: 'agent-token-c3', body: {} })).status).toBe(403);
    const res = await api(url, `/v1/reboots/${r.id}/force`, { token: OPERATOR_TOKEN, body: { reason: 'hurry' } });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ status: 'rebooting', forced: true });
    // Where each had got to: the host took them (delivered) and said nothing.
    expect(res.json.outstanding).toEqual(['migrate-workloads (delivered)', 'protect-pcie (delivered)']);
    expect(res.json.history.find((h: any) => h.phase === 'forced')).toMatchObject({
      by: 'operator',
      detail: expect.stringMatching(/hurry/),
    });
    await waitFor('proceed-reboot', async () => types('c3.dpu0').includes('proceed-reboot'));
    await event('c3', 'c3-d', 'xpu.down');
    await until(r.id, (x) => !!x.downAt, 'down');
    expect((await api(url, `/v1/reboots/${r.id}/force`, { token: OPERATOR_TOKEN, body: {} })).status).toBe(200); // repeated: the same answer
    expect((await api(url, `/v1/reboots/${r.id}/cancel`, { token: OPERATOR_TOKEN, body: {} })).status).toBe(409);
    answering.add('c3');
    await event('c3', 'c3-r', 'xpu.ready');
    await until(r.id, (x) => x.status === 'completed', 'completed');
  }, 40_000);
});

describe('a queued reboot across kill -9', () => {
  it('stays queued through a kill -9 of the stack and goes on when the slot frees after the restart', async () => {
    const dir = tempDir('fleet-kill');
    const nodesFile = writeInventory(
      dir,
      `
policy:
  xpuReboot: { noticeSeconds: 2, maxExtensionSeconds: 600, recoverySeconds: 60, commandSeconds: 2, heartbeatSeconds: 30 }
  budgets: [{ per: rack, maxUnavailable: 1 }]
nodes:
  - { id: k1, rack: rk, agentToken: agent-token-k1, xpus: [{ id: dpu0 }] }
  - { id: k2, rack: rk, agentToken: agent-token-k2, xpus: [{ id: dpu0 }] }
`,
    );
    let s = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile });
    try {
      const post = (node: string, id: string, type: string) =>
        api(s.url, '/v1/events', { token: `agent-token-${node}`, body: { id, type, node, xpu: 'dpu0' } });
      const find = (node: string) =>
        waitFor(`a reboot of ${node}`, async () => (await api(s.url, `/v1/reboots?node=${node}`, { token: OPERATOR_TOKEN })).json.items[0]);
      const status = (id: string, ok: (r: any) => boolean, what: string) =>
        waitFor(
          `${id} ${what}`,
          async () => {
            const r = (await api(s.url, `/v1/reboots/${id}`, { token: OPERATOR_TOKEN })).json;
            return ok(r) ? r : undefined;
          },
          30_000,
        );
      await post('k1', 'k1-n', 'xpu.reboot.pending');
      const first = await find('k1');
      await post('k2', 'k2-n', 'xpu.reboot.pending');
      const queued = await status((await find('k2')).id, (r) => r.status === 'queued', 'queued');
      await status(first.id, (r) => r.status === 'rebooting', 'forced at its deadline');
      expect(await s.stop('SIGKILL')).toBe(null);
      s = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile });
      expect((await api(s.url, `/v1/reboots/${queued.id}`, { token: OPERATOR_TOKEN })).json.status).toBe('queued');
      await post('k1', 'k1-r', 'xpu.ready');
      // No host agent here: restore-pcie times out and the reboot fails (docs/reboot-model.md); it ends all the same.
      await status(first.id, (r) => r.status === 'completed' || r.status === 'failed', 'ended');
      const goes = await status(queued.id, (r) => r.status !== 'queued', 'out of the queue');
      expect(goes.history.some((h: any) => h.phase === 'admitted')).toBe(true);
    } finally {
      await s.stop();
    }
  }, 90_000);
});
