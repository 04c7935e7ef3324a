// A down the API accepted before an operator's cancel (docs/fleet-safety.md, "A down received before the
// cancel"): the cancel sees it (409) though the queue has not delivered it yet; and one accepted while the
// cancel was answered, applied after it, is an outage the cancelled reboot does not own, recorded as the
// xPU's next (unannounced) reboot and counted in its budgets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../lambdas/core/inventory.ts';
import { loadMapping } from '../../lambdas/core/redfish/mapping.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { createApiApp } from '../../lambdas/handlers/api.ts';
import { eventually, OPERATOR_TOKEN, oneXpuInventory, startHarness, tokenOf, type Harness } from './harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ inventory: oneXpuInventory(['n1', 'n2', 'n3']) });
});
afterAll(async () => {
  await h?.close();
});

/** An announced reboot of `node`/dpu0 in its notice phase. */
async function inNotice(node: string) {
  const before = new Set((await h.reboots(node)).map((r) => r.id));
  expect((await h.event(node, 'xpu.reboot.pending', { xpu: 'dpu0', data: { reason: 'fw' } })).status).toBe(202);
  await h.drain();
  const r = await eventually('the reboot', async () => (await h.reboots(node)).find((x) => !before.has(x.id)));
  await h.waitForState(r.id, 'PrepareHost');
  return r;
}

describe('a down received before the cancel, applied after it', () => {
  it('(the queue was slower than the operator) starts the xPU’s next reboot, unannounced, instead of landing on the cancelled one', async () => {
    const r = await inNotice('n1');
    const downAt = h.now().toISOString();
    await h.advance(1000);
    const cancelled = await h.request(`/v1/reboots/${r.id}/cancel`, { body: { reason: 'wrong xPU' } });
    expect(cancelled.status).toBe(200);
    await h.waitForStatus(r.id, 'cancelled');
    // What the API had accepted a second before the cancel reaches the ingest only now.
    await h.ingestDirect({ id: 'queued-down', type: 'xpu.down', node: 'n1', xpu: 'dpu0', time: downAt }, { receivedAt: downAt });
    await h.drain();
    const outage = await eventually('the unannounced reboot', async () => (await h.reboots('n1')).find((x) => x.id !== r.id && !x.endedAt));
    expect(outage).toMatchObject({ kind: 'xpu', xpu: 'dpu0', mode: 'unannounced' });
    expect(outage.downAt).toBeDefined();
    expect((await h.reboot(r.id)).downAt).toBeUndefined();
    // Counted while the xPU is away: the fleet view shows the node unavailable.
    const fleet = (await h.request('/v1/fleet')).json;
    expect(fleet.totals.inFlight).toBe(1);
    await h.ingestDirect({ id: 'queued-down-ready', type: 'xpu.ready', node: 'n1', xpu: 'dpu0' });
    await h.drain();
  });
});

describe('a down accepted before the cancel, still in the queue', () => {
  it('the cancel answers 409 PastNoticePhase; delivered, the down goes on the reboot', async () => {
    const r = await inNotice('n2');
    // An API instance whose queue holds what it accepts: the ingest has not seen the down when the cancel comes.
    const held: NativeEvent[] = [];
    const api = createApiApp({
      ...h.stack.deps,
      queue: { send: async (evs) => void held.push(...evs) },
      operatorTokenHash: hashToken(OPERATOR_TOKEN),
      mapping: loadMapping(null),
    });
    const down = await api.request('/v1/events', {
      method: 'POST',
      headers: { authorization: `Bearer ${tokenOf('n2')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'held-down', type: 'xpu.down', node: 'n2', xpu: 'dpu0' }),
    });
    expect(down.status).toBe(202);
    await h.advance(1000);
    const res = await h.request(`/v1/reboots/${r.id}/cancel`, { body: { reason: 'too late' } });
    expect([res.status, res.json.error]).toEqual([409, 'PastNoticePhase']);
    expect(res.json.message).toContain('held-down');
    expect((await h.reboot(r.id)).status).not.toBe('cancelled');
    // The queue delivers it: the reboot takes its down as its own; nothing was cancelled.
    await h.stack.deps.queue.send(held);
    await h.drain();
    const after = await eventually('the down applied', async () => {
      const x = await h.reboot(r.id);
      return x.downAt ? x : undefined;
    });
    expect(after.status).not.toBe('cancelled');
    expect(after.history.map((e) => e.phase)).not.toContain('cancelled');
  });

  it('a down from before the reboot was announced does not stand in the way of its cancel', async () => {
    const before = h.now().toISOString();
    const ev: NativeEvent = {
      id: 'old-down',
      type: 'xpu.down',
      node: 'n3',
      xpu: 'dpu0',
      time: before,
      receivedAt: before,
      source: 'native',
      dedupKey: 'native:n3:old-down',
    };
    await h.stack.deps.downMarks!.mark(ev);
    await h.advance(60_000);
    const r = await inNotice('n3');
    const res = await h.request(`/v1/reboots/${r.id}/cancel`, { body: { reason: 'not needed' } });
    expect(res.status).toBe(200);
    await h.waitForStatus(r.id, 'cancelled');
  });
});
