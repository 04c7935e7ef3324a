// The rollout workflow on the in-process stack with a ManualClock: order, maxUnavailable, failures, windows, cancel.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Command } from '../../lambdas/core/types.ts';
import { eventually, startHarness, T0, type Harness } from './harness.ts';

// T0 is 2030-01-01T00:00Z, a Tuesday. r2's node may reboot on Tuesdays 03:00-04:00 in Berlin (UTC+1): 02:00Z.
const INVENTORY = `
policy:
  xpuReboot:
    noticeSeconds: 300
    commandSeconds: 120
    recoverySeconds: 900
    heartbeatSeconds: 60
nodes:
${['a', 'b', 'c']
  .map(
    (n) => `  - id: ${n}
    rack: r1
    zone: z1
    trusted: true
    agentToken: agent-token-${n}
    xpus:
      - id: dpu0
`,
  )
  .join('')}  - id: w
    rack: r2
    zone: z1
    trusted: true
    agentToken: agent-token-w
    policy:
      windows: [{days: [tue], start: "03:00", end: "04:00", tz: "Europe/Berlin"}]
    xpus:
      - id: dpu0
      - id: dpu1
${['p', 'q']
  .map(
    (n) => `  - id: ${n}
    rack: r3
    zone: z3
    trusted: true
    agentToken: agent-token-${n}
    policy:
      budgets: [{per: rack, maxUnavailable: 1}]
    xpus:
      - id: dpu0
`,
  )
  .join('')}`;

let h: Harness;
beforeEach(async () => {
  h = await startHarness({ inventory: INVENTORY });
});
afterEach(async () => {
  await h?.close();
});

const rollout = async (id: string) => (await h.request(`/v1/rollouts/${id}`)).json;
const until = (id: string, what: string, ok: (r: any) => boolean) =>
  eventually(`rollout ${id}: ${what}`, async () => {
    const r = await rollout(id);
    return ok(r) ? r : undefined;
  });

/** The reboot-xpu command waiting for an xPU agent (polled until it shows). */
async function rebootCommand(agent: string): Promise<Command> {
  return eventually(`reboot-xpu for ${agent}`, async () => (await h.agent(agent).poll()).find((c) => c.type === 'reboot-xpu'));
}

/** What an xPU's reboot-xpu hook does (announce, with the rollout's id), then the whole reboot to `end`. */
async function rebootThrough(node: string, xpu: string, end: 'completed' | 'failed', delivered?: Command) {
  const agent = `${node}.${xpu}`;
  const cmd = delivered ?? (await rebootCommand(agent));
  expect(cmd.args).toMatchObject({ reason: 'firmware 24.10', noticeSeconds: 300 });
  await h.event(node, 'xpu.reboot.pending', { xpu, id: `ann-${cmd.id}`, data: { reason: cmd.args.reason, rolloutId: cmd.args.rolloutId } });
  await h.agent(agent).post(cmd.id, 'succeeded');
  await h.drain();
  const r = await h.rebootOf(node, 'xpu', xpu);
  await h.waitForState(r.id, 'PrepareHost');
  await h.agent(node).answerAll();
  // The early go: the xPU reboots now and goes down.
  const go = await eventually(`proceed-reboot for ${agent}`, async () =>
    (await h.agent(agent).poll()).find((c) => c.type === 'proceed-reboot'),
  );
  await h.agent(agent).post(go.id, 'succeeded');
  await h.event(node, 'xpu.down', { xpu });
  await h.drain();
  await h.waitForState(r.id, 'WaitForXpuReady');
  if (end === 'failed') {
    // The xPU never comes back: the recovery bound (counted from its going down) fails the reboot.
    await h.advance(901_000);
    return h.waitForStatus(r.id, 'failed');
  }
  await h.event(node, 'xpu.ready', { xpu });
  await h.drain();
  // Recovery: restore-pcie, then resume-workloads (one after the other, each once the previous succeeded).
  await eventually(`${node} recovered`, async () => {
    await h.agent(node).answerAll();
    return (await h.reboot(r.id)).status === 'completed';
  });
  return h.reboot(r.id);
}

/** Advances the clock to `to`, then waits until the rollout looked again and parked a new token (or ended). */
async function advanceRollout(id: string, to: number) {
  // Parked first: the wait's timer is set as its state is entered, after the tick whose result the test saw
  // returned. An advance before that moves nothing (and a hold's release or a window wakes no one).
  const parked = await eventually(`rollout ${id} parked`, async () => {
    const r = await h.stack.deps.rollouts!.getRollout(id);
    return r && (r.status !== 'running' || r.waiter) ? r : undefined;
  });
  const before = parked.waiter?.token;
  await h.advanceTo(to);
  await eventually(`rollout ${id} to wait again`, async () => {
    const r = await h.stack.deps.rollouts!.getRollout(id);
    return r && (r.status !== 'running' || (r.waiter && r.waiter.token !== before));
  });
}

