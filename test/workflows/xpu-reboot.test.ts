// The xPU reboot workflow (issue 4) on the in-process stack with a ManualClock: every branch, no real waiting.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { countStateEntered, phases, startHarness, T0, type Harness } from './harness.ts';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h?.close();
});

const SECOND = 1000;

/** Posts a pending for node/xpu and waits until the workflow sits in PrepareHost. */
async function announce(node = 'solo', xpu = 'dpu0', data: Record<string, unknown> = {}) {
  const posted = await h.event(node, 'xpu.reboot.pending', { xpu, data: { reason: 'firmware update', ...data } });
  expect(posted.status).toBe(202);
  await h.drain();
  const r = await h.rebootOf(node, 'xpu', xpu);
  await h.waitForState(r.id, 'PrepareHost');
  return r;
}

describe('happy path', () => {
  it('tells the xPU to proceed as soon as the host prepared, then recovers and completes', async () => {
    const r = await announce();
    expect(r.deadline).toBe(new Date(T0 + 300 * SECOND).toISOString());
    const host = h.agent('solo');
    const prep = await host.poll();
    expect(prep.map((c) => c.type)).toEqual(['migrate-workloads', 'protect-pcie']);
    expect(prep[0].args).toEqual({ target: 'other-host' });
    expect(prep.every((c) => c.deadline === r.deadline)).toBe(true);
    await host.post(prep[0].id, 'succeeded');
    await host.post(prep[1].id, 'skipped');

    await h.waitForState(r.id, 'WaitForXpuReady');
    const xpu = h.agent('solo.dpu0');
    const go = await xpu.poll();
    expect(go.map((c) => c.type)).toEqual(['proceed-reboot']);
    const rebooting = await h.reboot(r.id);
    expect(rebooting).toMatchObject({ status: 'rebooting', forced: false });
    expect(h.now().getTime()).toBe(T0); // early: not a second of the notice was waited for
    await xpu.post(go[0].id, 'succeeded');

    await h.event('solo', 'xpu.down', { xpu: 'dpu0' });
    await h.event('solo', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'RestorePcieAndResume');
    const rec = await host.answerAll();
    expect(rec.map((c) => c.type)).toEqual(['restore-pcie', 'resume-workloads']);

    const done = await h.waitForStatus(r.id, 'completed');
    expect(await h.waitForEnd(r.id)).toBe('SUCCEEDED');
    expect(phases(done)).toEqual(expect.arrayContaining(['notified', 'preparing', 'rebooting', 'xpu-down', 'xpu-ready', 'recovering', 'completed']));
    expect(done.history.every((e, i, all) => i === 0 || e.at >= all[i - 1].at)).toBe(true);
  });

  it('stays within 30 state transitions', async () => {
    const r = await announce();
    await h.agent('solo').answerAll();
    await h.waitForState(r.id, 'WaitForXpuReady');
    await h.agent('solo.dpu0').answerAll();
    await h.event('solo', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'RestorePcieAndResume');
    await h.agent('solo').answerAll();
    expect(await h.waitForEnd(r.id)).toBe('SUCCEEDED');
    const entered = await h.statesEntered(r.id);
    expect(entered).toEqual(['ChooseNoticeOrCrash', 'PrepareHost', 'RouteHostAnswer', 'ProceedReboot', 'WaitForXpuReady', 'RestorePcieAndResume', 'CompleteReboot', 'RebootCompleted']);
    expect(countStateEntered(await h.history(r.id))).toBeLessThanOrEqual(30);
  });
});

const extend = (id: string, seconds: number, token = 'agent-token-solo') =>
  h.request(`/v1/reboots/${id}/extensions`, { token, body: { seconds, reason: 'draining a VM' } });

/** Advances to `to` in steps shorter than the heartbeat timeout, the host agent heartbeating `cmdId` each step. */
async function advanceAlive(node: string, cmdId: string, to: number) {
  const host = h.agent(node);
  while (h.now().getTime() < to) {
    await host.post(cmdId, 'running');
    await h.advance(Math.min(30 * SECOND, to - h.now().getTime()));
  }
}

/** Takes a reboot from PrepareHost to WaitForXpuReady the happy way. */
async function prepareAndProceed(id: string, node = 'solo', xpu = 'dpu0') {
  await h.agent(node).answerAll();
  await h.waitForState(id, 'WaitForXpuReady');
  const go = await h.agent(`${node}.${xpu}`).answerAll();
  expect(go.map((c) => c.type)).toEqual(['proceed-reboot']);
}

/** xpu.ready, then the host answers restore and resume (or reboot-host): the reboot completes. */
async function recover(id: string, node = 'solo', xpu = 'dpu0') {
  await h.event(node, 'xpu.ready', { xpu });
  await h.drain();
  await h.waitForState(id, 'RestorePcieAndResume');
  const cmds = await h.agent(node).answerAll();
  await h.waitForStatus(id, 'completed');
  expect(await h.waitForEnd(id)).toBe('SUCCEEDED');
  return cmds;
}

