// A down the API accepted before an operator's cancel (docs/fleet-safety.md, "A down received before the
// cancel"): applied after the cancel, it is an outage the cancelled reboot does not own, recorded as the
// xPU's next (unannounced) reboot and counted in its budgets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startHarness, type Harness } from './harness.ts';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

/** An announced reboot of solo/dpu0 in its notice phase. */
async function inNotice() {
  const before = new Set((await h.reboots('solo')).map((r) => r.id));
  expect((await h.event('solo', 'xpu.reboot.pending', { xpu: 'dpu0', data: { reason: 'fw' } })).status).toBe(202);
  await h.drain();
  const r = await eventually('the reboot', async () => (await h.reboots('solo')).find((x) => !before.has(x.id)));
  await h.waitForState(r.id, 'PrepareHost');
  return r;
}

describe('a down received before the cancel, applied after it', () => {
  it('(the queue was slower than the operator) starts the xPU’s next reboot, unannounced, instead of landing on the cancelled one', async () => {
    const r = await inNotice();
    const downAt = h.now().toISOString();
    await h.advance(1000);
    const cancelled = await h.request(`/v1/reboots/${r.id}/cancel`, { body: { reason: 'wrong xPU' } });
    expect(cancelled.status).toBe(200);
    await h.waitForStatus(r.id, 'cancelled');
    // What the API had accepted a second before the cancel reaches the ingest only now.
    await h.ingestDirect({ id: 'queued-down', type: 'xpu.down', node: 'solo', xpu: 'dpu0', time: downAt }, { receivedAt: downAt });
    await h.drain();
    const outage = await eventually('the unannounced reboot', async () =>
      (await h.reboots('solo')).find((x) => x.id !== r.id && !x.endedAt),
    );
    expect(outage).toMatchObject({ kind: 'xpu', xpu: 'dpu0', mode: 'unannounced' });
    expect(outage.downAt).toBeDefined();
    expect((await h.reboot(r.id)).downAt).toBeUndefined();
    // Counted while the xPU is away: the fleet view shows the node unavailable.
    const fleet = (await h.request('/v1/fleet')).json;
    expect(fleet.totals.inFlight).toBe(1);
    await h.ingestDirect({ id: 'queued-down-ready', type: 'xpu.ready', node: 'solo', xpu: 'dpu0' });
    await h.drain();
  });
});
