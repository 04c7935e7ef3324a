// The xPU reboot workflow on the in-process stack with a ManualClock: every branch, no real waiting.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAwaitHandler, createStepHandler } from '../../lambdas/handlers/workflow.ts';
import { countStateEntered, eventually, phases, startHarness, T0, type Harness } from './harness.ts';

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

/**
 * The wait after a silent (or unprepared) host is timed in whole seconds from when its step ran,
 * and the manual clock may already have moved on by then: the forced reboot comes at the deadline
 * or within the second or two after it. Step time a second at a time until it has.
 */
async function advanceUntilForced(id: string): Promise<void> {
  for (let i = 0; i < 3 && !(await h.reboot(id)).forced; i++) await h.advance(SECOND);
  await h.waitForState(id, 'WaitForXpuReady');
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

    await h.waitForState(r.id, 'WaitForXpuDown');
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
    // docs/reboot-model.md: resume-workloads only once restore-pcie succeeded.
    const rec = await answerRecovery(r.id);
    expect(rec.map((c) => c.type)).toEqual(['restore-pcie', 'resume-workloads']);

    const done = await h.waitForStatus(r.id, 'completed');
    expect(await h.waitForEnd(r.id)).toBe('SUCCEEDED');
    expect(phases(done)).toEqual(
      expect.arrayContaining(['notified', 'preparing', 'rebooting', 'xpu-down', 'xpu-ready', 'recovering', 'completed']),
    );
    expect(done.history.every((e, i, all) => i === 0 || e.at >= all[i - 1].at)).toBe(true);
  });

  it('stays within 30 state transitions', async () => {
    const r = await announce();
    await h.agent('solo').answerAll();
    await h.waitForState(r.id, 'WaitForXpuDown');
    await h.agent('solo.dpu0').answerAll();
    await h.event('solo', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await answerRecovery(r.id);
    expect(await h.waitForEnd(r.id)).toBe('SUCCEEDED');
    const entered = await h.statesEntered(r.id);
    // Release 2: the recovery timer starts when the xPU goes down (WaitForXpuDown), and workloads
    // resume only after restore-pcie succeeded (RestorePcie's Catch). Issue 19: every state entered
    // is a billed transition; the early go is sent by WaitForXpuDown's Lambda, the branches after it
    // and after RestorePcie are Catches on literal errors, and ResumeWorkloads ends the execution
    // (the result that finished its commands completed the reboot first).
    expect(entered).toEqual(['PrepareHost', 'RouteHostAnswer', 'WaitForXpuDown', 'WaitForXpuReady', 'RestorePcie', 'ResumeWorkloads']);
    expect(await h.reboot(r.id)).toMatchObject({ status: 'completed', waiter: null });
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

/** The host answers restore-pcie and then (docs/reboot-model.md: only then) resume-workloads or reboot-host. */
async function answerRecovery(id: string, node = 'solo') {
  await h.waitForState(id, 'RestorePcie');
  const restore = await h.agent(node).answerAll();
  await h.waitForState(id, 'ResumeWorkloads');
  return [...restore, ...(await h.agent(node).answerAll())];
}

/** Takes a reboot from PrepareHost to WaitForXpuDown (the early go) the happy way. */
async function prepareAndProceed(id: string, node = 'solo', xpu = 'dpu0') {
  await h.agent(node).answerAll();
  await h.waitForState(id, 'WaitForXpuDown');
  const go = await h.agent(`${node}.${xpu}`).answerAll();
  expect(go.map((c) => c.type)).toEqual(['proceed-reboot']);
}

/** xpu.ready, then the host answers restore and resume (or reboot-host): the reboot completes. */
async function recover(id: string, node = 'solo', xpu = 'dpu0') {
  await h.event(node, 'xpu.ready', { xpu });
  await h.drain();
  const cmds = (await answerRecovery(id, node)).filter((c) => c.type !== 'migrate-workloads' && c.type !== 'protect-pcie');
  await h.waitForStatus(id, 'completed');
  expect(await h.waitForEnd(id)).toBe('SUCCEEDED');
  return cmds;
}

describe('extensions', () => {
  it('grants a trusted host its request and moves the deadline', async () => {
    const r = await announce();
    // (No bound on how fast it answers: a time asserted in a test fails on a loaded machine, and speed is the bench's.)
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
    const before = await h.reboot(r.id);
    const res = await extend(r.id, 60, 'agent-token-wary');
    expect(res.status).toBe(403);
    // A rejected request changes nothing: only a 409 is counted on the reboot (contract section 3).
    const after = await h.reboot(r.id);
    expect(phases(after)).not.toContain('extension-refused');
    expect(after.refusals).toEqual([]);
    expect(after.version).toBe(before.version);
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

  it('a notice of 0 is a reboot without notice: the deadline is its receipt, the xPU goes at once', async () => {
    const posted = await h.event('solo', 'xpu.reboot.pending', { xpu: 'dpu0', data: { reason: 'watchdog', noticeSeconds: 0 } });
    expect(posted.status).toBe(202);
    await h.drain();
    const r = await h.rebootOf('solo', 'xpu', 'dpu0');
    expect(r.noticeSeconds).toBe(0);
    expect(r.deadline).toBe(r.notifiedAt);
    // No time passes on the manual clock: nothing waits for the host, the reboot is forced now.
    await advanceUntilForced(r.id);
    const forced = await h.reboot(r.id);
    expect(forced).toMatchObject({ status: 'rebooting', forced: true });
    expect(Date.parse(forced.rebootingAt!)).toBeLessThanOrEqual(Date.parse(r.notifiedAt!) + 3 * SECOND);
    await recover(r.id);
  });

  it('refuses a notice that is not a number of seconds, and starts nothing', async () => {
    for (const noticeSeconds of [-1, 'soon', true, { s: 1 }]) {
      const posted = await h.event('solo', 'xpu.reboot.pending', { xpu: 'dpu0', data: { reason: 'r', noticeSeconds } });
      expect(posted.status).toBe(400);
      expect(posted.json).toMatchObject({ error: 'ValidationError' });
    }
    await h.drain();
    expect(await h.reboots('solo')).toEqual([]);
  });

  it('a silent host (no heartbeat) is recorded, and the xPU is still forced only at the deadline', async () => {
    const r = await announce();
    await h.advance(61 * SECOND);
    await h.waitForState(r.id, 'WaitForHostOrDeadline');
    const silent = await h.reboot(r.id);
    expect(phases(silent)).toContain('silent-host');
    expect(silent.forced).toBe(false);
    expect(h.stack.counters.get('SilentHosts')).toBe(1);
    await h.advanceTo(Date.parse(r.deadline!) - SECOND);
    expect((await h.reboot(r.id)).forced).toBe(false);
    await advanceUntilForced(r.id);
    const forced = await h.reboot(r.id);
    expect(forced).toMatchObject({
      status: 'rebooting',
      forced: true,
      outstanding: ['migrate-workloads (pending)', 'protect-pcie (pending)'],
    });
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
    await h.waitForState(r.id, 'WaitForXpuDown');
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
    await h.advance(61 * SECOND);
    await h.waitForState(r.id, 'WaitForHostOrDeadline');
    await h.advanceTo(Date.parse(r.deadline!) - SECOND);
    const before = await h.reboot(r.id);
    expect(before.forced).toBe(false);
    expect(phases(before)).toContain('host-not-prepared');
    expect(phases(before)).not.toContain('silent-host');
    expect(h.stack.counters.get('SilentHosts')).toBeUndefined();
    expect(await h.agent('solo.dpu0').poll()).toEqual([]);
    await advanceUntilForced(r.id);
    const forced = await h.reboot(r.id);
    expect(forced).toMatchObject({ status: 'rebooting', forced: true, outstanding: ['migrate-workloads (failed)'] });
    expect(await h.agent('solo.dpu0').poll()).toEqual([]);
  });
});

describe('crash', () => {
  it('xpu.crashed starts the crash form: protect-pcie and allow-coredump at once, then recovery', async () => {
    await h.event('solo', 'xpu.crashed', { xpu: 'dpu0', data: { reason: 'kernel panic' } });
    await h.drain();
    const r = await h.rebootOf('solo', 'xpu');
    await h.waitForState(r.id, 'ProtectPcieAndTakeCoreDump');
    expect(await h.reboot(r.id)).toMatchObject({ mode: 'crash', status: 'rebooting' });
    const hostCmds = await h.agent('solo').answerAll();
    expect(hostCmds.map((c) => c.type)).toEqual(['protect-pcie']);
    const xpuCmds = await h.agent('solo.dpu0').answerAll();
    expect(xpuCmds.map((c) => c.type)).toEqual(['allow-coredump']);
    expect(xpuCmds[0].args).toEqual({ holdSeconds: 120 });
    await h.waitForState(r.id, 'WaitForXpuReady');
    const cmds = await recover(r.id);
    expect(cmds.map((c) => c.type)).toEqual(['restore-pcie', 'resume-workloads']);
    const entered = await h.statesEntered(r.id);
    // Issue 19: PrepareHost is the start state; a crash is answered there at once (nothing sent,
    // no waiter, no preparing) and sent on, as ChooseNoticeOrCrash did.
    expect(entered.slice(0, 3)).toEqual(['PrepareHost', 'RouteHostAnswer', 'ProtectPcieAndTakeCoreDump']);
    expect(entered.filter((s) => s === 'PrepareHost')).toHaveLength(1);
    expect(phases(await h.reboot(r.id))[0]).toBe('crashed');
    expect(phases(await h.reboot(r.id))).not.toContain('preparing');
  });

  it('a crash during the notice phase turns the reboot into its crash form', async () => {
    const r = await announce();
    await h.agent('solo').poll();
    await h.event('solo', 'xpu.crashed', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'ProtectPcieAndTakeCoreDump');
    expect((await h.reboots('solo')).length).toBe(1);
    const xpuCmds = await h.agent('solo.dpu0').answerAll();
    expect(xpuCmds.map((c) => c.type)).toEqual(['allow-coredump']);
    await h.waitForState(r.id, 'WaitForXpuReady');
    await recover(r.id);
    expect(phases(await h.reboot(r.id))).toContain('crashed');
  });

  it('a core dump that takes too long does not hold the reboot past the policy cap', async () => {
    await h.event('solo', 'xpu.crashed', { xpu: 'dpu0' });
    await h.drain();
    const r = await h.rebootOf('solo', 'xpu');
    await h.waitForState(r.id, 'ProtectPcieAndTakeCoreDump');
    await h.advance(120 * SECOND);
    await h.waitForState(r.id, 'WaitForXpuReady');
  });
});

describe('where the workloads go', () => {
  it('migrates to the other xPU of the host when it is free', async () => {
    await announce('duo', 'dpu0');
    const [migrate] = await h.agent('duo').poll();
    expect(migrate).toMatchObject({ type: 'migrate-workloads', xpu: 'dpu0', args: { target: 'other-xpu', xpu: 'dpu1' } });
  });

  it('migrates to another host when the other xPU is rebooting itself', async () => {
    const first = await announce('duo', 'dpu1');
    expect((await h.agent('duo').poll())[0].args).toEqual({ target: 'other-xpu', xpu: 'dpu0' });
    await announce('duo', 'dpu0');
    const cmds = await h.agent('duo').poll();
    expect(cmds.find((c) => c.type === 'migrate-workloads' && c.rebootId !== first.id)?.args).toEqual({ target: 'other-host' });
  });

  it('a node with one xPU migrates to another host', async () => {
    await announce('solo');
    expect((await h.agent('solo').poll())[0].args).toEqual({ target: 'other-host' });
  });
});

describe('events early, late, twice or for nothing', () => {
  it('xpu.ready during the notice phase ends the outage: the missing xpu.down is recorded, recovery starts', async () => {
    const r = await announce();
    await h.event('solo', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'RestorePcie');
    const mid = await h.reboot(r.id);
    expect(mid.status).toBe('recovering');
    expect(mid.history.some((e) => e.phase === 'note' && /xpu\.down was never received/.test(e.detail))).toBe(true);
    await answerRecovery(r.id); // the old migrate/protect plus restore, then resume
    const done = await h.waitForStatus(r.id, 'completed');
    expect(Object.values(done.commands).map((c) => c.type)).toEqual(
      expect.arrayContaining(['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads']),
    );
  });

  it('the same event id twice starts one reboot and notes nothing', async () => {
    const a = await h.event('solo', 'xpu.reboot.pending', { id: 'same-id', xpu: 'dpu0' });
    const b = await h.event('solo', 'xpu.reboot.pending', { id: 'same-id', xpu: 'dpu0' });
    expect([a.status, b.status]).toEqual([202, 202]);
    await h.drain();
    const all = await h.reboots('solo');
    expect(all).toHaveLength(1);
    await h.waitForState(all[0].id, 'PrepareHost');
    expect(phases(await h.reboot(all[0].id))).not.toContain('joined');
    expect((await h.statesEntered(all[0].id)).filter((s) => s === 'PrepareHost')).toHaveLength(1);
    // Applied once and suppressed once, or (two ingest workers at the same moment) applied twice to the same effect.
    expect(h.stack.engine.listExecutions({ stateMachineArn: h.stack.workflowArns['xpu-reboot'] }).executions).toHaveLength(1);
  });

  it('a second pending for the same xPU joins the running reboot', async () => {
    const r = await announce();
    await h.event('solo', 'xpu.reboot.pending', { xpu: 'dpu0', data: { noticeSeconds: 30 } });
    await h.drain();
    const all = await h.reboots('solo');
    expect(all).toHaveLength(1);
    const after = await h.reboot(r.id);
    expect(phases(after)).toContain('joined');
    expect(after.deadline).toBe(r.deadline);
    expect((await h.statesEntered(r.id)).filter((s) => s === 'PrepareHost')).toHaveLength(1);
  });

  it('ready before down: ready ends the outage, the late down is only recorded', async () => {
    const r = await announce();
    await prepareAndProceed(r.id);
    await h.event('solo', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.event('solo', 'xpu.down', { xpu: 'dpu0' });
    await h.drain();
    await answerRecovery(r.id);
    const done = await h.waitForStatus(r.id, 'completed');
    // The late down lands on the reboot (also once recovery released the xPU: it was received
    // while the reboot ran), and it ends nothing; no unannounced reboot comes of it.
    expect(phases(done).indexOf('xpu-ready')).toBeLessThan(phases(done).indexOf('xpu-down'));
    expect(done.status).toBe('completed');
    expect(await h.reboots('solo')).toHaveLength(1);
  });

  it('a stale event from before the reboot (by its source clock) is recorded on it and not applied', async () => {
    const r = await announce();
    await h.event('solo', 'xpu.ready', { xpu: 'dpu0', time: new Date(T0 - 60 * SECOND).toISOString() });
    await h.drain();
    const after = await h.reboot(r.id);
    expect(after.readyAt).toBeUndefined();
    expect(phases(after)).toContain('stale-event');
    expect((await h.statesEntered(r.id)).at(-1)).toBe('PrepareHost');
    // Release 2: nothing accepted is dropped; the reboot's history says why it was not applied.
    expect(after.history.find((e) => e.phase === 'stale-event')?.detail).toMatch(/predates this reboot/);
  });

  it('signals for a reboot that does not exist: xpu.* is an unannounced reboot, host.* is kept for its reboot', async () => {
    // Release 2 (docs/reboot-model.md): these were dropped; now nothing accepted is lost.
    await h.event('solo', 'xpu.down', { xpu: 'dpu0' });
    await h.drain();
    await h.event('solo', 'xpu.ready', { xpu: 'dpu0' });
    await h.event('solo', 'host.ready');
    await h.drain();
    const [r] = await h.reboots('solo');
    expect(r).toMatchObject({ kind: 'xpu', mode: 'unannounced' });
    await h.waitForState(r.id, 'RestorePcie');
    expect((await h.agent('solo').answerAll()).map((c) => c.type)).toEqual(['restore-pcie']);
    const done = await h.waitForStatus(r.id, 'completed');
    expect(phases(done)).toEqual(expect.arrayContaining(['unannounced', 'xpu-ready', 'completed']));
    expect(await h.reboots('solo')).toHaveLength(1);
    expect((await h.stack.deps.store.keptSignals('solo')).map((e) => e.type)).toEqual(['host.ready']);
    expect(h.stack.counters.get('EventsDropped')).toBeUndefined();
  });
});

describe('the xPU never returns', () => {
  it('fails the reboot after the recovery bound, with the alarm metric', async () => {
    const r = await announce();
    await prepareAndProceed(r.id);
    // Release 2: the recovery bound counts from the xPU going down, not from the early go.
    await h.advance(100 * SECOND);
    await h.event('solo', 'xpu.down', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'WaitForXpuReady');
    await h.advance(900 * SECOND - 1);
    expect((await h.reboot(r.id)).status).toBe('rebooting');
    await h.advance(1);
    const failed = await h.waitForStatus(r.id, 'failed');
    expect(failed.history.at(-1)?.detail).toMatch(/did not report ready within the recovery bound/);
    expect(await h.waitForEnd(r.id)).toBe('FAILED');
    expect(h.stack.counters.get('RebootFailed')).toBe(1);
    // The xPU is free again: the next notice starts a new reboot.
    const next = await announce();
    expect(next.id).not.toBe(r.id);
  });
});

describe('after the xPU is back', () => {
  it('reboots the host instead of resuming workloads when the node policy says so', async () => {
    const r = await announce('cycler');
    await prepareAndProceed(r.id, 'cycler');
    const cmds = await recover(r.id, 'cycler');
    expect(cmds.map((c) => c.type)).toEqual(['restore-pcie', 'reboot-host']);
  });

  it('lets the host reboot it asked for go ahead while reboot-host runs', async () => {
    const r = await announce('cycler');
    await prepareAndProceed(r.id, 'cycler');
    await h.event('cycler', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'RestorePcie');
    const [restore] = await h.agent('cycler').poll();
    await h.agent('cycler').post(restore.id, 'succeeded');
    await h.waitForState(r.id, 'ResumeWorkloads');
    const [rebootHost] = await h.agent('cycler').poll();
    expect(rebootHost.type).toBe('reboot-host');
    // The hook reboots the host: the host agent reports the reboot before it answers the command.
    await h.event('cycler', 'host.reboot.requested', { data: { method: 'shell' } });
    await h.drain();
    const host = await h.rebootOf('cycler', 'host');
    expect(host.status).not.toBe('denied');
    await h.waitForState(host.id, 'FreeHostContext');
  });
});

/** Drives a reboot of solo/dpu0 to its end whatever state it is in: agents answer everything, the xPU comes back. */
async function finish(id: string) {
  await eventually(`reboot ${id} to end`, async () => {
    const r = await h.reboot(id);
    if (r.endedAt) return true;
    await h.agent('solo').answerAll();
    await h.agent('solo.dpu0').answerAll();
    if (!r.readyAt) await h.ingestDirect({ id: `ready-${id}`, type: 'xpu.ready', node: 'solo', xpu: 'dpu0' });
    return false;
  });
  expect(await h.waitForEnd(id)).toBe('SUCCEEDED');
}

describe('races', () => {
  it('a pending and a crash of one xPU at the same moment make one reboot that knows of the crash', async () => {
    for (let round = 0; round < 10; round++) {
      const [a, b] = await Promise.all([
        h.ingestDirect({ id: `p-${round}`, type: 'xpu.reboot.pending', node: 'solo', xpu: 'dpu0' }),
        h.ingestDirect({ id: `c-${round}`, type: 'xpu.crashed', node: 'solo', xpu: 'dpu0' }),
      ]);
      const started = [a, b].filter((o: any) => o.kind === 'started');
      expect(started, `round ${round}`).toHaveLength(1);
      const id = (started[0] as { rebootId: string }).rebootId;
      expect([a, b].map((o: any) => o.rebootId)).toEqual([id, id]);
      const r = await h.reboot(id);
      expect(r.mode === 'crash' || !!r.crashedAt, `round ${round}`).toBe(true);
      await finish(id);
    }
    const all = await h.reboots('solo');
    expect(all).toHaveLength(10);
    expect(all.every((r) => r.status === 'completed')).toBe(true);
  });

  it('xpu.down and xpu.ready for one reboot at the same moment are both applied', async () => {
    for (let round = 0; round < 5; round++) {
      await h.ingestDirect({ id: `p-${round}`, type: 'xpu.reboot.pending', node: 'solo', xpu: 'dpu0' });
      const r = await h.rebootOf('solo', 'xpu');
      const id = (await h.reboots('solo')).find((x) => !x.endedAt)!.id;
      void r;
      await h.waitForState(id, 'PrepareHost');
      await Promise.all([
        h.ingestDirect({ id: `d-${round}`, type: 'xpu.down', node: 'solo', xpu: 'dpu0' }),
        h.ingestDirect({ id: `r-${round}`, type: 'xpu.ready', node: 'solo', xpu: 'dpu0' }),
      ]);
      const after = await h.reboot(id);
      expect(after.downAt && after.readyAt, `round ${round}`).toBeTruthy();
      await h.waitForState(id, 'RestorePcie');
      await finish(id);
    }
  });

  it('results posted while the await Lambda registers its waiter still give the early go', async () => {
    for (let round = 0; round < 5; round++) {
      const started = (await h.ingestDirect({ id: `p-${round}`, type: 'xpu.reboot.pending', node: 'solo', xpu: 'dpu0' })) as {
        rebootId: string;
      };
      // Answer each command the moment it exists, racing the waiter's registration.
      const answered = new Set<string>();
      // The harness's bound, not 5 s: the commands exist only once the engine ran PrepareHost's Lambda.
      await eventually('both preparation commands answered', async () => {
        const got = await h.agent('solo').poll();
        await Promise.all(got.map((c) => h.agent('solo').post(c.id, 'succeeded')));
        for (const c of got) answered.add(c.type);
        return answered.size === 2;
      });
      await h.waitForState(started.rebootId, 'WaitForXpuDown');
      expect((await h.reboot(started.rebootId)).forced).toBe(false);
      await finish(started.rebootId);
    }
  });
});

describe('replayed Tasks', () => {
  it('a replayed await Lambda sends no command twice and changes nothing', async () => {
    const r = await announce();
    const before = await h.reboot(r.id);
    const cmds = await h.agent('solo').poll();
    await createAwaitHandler(h.stack.deps)({
      taskToken: before.waiter!.token,
      rebootId: r.id,
      step: 'prepare',
      waitFor: 'prepared',
      status: 'preparing',
      deadline: r.deadline,
    });
    const after = await h.reboot(r.id);
    expect(Object.keys(after.commands)).toEqual(Object.keys(before.commands));
    expect(after.history).toEqual(before.history);
    expect(await h.stack.deps.store.openCommands('solo')).toHaveLength(cmds.length);
  });

  it('a late await Lambda of a state the workflow already left does not take the waiter back', async () => {
    const r = await announce();
    const prepare = (await h.history(r.id)).find((e) => e.type === 'TaskScheduled')!;
    const payload = JSON.parse((prepare.taskScheduledEventDetails as { parameters: string }).parameters).Payload;
    await prepareAndProceed(r.id);
    // PrepareHost's Lambda, slow or retried, finishes only now.
    expect(await createAwaitHandler(h.stack.deps)(payload)).toEqual({ registered: false });
    expect((await h.reboot(r.id)).waiter?.step).toBe('down');
    await recover(r.id);
  });

  it('replayed steps (proceed, forced, complete, fail) act once and count their metrics once', async () => {
    const step = createStepHandler(h.stack.deps);
    const r = await announce();
    await prepareAndProceed(r.id);
    await step({ action: 'proceed', rebootId: r.id });
    expect(await h.agent('solo.dpu0').poll()).toEqual([]);
    expect(phases(await h.reboot(r.id)).filter((p) => p === 'rebooting')).toHaveLength(1);
    await recover(r.id);
    await step({ action: 'complete', rebootId: r.id });
    await step({ action: 'fail', rebootId: r.id, reason: 'xpu-never-returned' });
    const done = await h.reboot(r.id);
    expect(done.status).toBe('completed');
    expect(phases(done).filter((p) => p === 'completed')).toHaveLength(1);
    expect(h.stack.counters.get('RebootFailed')).toBeUndefined();

    const f = await announce();
    await h.advance(61 * SECOND);
    await h.waitForState(f.id, 'WaitForHostOrDeadline');
    // The silent-host wait is timed in whole seconds from when its step ran; the clock's jump past
    // the heartbeat can land it up to a second after the deadline.
    await h.advanceTo(Date.parse(f.deadline!) + 2 * SECOND);
    await h.waitForState(f.id, 'WaitForXpuReady');
    await step({ action: 'forced', rebootId: f.id });
    await step({ action: 'silent-host', rebootId: f.id });
    expect(h.stack.counters.get('RebootsForced')).toBe(1);
    expect(phases(await h.reboot(f.id)).filter((p) => p === 'forced')).toHaveLength(1);
    await h.advance(900 * SECOND);
    await h.waitForStatus(f.id, 'failed');
    await step({ action: 'fail', rebootId: f.id, reason: 'xpu-never-returned' });
    expect(h.stack.counters.get('RebootFailed')).toBe(1);
  });
});