describe('extensions', () => {
  it('grants a trusted host its request and moves the deadline', async () => {
    const r = await announce();
    const res = await extend(r.id, 120);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ granted: 120, deadline: new Date(T0 + 420 * SECOND).toISOString() });
    const after = await h.reboot(r.id);
    expect(after).toMatchObject({ status: 'extended', deadline: res.json.deadline });
    expect(after.extensions).toEqual([expect.objectContaining({ requested: 120, granted: 120, reason: 'draining a VM' })]);
    expect(phases(after)).toContain('extended');
  });

  it('trims a request to what is left of maxExtensionSeconds, then refuses at maxExtensions', async () => {
    const r = await announce();
    expect((await extend(r.id, 500)).json.granted).toBe(500);
    await h.waitForState(r.id, 'PrepareHost');
    const second = await extend(r.id, 500);
    expect(second.status).toBe(200);
    expect(second.json).toEqual({ granted: 100, deadline: new Date(T0 + 900 * SECOND).toISOString() });
    const third = await extend(r.id, 10);
    expect(third.status).toBe(409);
    expect(third.json.error).toBe('MaxExtensions');
    const after = await h.reboot(r.id);
    expect(after.deadline).toBe(second.json.deadline);
    expect(after.refusals).toHaveLength(1);
    expect(phases(after).filter((p) => p === 'extended')).toHaveLength(2);
    expect(phases(after).filter((p) => p === 'extension-refused')).toHaveLength(1);
  });

  it('refuses with 409 once no extension seconds are left', async () => {
    const r = await announce();
    expect((await extend(r.id, 600)).json.granted).toBe(600);
    const next = await extend(r.id, 30);
    expect(next.status).toBe(409);
    expect(next.json.error).toBe('NoExtensionSecondsLeft');
    expect(phases(await h.reboot(r.id))).toContain('extension-refused');
  });

  it('refuses with 409 past the notice phase', async () => {
    const r = await announce();
    await prepareAndProceed(r.id);
    const res = await extend(r.id, 60);
    expect(res.status).toBe(409);
    expect(res.json.error).toBe('PastNoticePhase');
    const after = await h.reboot(r.id);
    expect(after.deadline).toBe(r.deadline);
    expect(after.refusals).toEqual([expect.objectContaining({ requested: 60 })]);
  });

  it('refuses an untrusted host with 403, before any 409', async () => {
    const r = await announce('wary');
    const res = await extend(r.id, 60, 'agent-token-wary');
    expect(res.status).toBe(403);
    expect(phases(await h.reboot(r.id))).toContain('extension-refused');
    await prepareAndProceed(r.id, 'wary');
    // Past the notice phase too: still 403, not 409.
    expect((await extend(r.id, 60, 'agent-token-wary')).status).toBe(403);
  });

  it("refuses another node's token with 403 before any 409, and changes nothing", async () => {
    const r = await announce();
    await prepareAndProceed(r.id);
    const res = await extend(r.id, 60, 'agent-token-duo');
    expect(res.status).toBe(403);
    const after = await h.reboot(r.id);
    expect(after.refusals).toEqual([]);
    expect(after.extensions).toEqual([]);
  });

  it('hands a redelivered notice-phase command the moved deadline', async () => {
    const r = await announce();
    const host = h.agent('solo');
    const first = await host.poll();
    expect(first.map((c) => c.deadline)).toEqual([r.deadline, r.deadline]);
    const res = await extend(r.id, 200);
    await h.waitForState(r.id, 'PrepareHost');
    await h.advance(20 * SECOND); // the API hands out again what an agent said nothing about for 15 s
    const again = await host.poll();
    expect(again.map((c) => c.id)).toEqual(first.map((c) => c.id));
    expect(again.map((c) => c.deadline)).toEqual([res.json.deadline, res.json.deadline]);
  });

  it('re-times the wait: the old deadline passes without a forced reboot, the new one forces it', async () => {
    const r = await announce();
    const [migrate] = await h.agent('solo').poll();
    const res = await extend(r.id, 120);
    await h.waitForState(r.id, 'PrepareHost');
    await advanceAlive('solo', migrate.id, Date.parse(r.deadline!) + 5 * SECOND);
    const mid = await h.reboot(r.id);
    expect(mid).toMatchObject({ status: 'extended', forced: false });
    expect((await h.statesEntered(r.id)).at(-1)).toBe('PrepareHost');
    await advanceAlive('solo', migrate.id, Date.parse(res.json.deadline));
    const forced = await h.waitForStatus(r.id, 'rebooting');
    expect(forced.forced).toBe(true);
    expect(forced.rebootingAt).toBe(res.json.deadline);
  });
});

