// docs/reboot-model.md against the real local stack (in-process, manual clock): each behaviour of the reboot
// model under disorder, one node of the inventory per test so that one stack serves the whole file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredReboot } from '../../lambdas/core/reboot.ts';
import { eventually, phases, startHarness, type Harness, oneXpuInventory } from './harness.ts';

const SECOND = 1000;
const DAY = 24 * 3600 * SECOND;
const NODES = [
  'skew',
  'early',
  'order',
  'kept',
  'tenant',
  'joinlate',
  'postpone',
  'restorefail',
  'restorerace',
  'late',
  'crashready',
  'proceedno',
  'unann',
  'lateafter',
];
const INVENTORY = oneXpuInventory(NODES);

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ inventory: INVENTORY });
}, 30_000);
afterAll(async () => {
  await h?.close();
});

const iso = (ms: number) => new Date(ms).toISOString();

async function announce(node: string, opts: { time?: string; token?: string } = {}): Promise<StoredReboot> {
  const posted = await h.event(node, 'xpu.reboot.pending', { xpu: 'dpu0', data: { reason: 'firmware' }, ...opts });
  expect(posted.status).toBe(202);
  await h.drain();
  const r = await h.rebootOf(node, 'xpu');
  await h.waitForState(r.id, 'PrepareHost');
  return r;
}

/** The host prepares, the xPU takes the early go: the workflow waits for the xPU to go down. */
async function prepareAndGo(node: string, id: string) {
  await h.agent(node).answerAll();
  await h.waitForState(id, 'WaitForXpuDown');
  expect((await h.agent(`${node}.dpu0`).answerAll()).map((c) => c.type)).toEqual(['proceed-reboot']);
}

/** restore-pcie, and only once it succeeded resume-workloads; returns the command types in order. */
async function restoreAndResume(node: string, id: string): Promise<string[]> {
  await h.waitForState(id, 'RestorePcie');
  const a = await h.agent(node).answerAll();
  await h.waitForState(id, 'ResumeWorkloads');
  const b = await h.agent(node).answerAll();
  return [...a, ...b].map((c) => c.type);
}

describe('clocks', () => {
  it('a reboot announced and ended by a BMC whose clock is 10 days behind completes', async () => {
    const start = h.now().getTime();
    const bmc = { token: 'bmc-token-skew' };
    const behind = (ms: number) => iso(start - 10 * DAY + ms);
    const r = await announce('skew', { ...bmc, time: behind(0) });
    // Notice and deadline on the coordinator's clock.
    expect(r.notifiedAt).toBe(iso(start));
    expect(r.deadline).toBe(iso(start + 300 * SECOND));
    await prepareAndGo('skew', r.id);
    await h.advance(30 * SECOND);
    await h.event('skew', 'xpu.down', { xpu: 'dpu0', time: behind(30 * SECOND), ...bmc });
    await h.advance(60 * SECOND);
    await h.event('skew', 'xpu.ready', { xpu: 'dpu0', time: behind(90 * SECOND), ...bmc });
    await h.drain();
    expect(await restoreAndResume('skew', r.id)).toEqual(['restore-pcie', 'resume-workloads']);
    const done = await h.waitForStatus(r.id, 'completed');
    expect(phases(done)).not.toContain('stale-event');
    expect(done.readyAt).toBe(iso(start + 90 * SECOND));
  });
});

