// The host reboot workflow on the in-process stack with a ManualClock: deny, free, return, re-provision.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StoredReboot } from '../../lambdas/core/reboot.ts';
import { eventually, phases, startHarness, T0, type Harness } from './harness.ts';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h?.close();
});

const SECOND = 1000;
const XPUS: Record<string, string[]> = { solo: ['dpu0'], duo: ['dpu0', 'dpu1'], wary: ['dpu0'], strict: ['dpu0'], lax: ['dpu0'] };

async function requestHostReboot(node: string, opts: { id?: string } = {}) {
  const posted = await h.event(node, 'host.reboot.requested', { id: opts.id, data: { method: 'shell' } });
  expect(posted.status).toBe(202);
  await h.drain();
  return h.rebootOf(node, 'host');
}

/** Every xPU agent of the node answers free-host-context; the workflow then waits for the host. */
async function freeAll(node: string, id: string) {
  await h.waitForState(id, 'FreeHostContext');
  const freed = [];
  for (const x of XPUS[node]) freed.push(...(await h.agent(`${node}.${x}`).answerAll()));
  await h.waitForState(id, 'WaitForHostBack');
  return freed;
}

/** Drives a host reboot to its end: agents answer everything, the host and every xPU come back. */
async function finishHost(id: string, node: string) {
  await eventually(`host reboot ${id} to end`, async () => {
    const r = await h.reboot(id);
    if (r.endedAt) return true;
    for (const x of XPUS[node]) await h.agent(`${node}.${x}`).answerAll();
    await h.agent(node).answerAll();
    if (!r.hostReadyAt) await h.ingestDirect({ id: `host-ready-${id}`, type: 'host.ready', node });
    for (const x of XPUS[node])
      if (!r.xpuReadyAt?.[x]) await h.ingestDirect({ id: `xpu-ready-${id}-${x}`, type: 'xpu.ready', node, xpu: x });
    return false;
  });
}

/** Drives an xPU reboot to its end the same way. */
async function finishXpu(id: string, node: string, xpu: string) {
  await eventually(`xPU reboot ${id} to end`, async () => {
    const r = await h.reboot(id);
    if (r.endedAt) return true;
    await h.agent(node).answerAll();
    await h.agent(`${node}.${xpu}`).answerAll();
    if (!r.readyAt) await h.ingestDirect({ id: `ready-${id}`, type: 'xpu.ready', node, xpu });
    return false;
  });
}