describe('forced at the deadline', () => {
  it('records forced with the commands still outstanding, and goes on to recovery', async () => {
    const r = await announce();
    const host = h.agent('solo');
    const [migrate, protect] = await host.poll();
    await advanceAlive('solo', migrate.id, Date.parse(r.deadline!) - SECOND);
    expect((await h.reboot(r.id)).forced).toBe(false);
    await advanceAlive('solo', migrate.id, Date.parse(r.deadline!));
    await h.waitForState(r.id, 'WaitForXpuReady');
    const forced = await h.reboot(r.id);
    expect(forced).toMatchObject({ status: 'rebooting', forced: true });
    expect(forced.outstanding).toEqual(['migrate-workloads (running)', 'protect-pcie (delivered)']);
    expect(phases(forced)).toContain('forced');
    // The workflow stopped waiting for them: agents are no longer handed them, a late result is noted.
    await h.advance(20 * SECOND);
    expect(await host.poll()).toEqual([]);
    expect((await host.post(protect.id, 'succeeded')).status).toBe(200);
    expect(phases(await h.reboot(r.id))).toContain('late-result');
    // The watchdog rebooted the xPU: no proceed-reboot was needed.
    expect(await h.agent('solo.dpu0').poll()).toEqual([]);
    await recover(r.id);
  });

  it('a silent host (no heartbeat) is recorded, and the xPU is still forced only at the deadline', async () => {
    const r = await announce();
    await h.advance(61 * SECOND);
    await h.waitForState(r.id, 'WaitForHostOrDeadline');
    const silent = await h.reboot(r.id);
    expect(phases(silent)).toContain('silent-host');
    expect(silent.forced).toBe(false);
    await h.advanceTo(Date.parse(r.deadline!) - SECOND);
    expect((await h.reboot(r.id)).forced).toBe(false);
    await h.advance(SECOND);
    await h.waitForState(r.id, 'WaitForXpuReady');
    const forced = await h.reboot(r.id);
    expect(forced).toMatchObject({ status: 'rebooting', forced: true, outstanding: ['migrate-workloads (pending)', 'protect-pcie (pending)'] });
    await recover(r.id);
  });

  it('a host that went silent and comes back still gets its extension honoured', async () => {
    const r = await announce();
    await h.advance(61 * SECOND);
    await h.waitForState(r.id, 'WaitForHostOrDeadline');
    const res = await extend(r.id, 120);
    expect(res.status).toBe(200);
    await h.waitForState(r.id, 'PrepareHost');
    const [migrate] = await h.agent('solo').poll();
    await advanceAlive('solo', migrate.id, Date.parse(r.deadline!) + 10 * SECOND);
    expect((await h.reboot(r.id)).forced).toBe(false);
    await advanceAlive('solo', migrate.id, Date.parse(res.json.deadline));
    expect((await h.waitForStatus(r.id, 'rebooting')).forced).toBe(true);
  });

  it('a host that went silent and then prepares still gets the early go', async () => {
    const r = await announce();
    await h.advance(61 * SECOND);
    await h.waitForState(r.id, 'WaitForHostOrDeadline');
    await h.agent('solo').answerAll();
    await h.waitForState(r.id, 'WaitForXpuReady');
    expect(await h.reboot(r.id)).toMatchObject({ status: 'rebooting', forced: false });
    expect((await h.agent('solo.dpu0').poll()).map((c) => c.type)).toEqual(['proceed-reboot']);
  });

  it('a failed preparation command means no early go: forced at the deadline, the failure recorded', async () => {
    const r = await announce();
    const host = h.agent('solo');
    const [migrate, protect] = await host.poll();
    await host.post(migrate.id, 'failed', 'no capacity on other hosts');
    await host.post(protect.id, 'succeeded');
    // The host answered everything: once its heartbeat lapses it is recorded as not prepared, not silent.
    await h.advanceTo(Date.parse(r.deadline!) - SECOND);
    await h.waitForState(r.id, 'WaitForHostOrDeadline');
    const before = await h.reboot(r.id);
    expect(before.forced).toBe(false);
    expect(phases(before)).toContain('host-not-prepared');
    expect(phases(before)).not.toContain('silent-host');
    expect(h.stack.counters.get('SilentHosts')).toBeUndefined();
    expect(await h.agent('solo.dpu0').poll()).toEqual([]);
    await h.advance(SECOND);
    await h.waitForState(r.id, 'WaitForXpuReady');
    const forced = await h.reboot(r.id);
    expect(forced).toMatchObject({ status: 'rebooting', forced: true, outstanding: ['migrate-workloads (failed)'] });
    expect(await h.agent('solo.dpu0').poll()).toEqual([]);
  });
});