const start = (body: Record<string, unknown>) => h.request('/v1/rollouts', { body: { reason: 'firmware 24.10', ...body } });

describe('rollouts', () => {
  it('plans a dry run without storing or starting anything', async () => {
    const res = await start({ selector: { rack: 'r1' }, maxUnavailable: 1, dryRun: true });
    expect(res.status).toBe(201);
    expect(res.json.plan).toEqual([
      { node: 'a', xpu: 'dpu0' },
      { node: 'b', xpu: 'dpu0' },
      { node: 'c', xpu: 'dpu0' },
    ]);
    expect((await h.request('/v1/rollouts')).json.items).toEqual([]);
    expect(await h.agent('a.dpu0').poll()).toEqual([]);
  });

  it('refuses a selector naming two keys, an empty plan, and a non-operator', async () => {
    expect((await start({ selector: { rack: 'r1', zone: 'z1' }, maxUnavailable: 1 })).status).toBe(400);
    expect((await start({ selector: { rack: 'nope' }, maxUnavailable: 1 })).json.error).toBe('EmptyPlan');
    expect((await h.request('/v1/rollouts', { token: 'agent-token-a', body: { reason: 'x', maxUnavailable: 1 } })).status).toBe(403);
  });

  it('reboots a rack one xPU at a time, in order, the next once the previous completed', async () => {
    const res = await start({ selector: { rack: 'r1' }, maxUnavailable: 1 });
    expect(res.status).toBe(201);
    const id = res.json.id;
    // Only the first xPU is asked; the others wait for its reboot to end.
    const first = await rebootCommand('a.dpu0');
    expect(first.args.rolloutId).toBe(id);
    expect(await h.agent('b.dpu0').poll()).toEqual([]);
    const order: string[] = [];
    for (const node of ['a', 'b', 'c']) {
      const r = await rebootThrough(node, 'dpu0', 'completed', node === 'a' ? first : undefined);
      order.push(r.node);
      expect((r as { rolloutId?: string }).rolloutId).toBe(id);
      // The reboot's end woke the rollout: no clock moved.
      await until(id, `${node} done`, (x) => x.done.map((d: any) => d.node).join() === order.join());
    }
    const done = await until(id, 'completed', (r) => r.status === 'completed');
    expect(done.done.map((d: any) => d.node)).toEqual(['a', 'b', 'c']);
    expect(done.pending).toEqual([]);
    expect(done.failed).toEqual([]);
    // Each started only after the previous ended.
    for (let i = 1; i < 3; i++) expect(done.done[i].startedAt >= done.done[i - 1].endedAt).toBe(true);
    // The compliance report lists it with the reboots it caused.
    const from = new Date(T0 - 3600_000).toISOString();
    const to = new Date(T0 + 86_400_000).toISOString();
    const report = (await h.request(`/v1/reports/compliance?from=${from}&to=${to}`)).json;
    expect(report.schemaVersion).toBe('1.1');
    expect(report.rollouts).toEqual([
      expect.objectContaining({
        id,
        status: 'completed',
        selector: { rack: 'r1' },
        planned: 3,
        done: 3,
        failed: 0,
        notDone: 0,
        rebootIds: done.done.map((d: any) => d.rebootId),
      }),
    ]);
    const html = (await h.request(`/v1/reports/compliance?from=${from}&to=${to}&format=html`)).json as string;
    expect(html).toMatch(new RegExp(`<section id="rollouts"><h2>Rollouts \\(1\\)</h2>.*${id}`));
  });

  it('pauses after maxFailures failed reboots and starts no further xPU', async () => {
    const id = (await start({ selector: { rack: 'r1' }, maxUnavailable: 1 })).json.id;
    await rebootThrough('a', 'dpu0', 'failed');
    const paused = await until(id, 'paused', (r) => r.status === 'paused');
    expect(paused.failed).toEqual([expect.objectContaining({ node: 'a', reason: 'reboot failed' })]);
    expect(paused.pending.map((p: any) => p.node)).toEqual(['b', 'c']);
    expect(await h.agent('b.dpu0').poll()).toEqual([]);
  });

  it('fails an xPU whose agent has no reboot-xpu hook (skipped) and goes on while maxFailures allows', async () => {
    const id = (await start({ selector: { rack: 'r1' }, maxUnavailable: 1, maxFailures: 2 })).json.id;
    const cmd = await rebootCommand('a.dpu0');
    await h.agent('a.dpu0').post(cmd.id, 'skipped');
    await h.advance(10_000); // the fallback look (no reboot ends to wake it)
    const r = await until(id, 'a failed', (x) => x.failed.length === 1);
    expect(r.failed[0].reason).toMatch(/no reboot-xpu hook/);
    expect((await rebootCommand('b.dpu0')).args.rolloutId).toBe(id);
  });

  it('runs maxUnavailable xPUs at once', async () => {
    const id = (await start({ selector: { zone: 'z1' }, maxUnavailable: 2 })).json.id;
    await rebootCommand('a.dpu0');
    await rebootCommand('b.dpu0');
    expect(await h.agent('c.dpu0').poll()).toEqual([]);
    expect((await rollout(id)).inFlight).toBe(2);
  });

  it('waits for the maintenance window of the node, then starts', async () => {
    const id = (await start({ selector: { node: 'w' }, maxUnavailable: 2 })).json.id;
    const waiting = await until(id, 'blocked by its window', (r) => !!r.blocked);
    expect(waiting.blocked).toMatch(/outside its maintenance window/);
    expect(await h.agent('w.dpu0').poll()).toEqual([]);
    // It waits at most an hour per round: at 02:00 Berlin it looks, and waits again.
    await advanceRollout(id, T0 + 3600_000);
    expect((await rollout(id)).blocked).toMatch(/outside its maintenance window/);
    expect(await h.agent('w.dpu0').poll()).toEqual([]);
    await advanceRollout(id, T0 + 2 * 3600_000); // 03:00 Berlin: the window opens
    expect((await rebootCommand('w.dpu0')).args.rolloutId).toBe(id);
    expect((await rebootCommand('w.dpu1')).args.rolloutId).toBe(id);
  });

  it('cancel withdraws a command not yet delivered, stops further starts, and answers 409 after', async () => {
    const id = (await start({ selector: { rack: 'r1' }, maxUnavailable: 1 })).json.id;
    await until(id, 'a started', (r) => r.inFlight === 1);
    const res = await h.request(`/v1/rollouts/${id}/cancel`, { body: { reason: 'bad firmware' } });
    expect(res.status).toBe(200);
    expect(res.json.status).toBe('cancelled');
    await eventually(
      'the workflow to end',
      async () =>
        h.stack.engine.describeExecution({ executionArn: `${h.stack.workflowArns.rollout.replace(':stateMachine:', ':execution:')}:${id}` })
          .status === 'SUCCEEDED',
    );
    expect(await h.agent('a.dpu0').poll()).toEqual([]);
    const after = await rollout(id);
    expect(after.pending.map((p: any) => [p.node, p.state])).toEqual([
      ['a', 'pending'],
      ['b', 'pending'],
      ['c', 'pending'],
    ]);
    expect((await h.request(`/v1/rollouts/${id}/cancel`, { body: {} })).status).toBe(409);
  });

  it('never asks beyond a disruption budget: the next xPU of a full rack waits for the slot', async () => {
    const id = (await start({ selector: { rack: 'r3' }, maxUnavailable: 2 })).json.id;
    const first = await rebootCommand('p.dpu0');
    const held = await until(id, 'q held back', (r) => !!r.blocked);
    expect(held.blocked).toMatch(/^q\/dpu0: budget: rack r3 has 1 of 1 nodes unavailable \(p\)/);
    expect(held.inFlight).toBe(1);
    expect(await h.agent('q.dpu0').poll()).toEqual([]);
    await rebootThrough('p', 'dpu0', 'completed', first);
    expect((await rebootCommand('q.dpu0')).args.rolloutId).toBe(id);
  });

  it('waits while a hold matches the next node, and goes on once it is released', async () => {
    const hold = await h.request('/v1/holds', { body: { selector: { node: 'b' }, reason: 'audit' } });
    expect(hold.status).toBe(201);
    const id = (await start({ selector: { rack: 'r1' }, maxUnavailable: 1 })).json.id;
    await rebootThrough('a', 'dpu0', 'completed');
    const held = await until(id, 'b held', (r) => r.done.length === 1 && !!r.blocked);
    expect(held.blocked).toMatch(/^b\/dpu0: hold: hold \S+ on node b \(audit\)/);
    expect(await h.agent('b.dpu0').poll()).toEqual([]);
    expect((await h.request(`/v1/holds/${hold.json.id}`, { method: 'DELETE' })).status).toBe(204);
    await advanceRollout(id, h.now().getTime() + 30_000);
    expect((await rebootCommand('b.dpu0')).args.rolloutId).toBe(id);
  });

  it('counts a reboot the operator cancelled as failed, and hears of it at once', async () => {
    const id = (await start({ selector: { rack: 'r1' }, maxUnavailable: 1 })).json.id;
    const cmd = await rebootCommand('a.dpu0');
    await h.event('a', 'xpu.reboot.pending', { xpu: 'dpu0', data: { reason: 'x', rolloutId: id } });
    await h.agent('a.dpu0').post(cmd.id, 'succeeded');
    await h.drain();
    const r = await h.rebootOf('a', 'xpu', 'dpu0');
    await h.waitForState(r.id, 'PrepareHost');
    expect((await h.request(`/v1/reboots/${r.id}/cancel`, { body: { reason: 'wrong image' } })).status).toBe(200);
    // No clock moves: the cancel's end of the reboot woke the rollout.
    const paused = await until(id, 'paused', (x) => x.status === 'paused');
    expect(paused.failed).toEqual([expect.objectContaining({ node: 'a', reason: 'reboot cancelled' })]);
  });
});