describe('deny', () => {
  it('denies a host reboot while an xPU of the node reboots: deny-host-reboot with the reason, POST still 202', async () => {
    await h.event('solo', 'xpu.reboot.pending', { xpu: 'dpu0' });
    await h.drain();
    const xr = await h.rebootOf('solo', 'xpu');
    const r = await requestHostReboot('solo');
    expect(r.status).toBe('denied');
    expect(r.denyReason).toMatch(/^xpu-rebooting: dpu0/);
    expect(r.denyReason).toContain(xr.id);
    expect(await h.waitForEnd(r.id)).toBe('SUCCEEDED');
    const cmds = await h.agent('solo').poll();
    const deny = cmds.find((c) => c.type === 'deny-host-reboot');
    expect(deny).toMatchObject({ rebootId: r.id, args: { reason: r.denyReason } });
    const shown = await h.request(`/v1/reboots/${r.id}`);
    expect(shown.json).toMatchObject({ kind: 'host', status: 'denied' });
    expect(shown.json.history.at(-1)).toMatchObject({ phase: 'denied', detail: r.denyReason });
    expect(await h.statesEntered(r.id)).toEqual(['ChooseAllowOrDeny', 'DenyHostReboot', 'HostRebootDenied']);
    // The xPU reboot goes on untouched.
    expect((await h.reboot(xr.id)).status).not.toBe('denied');
  });

  it('denies a second host reboot while the first re-provisions, where the policy says so', async () => {
    const r = await requestHostReboot('strict');
    await freeAll('strict', r.id);
    await h.event('strict', 'host.ready', { data: { tenant: 'next' } });
    await h.drain();
    await h.waitForState(r.id, 'ReprovisionXpus');
    await h.event('strict', 'host.reboot.requested', { data: { method: 'ipmi' } });
    await h.drain();
    const second = (await h.reboots('strict')).find((x) => x.id !== r.id)!;
    expect(second).toMatchObject({ status: 'denied', denyReason: expect.stringMatching(/reprovisioning still running/) });
  });

  it('refuses a request sent after host.ready while the reboot still waits for its xPUs: joined, it would pass without anyone freeing the host context', async () => {
    const r = await requestHostReboot('solo');
    await freeAll('solo', r.id);
    await h.event('solo', 'host.ready', { data: { tenant: 'other' } });
    await h.drain();
    await h.waitForState(r.id, 'WaitForXpusBack');
    // A second earlier than host.ready (a duplicate word on the reboot that ran): still joined.
    const early = new Date(h.now().getTime() - SECOND).toISOString();
    await h.event('solo', 'host.reboot.requested', { id: 'hr-dup', time: early, data: { method: 'shell' } });
    await h.drain();
    expect(phases(await h.reboot(r.id))).toContain('joined');
    // The host is up and asks to reboot again: its own request, refused with the reason.
    await h.advance(SECOND);
    await h.event('solo', 'host.reboot.requested', { id: 'hr-again', data: { method: 'shell' } });
    await h.drain();
    const second = await eventually('the second request', async () => (await h.reboots('solo')).find((x) => x.id !== r.id));
    expect(second).toMatchObject({ kind: 'host', status: 'denied', denyReason: expect.stringMatching(/^host-reboot-finishing: /) });
    expect(second.denyReason).toContain(r.id);
    expect((await h.reboot(r.id)).history.filter((e) => e.phase === 'joined')).toHaveLength(1);
    // The first goes on: its xPU comes back, is re-provisioned, and the reboot completes.
    await h.event('solo', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'ReprovisionXpus');
    await eventually(
      'the reprovision answered',
      async () => (await h.agent('solo.dpu0').answerAll()).length > 0 || (await h.reboot(r.id)).endedAt,
    );
    expect((await h.waitForStatus(r.id, 'completed')).status).toBe('completed');
    // Once it has ended, the host may ask again: a reboot of its own, allowed.
    await h.advance(SECOND);
    const third = await requestHostReboot('solo').then(async () =>
      eventually('the third request', async () => (await h.reboots('solo')).find((x) => x.id !== r.id && x.id !== second.id)),
    );
    expect(third.status).not.toBe('denied');
  });

  it('allows a host reboot once the xPU reboot has completed', async () => {
    await h.event('solo', 'xpu.reboot.pending', { xpu: 'dpu0' });
    await h.drain();
    const xr = await h.rebootOf('solo', 'xpu');
    await finishXpu(xr.id, 'solo', 'dpu0');
    const r = await requestHostReboot('solo');
    expect(r.status).not.toBe('denied');
    await h.waitForState(r.id, 'FreeHostContext');
  });

  it('lets both run where the policy does not deny, and the host reboot hears of the xPU too', async () => {
    await h.event('lax', 'xpu.reboot.pending', { xpu: 'dpu0' });
    await h.drain();
    const xr = await h.rebootOf('lax', 'xpu');
    const r = await requestHostReboot('lax');
    expect(r.status).not.toBe('denied');
    await freeAll('lax', r.id);
    await h.event('lax', 'host.ready');
    await h.drain();
    await h.waitForState(r.id, 'WaitForXpusBack');
    await h.event('lax', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    expect((await h.reboot(xr.id)).readyAt).toBeDefined();
    await h.waitForStatus(r.id, 'completed');
  });
});

describe('allowed', () => {
  it('frees the host context on every xPU, waits for the host, and re-provisions nothing for the same tenant', async () => {
    const r = await requestHostReboot('duo');
    expect(r.status).not.toBe('denied');
    const freed = await freeAll('duo', r.id);
    expect(freed.map((c) => [c.type, c.xpu])).toEqual([
      ['free-host-context', 'dpu0'],
      ['free-host-context', 'dpu1'],
    ]);
    await h.event('duo', 'host.down');
    await h.event('duo', 'host.ready', { data: { tenant: 't2' } });
    await h.drain();
    await h.waitForState(r.id, 'WaitForXpusBack');
    await h.event('duo', 'xpu.ready', { xpu: 'dpu1' });
    await h.drain();
    const done = await h.waitForStatus(r.id, 'completed');
    expect(await h.waitForEnd(r.id)).toBe('SUCCEEDED');
    expect(Object.values(done.commands).map((c) => c.type)).toEqual(['free-host-context', 'free-host-context']);
    expect(phases(done)).toEqual(
      expect.arrayContaining(['requested', 'preparing', 'rebooting', 'host-down', 'host-ready', 'xpu-ready', 'completed']),
    );
    expect(await h.agent('duo.dpu0').poll()).toEqual([]);
  });

  it('re-provisions every xPU for a new tenant named by host.ready', async () => {
    const r = await requestHostReboot('duo');
    await freeAll('duo', r.id);
    await h.event('duo', 'host.ready', { data: { tenant: 'tenant-next' } });
    await h.event('duo', 'xpu.ready', { xpu: 'dpu1' });
    await h.drain();
    await h.waitForState(r.id, 'ReprovisionXpus');
    const cmds = [...(await h.agent('duo.dpu0').answerAll()), ...(await h.agent('duo.dpu1').answerAll())];
    expect(cmds.map((c) => [c.type, c.xpu, c.args.tenant])).toEqual([
      ['reprovision', 'dpu0', 'tenant-next'],
      ['reprovision', 'dpu1', 'tenant-next'],
    ]);
    const done = await h.waitForStatus(r.id, 'completed');
    expect(done.nextTenant).toBe('tenant-next');
  });

  it('waits for a non-persistent xPU to come back before re-provisioning it, and records that it rebooted', async () => {
    const r = await requestHostReboot('solo');
    await freeAll('solo', r.id);
    await h.event('solo', 'host.ready', { data: { tenant: 'other' } });
    await h.drain();
    await h.waitForState(r.id, 'WaitForXpusBack');
    expect(await h.agent('solo.dpu0').poll()).toEqual([]); // no reprovision before it is back
    await h.event('solo', 'xpu.down', { xpu: 'dpu0' });
    await h.event('solo', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForState(r.id, 'ReprovisionXpus');
    const cmds = await h.agent('solo.dpu0').answerAll();
    expect(cmds.map((c) => c.type)).toEqual(['reprovision']);
    const done = await h.waitForStatus(r.id, 'completed');
    expect(done.xpuReadyAt?.dpu0).toBeDefined();
    expect(done.history.some((e) => e.phase === 'xpu-ready' && /after the host reset/.test(e.detail))).toBe(true);
  });

  it('says in its history what each wait of a host reboot waits for: the host, then the xPUs that lost power', async () => {
    const r = await requestHostReboot('solo');
    await freeAll('solo', r.id);
    await h.event('solo', 'host.ready', { data: { tenant: 'other' } });
    await h.drain();
    await h.waitForState(r.id, 'WaitForXpusBack');
    const waits = (await h.reboot(r.id)).history.filter((e) => e.phase === 'rebooting' || e.phase === 'recovering');
    expect(waits.map((e) => [e.phase, e.detail])).toEqual([
      ['rebooting', 'waiting for the host to come back'],
      ['recovering', 'waiting for the xPUs that lost power with the host to come back'],
    ]);
  });

  it('does not wait for a persistent-power xPU: it stayed up', async () => {
    const r = await requestHostReboot('wary');
    await freeAll('wary', r.id);
    await h.event('wary', 'host.ready', { data: { tenant: 'other' } });
    await h.drain();
    await h.waitForState(r.id, 'ReprovisionXpus');
    expect((await h.agent('wary.dpu0').answerAll()).map((c) => c.type)).toEqual(['reprovision']);
    const done = await h.waitForStatus(r.id, 'completed');
    expect(done.xpuReadyAt?.dpu0).toBeUndefined();
  });

  it('goes on when an xPU agent does not answer free-host-context: the host reboots anyway', async () => {
    const r = await requestHostReboot('solo');
    await h.waitForState(r.id, 'FreeHostContext');
    await h.advance(61 * SECOND);
    await h.waitForState(r.id, 'WaitForHostBack');
    await finishHost(r.id, 'solo');
    expect((await h.reboot(r.id)).status).toBe('completed');
  });

  it('accepts host.ready that arrives before host.down (the missing down is recorded)', async () => {
    const r = await requestHostReboot('wary');
    await freeAll('wary', r.id);
    await h.event('wary', 'host.ready');
    await h.drain();
    await h.event('wary', 'host.down');
    await h.drain();
    const done = await h.waitForStatus(r.id, 'completed');
    expect(done.history.some((e) => /host\.down was never received/.test(e.detail))).toBe(true);
  });
});

describe('never comes back', () => {
  it('fails when the host does not come back within its bound, with the alarm metric', async () => {
    const r = await requestHostReboot('solo');
    await freeAll('solo', r.id);
    await h.advance(1800 * SECOND - 1);
    expect((await h.reboot(r.id)).status).toBe('rebooting');
    await h.advance(1);
    const failed = await h.waitForStatus(r.id, 'failed');
    expect(failed.history.at(-1)?.detail).toMatch(/host did not come back/);
    expect(await h.waitForEnd(r.id)).toBe('FAILED');
    expect(h.stack.counters.get('RebootFailed')).toBe(1);
    // The node is free again.
    const next = await requestHostReboot('solo');
    expect(next.id).not.toBe(r.id);
    expect(next.status).not.toBe('denied');
  });

  it('fails when a non-persistent xPU does not come back after the host', async () => {
    const r = await requestHostReboot('solo');
    await freeAll('solo', r.id);
    await h.event('solo', 'host.ready');
    await h.drain();
    await h.waitForState(r.id, 'WaitForXpusBack');
    await h.advance(900 * SECOND);
    const failed = await h.waitForStatus(r.id, 'failed');
    expect(failed.history.at(-1)?.detail).toMatch(/without persistent power did not come back/);
  });
});

describe('duplicates and joins', () => {
  it('the same request twice is one host reboot', async () => {
    await h.event('duo', 'host.reboot.requested', { id: 'hr-1' });
    await h.event('duo', 'host.reboot.requested', { id: 'hr-1' });
    await h.drain();
    const all = await h.reboots('duo');
    expect(all).toHaveLength(1);
    expect(phases(await h.reboot(all[0].id))).not.toContain('joined');
  });

  it('another request while one runs joins it', async () => {
    const r = await requestHostReboot('duo');
    await freeAll('duo', r.id);
    await h.event('duo', 'host.reboot.requested', { data: { method: 'perst' } });
    await h.drain();
    expect(await h.reboots('duo')).toHaveLength(1);
    expect(phases(await h.reboot(r.id))).toContain('joined');
    expect((await h.statesEntered(r.id)).filter((s) => s === 'FreeHostContext')).toHaveLength(1);
  });

  it('an xPU that announces a reboot during the host reboot joins it; the host reboot waits for it', async () => {
    const r = await requestHostReboot('duo');
    await freeAll('duo', r.id);
    // dpu0 has persistent power: the host reboot would not wait for it, unless it reboots itself.
    await h.event('duo', 'xpu.reboot.pending', { xpu: 'dpu0' });
    await h.drain();
    expect((await h.reboots('duo')).map((x) => x.kind)).toEqual(['host']);
    expect(phases(await h.reboot(r.id))).toContain('xpu-reboot-joined');
    await h.event('duo', 'host.ready');
    await h.event('duo', 'xpu.ready', { xpu: 'dpu1' });
    await h.drain();
    await h.waitForState(r.id, 'WaitForXpusBack');
    await h.event('duo', 'xpu.ready', { xpu: 'dpu0' });
    await h.drain();
    await h.waitForStatus(r.id, 'completed');
  });
});

describe('an xPU reboot and a host reboot of one node at the same moment', () => {
  async function settleRound(node: string, xpu: string) {
    const active = (await h.reboots(node)).filter((r: StoredReboot) => !r.endedAt);
    for (const r of active) {
      if (r.kind === 'xpu') await finishXpu(r.id, node, xpu);
      else await finishHost(r.id, node);
    }
  }

  function bothProceed(rs: StoredReboot[], round: string) {
    const xpu = rs.filter((r) => r.kind === 'xpu');
    const host = rs.filter((r) => r.kind === 'host' && r.status !== 'denied');
    return xpu.length > 0 && host.length > 0 ? `${round}: both proceed: ${xpu.map((r) => r.id)} and ${host.map((r) => r.id)}` : '';
  }

  it('never both proceed, through the ingest handler directly (20 rounds, forced interleavings)', async () => {
    // Which side's store calls are held back, round by round, until the other side's call has
    // returned (a gate, not a fixed delay: on a loaded machine a delay can be shorter than a round
    // trip): none (a free race); the xPU's claim (the host claims first); the host's claim (the
    // xPU claims between the host's read and its claim); the host's read of the node (the xPU
    // claims before the host looks).
    type Side = 'xpu' | 'host';
    const schedules: Array<{ hold?: { side: Side; method: string; until: string }; winner?: Side }> = [
      {},
      // (A starting event's claim is taken beside its look-up: claimXpuAhead, docs/idempotency.md.)
      { hold: { side: 'xpu', method: 'claimXpuAhead', until: 'claimHost' }, winner: 'host' },
      { hold: { side: 'host', method: 'claimHost', until: 'claimXpuAhead' }, winner: 'xpu' },
      { hold: { side: 'host', method: 'getNodeState', until: 'claimXpuAhead' }, winner: 'xpu' },
    ];
    const seen = { xpu: 0, host: 0 };
    for (let round = 0; round < 20; round++) {
      const plan = schedules[round % schedules.length];
      const before = new Set((await h.reboots('solo')).map((r) => r.id));
      let otherReturned!: () => void;
      // Held at most 20 s: should the other side never make that call, the round still ends (and its checks say why).
      // Not less: the other side's call comes after a few store round trips, seconds apart at load 20, and a
      // gate opened by the timer instead would let the held side go first and lose the forced winner.
      const gate = new Promise<void>((r) => {
        otherReturned = r;
        setTimeout(r, 20_000).unref();
      });
      const opts = (side: Side) =>
        plan.hold?.side === side
          ? { delays: { [plan.hold.method]: () => gate } }
          : plan.hold
            ? { returned: (m: string) => m === plan.hold?.until && otherReturned() }
            : {};
      await Promise.all([
        h.ingestDirect({ id: `x-${round}`, type: 'xpu.reboot.pending', node: 'solo', xpu: 'dpu0' }, opts('xpu')),
        h.ingestDirect({ id: `h-${round}`, type: 'host.reboot.requested', node: 'solo' }, opts('host')),
      ]);
      const fresh = (await h.reboots('solo')).filter((r) => !before.has(r.id));
      expect(bothProceed(fresh, `round ${round}`)).toBe('');
      const winner = fresh.some((r) => r.kind === 'xpu') ? 'xpu' : 'host';
      if (plan.winner) expect(winner, `round ${round}`).toBe(plan.winner);
      seen[winner]++;
      if (winner === 'host') expect(phases(fresh.find((r) => r.kind === 'host')!)).toContain('xpu-reboot-joined');
      else expect(fresh.find((r) => r.kind === 'host')?.status ?? 'denied').toBe('denied');
      await settleRound('solo', 'dpu0');
    }
    expect(seen.xpu + seen.host).toBe(20);
  });

  it('never both proceed, through the HTTP API and the queue (20 rounds)', async () => {
    for (let round = 0; round < 20; round++) {
      const before = new Set((await h.reboots('duo')).map((r) => r.id));
      await Promise.all([h.event('duo', 'xpu.reboot.pending', { xpu: 'dpu1' }), h.event('duo', 'host.reboot.requested')]);
      await h.drain();
      const fresh = (await h.reboots('duo')).filter((r) => !before.has(r.id));
      expect(bothProceed(fresh, `round ${round}`)).toBe('');
      await settleRound('duo', 'dpu1');
    }
  });
});

describe('a host reboot nobody requested', () => {
  /** Every command the node's xPU agents are handed until the reboot ends, answered succeeded, in the order handed. */
  async function answerUntilEnded(id: string, node: string) {
    const seen: Array<[string, string | null, unknown]> = [];
    await eventually(`host reboot ${id} to end`, async () => {
      if ((await h.reboot(id)).endedAt) return true;
      for (const x of XPUS[node])
        for (const c of await h.agent(`${node}.${x}`).answerAll()) seen.push([c.type, c.xpu, c.args.tenant ?? null]);
      return false;
    });
    return seen;
  }

  it('a host.ready for another tenant: its xPUs free the host context, then are re-provisioned for it (CONTRACT 7.1)', async () => {
    expect((await h.event('duo', 'host.down')).status).toBe(202);
    expect((await h.event('duo', 'host.ready', { data: { tenant: 'tenant-b' } })).status).toBe(202);
    await h.drain();
    const r = await h.rebootOf('duo', 'host');
    expect(r).toMatchObject({ mode: 'unannounced', decision: 'allowed', nextTenant: 'tenant-b', tenant: 't2' });
    // The tenant's write held back: the reboot must still not show completed before it is done (a next
    // reboot of the node, admitted in between, would be budgeted and held under the old tenant).
    const store = h.stack.deps.store;
    const setTenant = store.setProvisionedTenant;
    store.setProvisionedTenant = async (...args) => {
      await new Promise((ok) => setTimeout(ok, 400));
      return setTenant.apply(store, args);
    };
    let seen: Awaited<ReturnType<typeof answerUntilEnded>>;
    try {
      seen = await answerUntilEnded(r.id, 'duo');
    } finally {
      store.setProvisionedTenant = setTenant;
    }
    const done = await h.reboot(r.id);
    expect(done.status).toBe('completed');
    expect((await h.request('/v1/nodes/duo')).json.provisionedTenant).toBe('tenant-b');
    expect(seen.filter((c) => c[0] === 'free-host-context').map((c) => c[1])).toEqual(expect.arrayContaining(['dpu0', 'dpu1']));
    // Both xPUs are re-provisioned in parallel: the order they are handed in is not part of the contract.
    const reprovisions = seen.filter((c) => c[0] === 'reprovision').sort((a, b) => String(a[1]).localeCompare(String(b[1])));
    expect(reprovisions).toEqual([
      ['reprovision', 'dpu0', 'tenant-b'],
      ['reprovision', 'dpu1', 'tenant-b'],
    ]);
    // The context is freed before the next tenant's provisioning, never after.
    expect(seen.findLastIndex((c) => c[0] === 'free-host-context')).toBeLessThan(seen.findIndex((c) => c[0] === 'reprovision'));
    expect(await h.reboots('duo')).toHaveLength(1);
  });

  it('a host.ready for the tenant it is provisioned for (or none) is kept for a host reboot that may follow: nothing starts', async () => {
    await h.event('solo', 'host.ready', { data: { tenant: 't1' } });
    await h.event('solo', 'host.ready', { id: 'no-tenant' });
    await h.drain();
    expect(await h.reboots('solo')).toEqual([]);
  });

  it('its request, delivered after it ended, joins it: one host reboot, requested after all', async () => {
    const at = (s: number) => new Date(T0 + s * SECOND).toISOString();
    await h.event('duo', 'host.ready', { id: 'ready-c', time: at(10), data: { tenant: 'tenant-c' } });
    await h.drain();
    const r = await h.rebootOf('duo', 'host');
    await answerUntilEnded(r.id, 'duo');
    await h.event('duo', 'host.reboot.requested', { id: 'late-request', time: at(1), data: { method: 'ipmi' } });
    await h.drain();
    expect(await h.reboots('duo')).toHaveLength(1);
    const after = await h.reboot(r.id);
    expect(after).toMatchObject({ status: 'completed', mode: 'ipmi' });
    expect(phases(after)).toContain('joined');
  });

  it('a host.ready for another tenant delivered before its request (CONTRACT 7.1 early signal): one reboot, re-provisioned, requested after all', async () => {
    await h.event('duo', 'host.ready', { id: 'early-ready', data: { tenant: 'tenant-d' } });
    await h.drain();
    const r = await h.rebootOf('duo', 'host');
    // The request follows (sent after the ready by every clock: only its delivery order tells), then the down.
    await h.advance(2 * SECOND);
    const req = await h.event('duo', 'host.reboot.requested', { id: 'its-request', data: { method: 'shell' } });
    expect(req.status).toBe(202);
    await h.event('duo', 'host.down', { id: 'its-down' });
    await h.drain();
    const seen = await answerUntilEnded(r.id, 'duo');
    expect(await h.reboots('duo')).toHaveLength(1);
    expect(await h.reboot(r.id)).toMatchObject({ status: 'completed', mode: 'shell', decision: 'allowed' });
    expect(seen.filter((c) => c[0] === 'reprovision').map((c) => c[2])).toEqual(['tenant-d', 'tenant-d']);
    // Nobody was told to deny it.
    expect((await h.agent('duo').answerAll()).map((c) => c.type)).not.toContain('deny-host-reboot');
  });

  it('a requested host reboot that ended is joined by a second request sent before its host.ready, not restarted', async () => {
    const at = (s: number) => new Date(T0 + s * SECOND).toISOString();
    const posted = await h.event('solo', 'host.reboot.requested', { id: 'req-1', time: at(0), data: { method: 'shell' } });
    expect(posted.status).toBe(202);
    await h.drain();
    const r = await h.rebootOf('solo', 'host');
    await h.event('solo', 'host.ready', { id: 'ready-1', time: at(30) });
    await finishHost(r.id, 'solo');
    expect((await h.reboot(r.id)).status).toBe('completed');
    // The host's own shutdown hook asked too (another event id), and its request was delivered last.
    await h.event('solo', 'host.reboot.requested', { id: 'req-2', time: at(2), data: { method: 'shell' } });
    await h.drain();
    expect(await h.reboots('solo')).toHaveLength(1);
    expect(phases(await h.reboot(r.id))).toContain('joined');
  });
});
