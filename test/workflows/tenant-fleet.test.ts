// Tenant holds and tenant budgets follow the tenant a node is provisioned for (contract 7.1, 7.3), against the
// real local stack: `moved` is t1 in the inventory and re-provisioned for t2 by a host.ready; `stay` stays t1,
// `other` is t2 in the inventory. One tenant budget of 1 and one stack for the file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredReboot } from '../../lambdas/core/reboot.ts';
import { eventually, startHarness, type Harness } from './harness.ts';

const INVENTORY = `
policy:
  xpuReboot: { noticeSeconds: 300, maxExtensionSeconds: 600, maxExtensions: 2, recoverySeconds: 900, coredumpSeconds: 120, heartbeatSeconds: 60, commandSeconds: 120 }
  hostReboot: { denyWhile: [xpu-rebooting], returnSeconds: 1800, commandSeconds: 120, heartbeatSeconds: 60 }
  budgets: [{ per: tenant, maxUnavailable: 1 }]
nodes:
${['moved:t1:r1', 'stay:t1:r2', 'other:t2:r3']
  .map((s) => s.split(':'))
  .map(
    ([n, t, r]) =>
      `  - { id: ${n}, rack: ${r}, zone: z1, tenant: ${t}, trusted: true, bmcToken: bmc-token-${n}, agentToken: agent-token-${n}, xpus: [{ id: dpu0, persistentPower: false }] }`,
  )
  .join('\n')}
`;

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ inventory: INVENTORY });
}, 30_000);
afterAll(async () => {
  await h?.close();
});

const seen = new Set<string>();
/** The next reboot of that node and kind this file has not looked at yet. */
async function next(node: string, kind: 'xpu' | 'host'): Promise<StoredReboot> {
  const r = await eventually(`a new ${kind} reboot of ${node}`, async () =>
    (await h.reboots(node)).find((x) => x.kind === kind && !seen.has(x.id)),
  );
  seen.add(r.id);
  return r;
}

async function announce(node: string): Promise<StoredReboot> {
  expect((await h.event(node, 'xpu.reboot.pending', { xpu: 'dpu0', data: { reason: 'firmware' } })).status).toBe(202);
  await h.drain();
  return next(node, 'xpu');
}

async function hostRequest(node: string): Promise<StoredReboot> {
  expect((await h.event(node, 'host.reboot.requested', { data: { method: 'shell' } })).status).toBe(202);
  await h.drain();
  return next(node, 'host');
}

/** Cancels an xPU reboot, answers what its agents get, and waits until its workflow ended. */
async function cancelAndEnd(node: string, id: string): Promise<void> {
  expect((await h.request(`/v1/reboots/${id}/cancel`, { body: { reason: 'test' } })).status).toBe(200);
  for (;;) {
    await h.agent(node).answerAll();
    await h.agent(`${node}.dpu0`).answerAll();
    if ((await h.executionStatus(id)) !== 'RUNNING') break;
    await new Promise((res) => setTimeout(res, 20));
  }
}

async function hold(selector: Record<string, string>): Promise<{ id: string; nodes: string[] }> {
  const res = await h.request('/v1/holds', { body: { selector, reason: 'audit' } });
  expect(res.status).toBe(201);
  return res.json;
}

const release = async (id: string) => expect((await h.request(`/v1/holds/${id}`, { method: 'DELETE' })).status).toBe(204);