describe('signals before their reboot', () => {
  it('an xpu.ready processed before its crash: one reboot, the crash joins it, no recovery bound waited', async () => {
    const start = h.now().getTime();
    await h.ingestDirect({ id: 'early-ready', type: 'xpu.ready', node: 'early', xpu: 'dpu0' });
    // The crash happened first by the xPU's own clock; the queue delivered it second.
    await h.ingestDirect({
      id: 'early-crash',
      type: 'xpu.crashed',
      node: 'early',
      xpu: 'dpu0',
      time: iso(start - 5 * SECOND),
      data: { reason: 'panic' },
    });
    const all = await h.reboots('early');
    expect(all).toHaveLength(1);
    const [r] = all;
    expect(r.mode).toBe('unannounced');
    await h.waitForState(r.id, 'RestorePcie');
    expect((await h.agent('early').answerAll()).map((c) => c.type)).toEqual(['restore-pcie']);
    const done = await h.waitForStatus(r.id, 'completed');
    expect(phases(done)).toContain('crashed');
    expect(h.now().getTime()).toBe(start);
  });

  it('a ready reordered before its own notice (same source) makes no second reboot', async () => {
    const start = h.now().getTime();
    await h.ingestDirect({ id: 'order-ready', type: 'xpu.ready', node: 'order', xpu: 'dpu0', time: iso(start) });
    const [u] = await h.reboots('order');
    await h.waitForState(u.id, 'RestorePcie');
    await h.agent('order').answerAll();
    await h.waitForStatus(u.id, 'completed');
    // The notice was sent before the ready by the same clock: it announces the outage already recorded.
    await h.ingestDirect({ id: 'order-notice', type: 'xpu.reboot.pending', node: 'order', xpu: 'dpu0', time: iso(start - 60 * SECOND) });
    const all = await h.reboots('order');
    expect(all).toHaveLength(1);
    expect(phases(await h.reboot(u.id))).toContain('joined');
  });

  it('host.down and host.ready processed before their host.reboot.requested are kept and applied when it appears', async () => {
    const start = h.now().getTime();
    await h.ingestDirect({ id: 'kept-down', type: 'host.down', node: 'kept', time: iso(start + 10 * SECOND) });
    await h.ingestDirect({ id: 'kept-ready', type: 'host.ready', node: 'kept', time: iso(start + 50 * SECOND), data: { tenant: 't1' } });
    expect((await h.stack.deps.store.keptSignals('kept')).map((e) => e.type)).toEqual(['host.down', 'host.ready']);
    await h.ingestDirect({ id: 'kept-req', type: 'host.reboot.requested', node: 'kept', time: iso(start), data: { method: 'shell' } });
    const r = await h.rebootOf('kept', 'host');
    expect(r.hostDownAt && r.hostReadyAt).toBeTruthy();
    expect(await h.stack.deps.store.keptSignals('kept')).toEqual([]);
    await h.waitForState(r.id, 'FreeHostContext');
    await h.agent('kept.dpu0').answerAll();
    await h.waitForState(r.id, 'WaitForXpusBack');
    await h.event('kept', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForStatus(r.id, 'completed');
    expect(await h.reboots('kept')).toHaveLength(1);
  });
});

/** A whole host reboot of `node` that comes back for `tenant`; returns the reprovision commands. */
async function hostReboot(node: string, tenant: string): Promise<Array<{ type: string; args: Record<string, unknown> }>> {
  await h.event(node, 'host.reboot.requested', { data: { method: 'shell' } });
  await h.drain();
  const r = await eventuallyNewHost(node);
  await h.waitForState(r.id, 'FreeHostContext');
  await h.agent(`${node}.dpu0`).answerAll();
  await h.waitForState(r.id, 'WaitForHostBack');
  await h.event(node, 'host.ready', { data: { tenant } });
  await h.drain();
  await h.waitForState(r.id, 'WaitForXpusBack');
  await h.event(node, 'xpu.ready', { xpu: 'dpu0' });
  await h.drain();
  const cmds: Array<{ type: string; args: Record<string, unknown> }> = [];
  const end = async () => (await h.reboot(r.id)).endedAt;
  while (!(await end())) {
    cmds.push(...(await h.agent(`${node}.dpu0`).answerAll()));
    await new Promise((res) => setTimeout(res, 20));
  }
  expect((await h.reboot(r.id)).status).toBe('completed');
  return cmds;
}

const seenHosts = new Set<string>();
async function eventuallyNewHost(node: string): Promise<StoredReboot> {
  for (;;) {
    const r = (await h.reboots(node)).find((x) => x.kind === 'host' && !seenHosts.has(x.id));
    if (r) {
      seenHosts.add(r.id);
      return r;
    }
    await new Promise((res) => setTimeout(res, 20));
  }
}

describe('tenants are node state', () => {
  it('t1 → t9 → t1 re-provisions both ways, and GET /v1/nodes shows the provisioned tenant', async () => {
    const before = await h.request('/v1/nodes/tenant');
    expect(before.status).toBe(200);
    expect(before.json).toEqual({
      id: 'tenant',
      rack: 'r1',
      zone: 'z1',
      provisionedTenant: 't1',
      xpus: [{ id: 'dpu0', persistentPower: false }],
      activeReboots: [],
    });
    expect((await hostReboot('tenant', 't9')).filter((c) => c.type === 'reprovision').map((c) => c.args)).toEqual([{ tenant: 't9' }]);
    // Written after the reprovision step woke the workflow: hostReboot() may see the end first.
    await eventually('tenant provisioned for t9', async () => (await h.request('/v1/nodes/tenant')).json.provisionedTenant === 't9');
    // The leak this fixes: the inventory says t1, the xPU holds t9; t1 coming back must re-provision.
    expect((await hostReboot('tenant', 't1')).filter((c) => c.type === 'reprovision').map((c) => c.args)).toEqual([{ tenant: 't1' }]);
    await eventually(
      'tenant provisioned for t1, as its agent sees it',
      async () => (await h.request('/v1/nodes/tenant', { token: 'agent-token-tenant' })).json.provisionedTenant === 't1',
    );
    expect((await hostReboot('tenant', 't1')).filter((c) => c.type === 'reprovision')).toEqual([]);
    expect((await h.request('/v1/nodes/tenant', { token: 'agent-token-skew' })).status).toBe(403);
  });
});

describe('joins', () => {
  it('an xPU reboot announced after host.ready is a reboot of its own with the whole notice flow', async () => {
    await h.event('joinlate', 'host.reboot.requested', { data: { method: 'shell' } });
    await h.drain();
    const host = await h.rebootOf('joinlate', 'host');
    await h.waitForState(host.id, 'FreeHostContext');
    await h.agent('joinlate.dpu0').answerAll();
    await h.waitForState(host.id, 'WaitForHostBack');
    await h.event('joinlate', 'host.ready');
    await h.drain();
    await h.waitForState(host.id, 'WaitForXpusBack');
    const x = await announce('joinlate');
    expect(x.id).not.toBe(host.id);
    expect(phases(await h.reboot(host.id))).not.toContain('xpu-reboot-joined');
    const nodeView = await h.request('/v1/nodes/joinlate');
    expect(nodeView.json.activeReboots.map((r: { id: string }) => r.id).sort()).toEqual([host.id, x.id].sort());
    expect((await h.agent('joinlate').answerAll()).map((c) => c.type)).toEqual(['migrate-workloads', 'protect-pcie']);
    await h.waitForState(x.id, 'WaitForXpuDown');
    await h.agent('joinlate.dpu0').answerAll();
    await h.event('joinlate', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    expect(await restoreAndResume('joinlate', x.id)).toEqual(['restore-pcie', 'resume-workloads']);
    await h.waitForStatus(x.id, 'completed');
    await h.waitForStatus(host.id, 'completed');
  });
});

describe('postpone-reboot', () => {
  it('each extension tells the xPU its new deadline', async () => {
    const r = await announce('postpone');
    const ext = async (seconds: number) =>
      (await h.request(`/v1/reboots/${r.id}/extensions`, { token: 'agent-token-postpone', body: { seconds, reason: 'draining' } })).json;
    const xpu = h.agent('postpone.dpu0');
    // The workflow wakes on the moved deadline and re-times its wait: the postpone goes out then.
    const postponed = () =>
      eventually('postpone-reboot for the xPU', async () => {
        const got = await xpu.poll();
        for (const c of got) await xpu.post(c.id, 'succeeded');
        return got.length ? got : undefined;
      });
    const first = await ext(120);
    const p1 = await postponed();
    expect(p1.map((c) => [c.type, c.args.deadline])).toEqual([['postpone-reboot', first.deadline]]);
    expect(p1[0].args.reason).toMatch(/extension granted: draining/);
    const second = await ext(60);
    const p2 = await postponed();
    expect(p2.map((c) => [c.type, c.args.deadline])).toEqual([['postpone-reboot', second.deadline]]);
    expect(p2[0].id).not.toBe(p1[0].id);
    await prepareAndGo('postpone', r.id);
    await h.event('postpone', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await restoreAndResume('postpone', r.id);
    const done = await h.waitForStatus(r.id, 'completed');
    expect(phases(done).filter((p) => p === 'postponed')).toHaveLength(2);
  });
});

describe('failures', () => {
  it('a failed restore-pcie is followed by nothing: the reboot fails and names the command', async () => {
    const r = await announce('restorefail');
    await prepareAndGo('restorefail', r.id);
    await h.event('restorefail', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'RestorePcie');
    const [restore] = await h.agent('restorefail').poll();
    expect(restore.type).toBe('restore-pcie');
    await h.agent('restorefail').post(restore.id, 'failed', 'rescan found no device');
    const failed = await h.waitForStatus(r.id, 'failed');
    expect(await h.waitForEnd(r.id)).toBe('FAILED');
    expect(failed.failure).toBe('restore-pcie-failed');
    expect(failed.history.at(-1)?.detail).toMatch(/restore-pcie .* failed/);
    await h.advance(20 * SECOND);
    expect(await h.agent('restorefail').poll()).toEqual([]);
    expect(Object.values(failed.commands).map((c) => c.type)).not.toContain('resume-workloads');
  });

  it('a restore-pcie success that lands as its wait times out is told as such, never as "succeeded ... nothing more is sent"', async () => {
    const r = await announce('restorerace');
    await prepareAndGo('restorerace', r.id);
    await h.event('restorerace', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'RestorePcie');
    const [restore] = await h.agent('restorerace').poll();
    expect(restore.type).toBe('restore-pcie');
    // The agent's result reaches the command record (its write of the reboot is still on the way)
    // at the moment the Task times out: the workflow has already taken the failed branch.
    const { store } = h.stack.deps;
    const at = h.now().toISOString();
    await store.updateCommand('restorerace', restore.id, (c) => ({ ...c, status: 'succeeded', output: 'rescanned', finishedAt: at }));
    await h.advance(121 * SECOND);
    const failed = await h.waitForStatus(r.id, 'failed');
    expect(failed.failure).toBe('restore-pcie-failed');
    const story = failed.history.at(-1)!.detail;
    expect(story).toMatch(new RegExp(`restore-pcie ${restore.id} succeeded on the host only after the workflow had stopped waiting`));
    expect(story).not.toMatch(/nothing more is sent/);
    expect(failed.commands[restore.id].status).toBe('succeeded');
    // The agent's own write of the reboot lands now (a retry of its POST): recorded once, nothing resumes.
    expect((await h.agent('restorerace').post(restore.id, 'succeeded', 'rescanned')).json).toMatchObject({ duplicate: true });
    const after = await h.reboot(r.id);
    expect(phases(after).filter((p) => p === 'command-succeeded').length).toBe(
      phases(failed).filter((p) => p === 'command-succeeded').length,
    );
    expect(Object.values(after.commands).map((c) => c.type)).not.toContain('resume-workloads');
  });

  it('an xpu.ready after the reboot failed for want of it still restores the host (recovered-late)', async () => {
    const r = await announce('late');
    await prepareAndGo('late', r.id);
    await h.event('late', 'xpu.down', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'WaitForXpuReady');
    await h.advance(900 * SECOND);
    const failed = await h.waitForStatus(r.id, 'failed');
    expect(failed.failure).toBe('xpu-never-returned');
    await h.event('late', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    expect(await h.reboots('late')).toHaveLength(1);
    expect(phases(await h.reboot(r.id))).toContain('recovered-late');
    const host = h.agent('late');
    const got: string[] = [];
    // The late recovery is a workflow of its own (effects.ts start-late-recovery): bounded in time, not in polls.
    await eventually('restore-pcie and resume-workloads', async () => {
      for (const c of await host.poll()) {
        got.push(c.type);
        await host.post(c.id, 'succeeded');
      }
      return got.length >= 2;
    });
    expect(got).toEqual(['restore-pcie', 'resume-workloads']);
    const after = await h.waitForStatus(r.id, 'failed');
    // A result that beat ResumeWorkloads' registration is ended by that await Lambda, after the POST answered.
    await eventually('recovered recorded', async () => phases(await h.reboot(r.id)).at(-1) === 'recovered');
    expect(after.status).toBe('failed');
  });

  it('a ready the failed reboot waited for, delivered only after the next reboot began, still recovers it', async () => {
    const r = await announce('lateafter');
    await prepareAndGo('lateafter', r.id);
    await h.event('lateafter', 'xpu.down', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'WaitForXpuReady');
    // The xPU's ready is received now, but the queue holds it back (redelivery after a receive that died).
    const readyReceived = h.now().toISOString();
    await h.advance(900 * SECOND);
    expect((await h.waitForStatus(r.id, 'failed')).failure).toBe('xpu-never-returned');
    // Meanwhile the xPU announces its next reboot, and that one starts.
    await h.advance(60 * SECOND);
    const next = await announce('lateafter');
    expect(next.id).not.toBe(r.id);
    // Then the held ready is delivered: the failed reboot's (recovered-late), not a stale event of the new one.
    await h.ingestDirect({ id: 'held-ready', type: 'xpu.ready', node: 'lateafter', xpu: 'dpu0' }, { receivedAt: readyReceived });
    expect(phases(await h.reboot(r.id))).toContain('recovered-late');
    expect(phases(await h.reboot(next.id))).not.toContain('stale-event');
    expect((await h.reboot(next.id)).readyAt).toBeUndefined();
  });

  it('after a crash, xpu.ready ends the core-dump hold at once', async () => {
    const start = h.now().getTime();
    await h.event('crashready', 'xpu.crashed', { xpu: 'dpu0' });
    await h.drain();
    const r = await h.rebootOf('crashready', 'xpu');
    await h.waitForState(r.id, 'ProtectPcieAndTakeCoreDump');
    await h.event('crashready', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'RestorePcie');
    expect(h.now().getTime()).toBe(start);
    await h.agent('crashready.dpu0').answerAll();
    await restoreAndResume('crashready', r.id);
    await h.waitForStatus(r.id, 'completed');
  });

  it('a proceed-reboot the xPU fails is recorded; recovery is timed from the deadline its watchdog keeps', async () => {
    const r = await announce('proceedno');
    await h.agent('proceedno').answerAll();
    await h.waitForState(r.id, 'WaitForXpuDown');
    const [go] = await h.agent('proceedno.dpu0').poll();
    await h.agent('proceedno.dpu0').post(go.id, 'failed', 'busy');
    // Recorded by the workflow's step after the result woke it: expect.poll's 1 s is too short for that at load.
    await eventually('proceed-not-taken recorded', async () => phases(await h.reboot(r.id)).includes('proceed-not-taken'));
    await h.waitForState(r.id, 'WaitForXpuDown');
    await h.advanceTo(Date.parse(r.deadline!) + SECOND);
    await h.waitForState(r.id, 'WaitForXpuReady');
    // Past the early go by far more than the recovery bound would allow, and still waiting.
    await h.advance(800 * SECOND);
    expect((await h.reboot(r.id)).status).toBe('rebooting');
    await h.event('proceedno', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await restoreAndResume('proceedno', r.id);
    await h.waitForStatus(r.id, 'completed');
  });
});

describe('unannounced reboots', () => {
  it('are recorded at once, shown on the node, restore PCIe and appear in the report as unannounced-reboot', async () => {
    const from = iso(h.now().getTime() - 60 * SECOND);
    await h.event('unann', 'xpu.down', { xpu: 'dpu0', token: 'bmc-token-unann' });
    await h.drain();
    const r = await h.rebootOf('unann', 'xpu');
    expect(r).toMatchObject({ mode: 'unannounced', status: 'rebooting' });
    expect((await h.request('/v1/nodes/unann')).json.activeReboots.map((x: { id: string }) => x.id)).toEqual([r.id]);
    await h.event('unann', 'xpu.ready', { xpu: 'dpu0', token: 'bmc-token-unann' });
    await h.drain();
    await h.waitForState(r.id, 'RestorePcie');
    expect((await h.agent('unann').answerAll()).map((c) => c.type)).toEqual(['restore-pcie']);
    await h.waitForStatus(r.id, 'completed');
    const report = await h.request(`/v1/reports/compliance?from=${from}&to=${iso(h.now().getTime() + 60 * SECOND)}&format=json`);
    expect(report.status).toBe(200);
    const row = report.json.reboots.find((x: { id: string }) => x.id === r.id);
    expect(row.findings).toEqual([expect.objectContaining({ code: 'unannounced-reboot', severity: 'high', category: 'policy' })]);
  });
});

describe('who', () => {
  it('every history entry of every reboot above names who caused it', async () => {
    const all = (await Promise.all(NODES.map((n) => h.reboots(n)))).flat();
    expect(all.length).toBeGreaterThan(10);
    const entries = all.flatMap((r) => r.history);
    const bad = entries.filter((e) => !/^(bmc:[\w.-]+|agent:[\w.-]+|operator(:[\w.-]+)?|coordinator)$/.test(e.by ?? ''));
    expect(bad).toEqual([]);
    expect(entries.some((e) => e.by === 'coordinator')).toBe(true);
    expect(entries.some((e) => e.by?.startsWith('agent:'))).toBe(true);
  });
});