describe('a node re-provisioned for another tenant', () => {
  it('comes back from its host reboot provisioned for t2', async () => {
    const r = await hostRequest('moved');
    await h.waitForState(r.id, 'FreeHostContext');
    await h.agent('moved.dpu0').answerAll();
    await h.waitForState(r.id, 'WaitForHostBack');
    await h.event('moved', 'host.ready', { data: { tenant: 't2' } });
    await h.drain();
    await h.waitForState(r.id, 'WaitForXpusBack');
    await h.event('moved', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    const reprovisioned: string[] = [];
    while (!(await h.reboot(r.id)).endedAt) {
      reprovisioned.push(
        ...(await h.agent('moved.dpu0').answerAll()).filter((c) => c.type === 'reprovision').map((c) => String(c.args.tenant)),
      );
      await new Promise((res) => setTimeout(res, 20));
    }
    expect(reprovisioned).toEqual(['t2']);
    expect((await h.reboot(r.id)).status).toBe('completed');
    // Both follow a write the loop above may already have seen: the tenant is written after the reprovision
    // step registered and woke the workflow, the slot given back after the end is written (handlers/end.ts).
    await eventually('moved provisioned for t2', async () => (await h.request('/v1/nodes/moved')).json.provisionedTenant === 't2');
    // Its host reboot counted under t1 (the tenant then) and gave that slot back.
    await eventually('the t1 slot given back', async () => ((await h.stack.deps.store.budgetUsage()).get('tenant:t1') ?? []).length === 0);
  });

  it('is not matched by a hold on its old inventory tenant t1: its planned reboot goes on and counts under t2', async () => {
    await h.advance(1000);
    const t1 = await hold({ tenant: 't1' });
    const mine = await announce('moved');
    expect(['notified', 'preparing']).toContain(mine.status);
    expect(mine.queue).toBeUndefined();
    expect(mine.tenant).toBe('t2');
    expect(mine.budgetKeys).toEqual(['tenant:t2']);
    const usage = await h.stack.deps.store.budgetUsage();
    expect(usage.get('tenant:t2')).toEqual(['moved']);
    expect(usage.get('tenant:t1') ?? []).toEqual([]);
    expect(t1.nodes).toEqual(['stay']);

    // t2's budget of 1 is full with `moved`: another t2 node's planned reboot waits for it.
    const theirs = await announce('other');
    expect(theirs.status).toBe('queued');
    expect(theirs.queue?.reason).toBe('budget: tenant t2 has 1 of 1 nodes unavailable (moved)');

    // The slot `moved` gives back under t2 is the one that lets it go on.
    await cancelAndEnd('moved', mine.id);
    expect((await h.waitForStatus(theirs.id, ['notified', 'preparing'])).history.map((e) => e.phase)).toContain('admitted');
    await cancelAndEnd('other', theirs.id);
    await release(t1.id);
  });

  it('is matched by a hold on t2: its planned xPU reboot is queued, its host reboot request denied (hold); DELETE lets it go on', async () => {
    await h.advance(1000);
    const t2 = await hold({ tenant: 't2' });

    const denied = await hostRequest('moved');
    expect(denied).toMatchObject({ status: 'denied', denyReason: 'hold', tenant: 't2' });
    expect(denied.history.map((e) => e.detail).join('\n')).toContain(`hold ${t2.id} on tenant t2`);
    const deny = await eventually('deny-host-reboot', async () =>
      (await h.agent('moved').answerAll()).find((c) => c.type === 'deny-host-reboot'),
    );
    expect(deny.args).toMatchObject({ reason: 'hold' });

    const queued = await announce('moved');
    expect(queued.status).toBe('queued');
    expect(queued.queue?.reason).toMatch(new RegExp(`^hold: hold ${t2.id} on tenant t2`));
    expect(t2.nodes.sort()).toEqual(['moved', 'other']);
    expect((await h.request('/v1/holds')).json.items.find((x: { id: string }) => x.id === t2.id).nodes.sort()).toEqual(['moved', 'other']);
    await release(t2.id);
    await h.waitForStatus(queued.id, ['notified', 'preparing']);
    await cancelAndEnd('moved', queued.id);
  });

  it('waits in t2’s budget when queued: the slot another t2 node gives back wakes it', async () => {
    await h.advance(1000);
    const theirs = await announce('other');
    expect(theirs.queue).toBeUndefined();
    const mine = await announce('moved');
    expect(mine.status).toBe('queued');
    expect(mine.queue?.reason).toBe('budget: tenant t2 has 1 of 1 nodes unavailable (other)');
    // No clock moves: only the wake-up of the slot given back under tenant:t2 lets it go on.
    await cancelAndEnd('other', theirs.id);
    const admitted = await h.waitForStatus(mine.id, ['notified', 'preparing']);
    expect(admitted.budgetKeys).toEqual(['tenant:t2']);
    await cancelAndEnd('moved', mine.id);
  });

  it('an unannounced reboot of it is never held, and counts under t2', async () => {
    await h.advance(1000);
    await h.event('moved', 'xpu.down', { xpu: 'dpu0' });
    await h.drain();
    const r = await next('moved', 'xpu');
    expect(r).toMatchObject({ mode: 'unannounced', tenant: 't2', budgetKeys: ['tenant:t2'] });
    expect((await h.stack.deps.store.budgetUsage()).get('tenant:t2')).toEqual(['moved']);
    await h.event('moved', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    while (!(await h.reboot(r.id)).endedAt) {
      await h.agent('moved').answerAll();
      await new Promise((res) => setTimeout(res, 20));
    }
    // The slot goes back once the end is written (handlers/end.ts), which the loop may see first.
    await eventually('the t2 slot given back', async () => ((await h.stack.deps.store.budgetUsage()).get('tenant:t2') ?? []).length === 0);
  });

  it('a rollout by tenant plans the nodes provisioned for it', async () => {
    const plan = async (tenant: string) =>
      (await h.request('/v1/rollouts', { body: { selector: { tenant }, maxUnavailable: 1, reason: 'fw', dryRun: true } })).json.plan;
    expect(await plan('t2')).toEqual([
      { node: 'moved', xpu: 'dpu0' },
      { node: 'other', xpu: 'dpu0' },
    ]);
    expect(await plan('t1')).toEqual([{ node: 'stay', xpu: 'dpu0' }]);
  });

  it('the fleet view shows the provisioned tenant', async () => {
    const fleet = await h.request('/v1/fleet');
    expect(fleet.status).toBe(200);
    const nodes = fleet.json.racks.flatMap((r: { nodes: unknown[] }) => r.nodes);
    expect(nodes.find((n: { id: string }) => n.id === 'moved')).toMatchObject({ tenant: 't2' });
    expect(fleet.json.budgets.map((b: { key: string }) => b.key)).toEqual(['tenant:t1', 'tenant:t2']);
  });
});
