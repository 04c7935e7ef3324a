// A reboot queued behind its rack's budget goes on as soon as the stack starts again with room for it (a
// budget raised in the inventory over a restart): the reconciler's pass at start lets the budget queue go on
// (handlers/reconciler.ts), where before it waited for its queued workflow's next look, a minute or more later.
import { afterAll, describe, expect, it } from 'vitest';
import {
  api,
  freePort,
  OPERATOR_TOKEN,
  startStackProcess,
  tempDir,
  waitFor,
  waitForReboot,
  writeInventory,
  type RunningStack,
} from '../support/stack.ts';

const inventory = (maxUnavailable: number) => `
policy:
  xpuReboot: { noticeSeconds: 300 }
  budgets: [{ per: rack, maxUnavailable: ${maxUnavailable} }]
nodes:
  - { id: q1, rack: r1, agentToken: agent-token-q1, xpus: [{ id: dpu0 }] }
  - { id: q2, rack: r1, agentToken: agent-token-q2, xpus: [{ id: dpu0 }] }
`;

let stack: RunningStack | undefined;
afterAll(async () => {
  await stack?.stop();
});

async function announce(node: string): Promise<string> {
  const res = await api(stack!.url, '/v1/events', {
    token: OPERATOR_TOKEN,
    body: { id: `notice-${node}`, type: 'xpu.reboot.pending', node, xpu: 'dpu0', data: { reason: 'firmware' } },
  });
  expect(res.status).toBe(202);
  const r = await waitFor(`a reboot of ${node}`, async () => {
    const items = (await api(stack!.url, `/v1/reboots?node=${node}`, { token: OPERATOR_TOKEN })).json.items as any[];
    return items[0];
  });
  return r.id;
}

describe('a reboot queued behind a budget, over a restart that raised it', () => {
  it('goes on at start instead of at its next look', async () => {
    const dir = tempDir('queued-after-restart');
    const port = String(await freePort());
    stack = await startStackProcess({ dataDir: dir, nodesFile: writeInventory(dir, inventory(1)), env: { PORT: port } });
    // q1 takes the rack's one slot (its host answers nothing: it stays in its notice phase); q2 queues behind it.
    const first = await announce('q1');
    await waitForReboot(stack.url, first, (r) => r.status === 'preparing' || r.status === 'notified', 'in its notice phase');
    const second = await announce('q2');
    await waitForReboot(stack.url, second, (r) => r.status === 'queued', 'queued behind the rack budget');

    await stack.stop();
    stack = await startStackProcess({ dataDir: dir, nodesFile: writeInventory(dir, inventory(2)), env: { PORT: port } });
    // Its queued workflow looks again only a minute after it queued: well after this wait gives up.
    const after = await waitForReboot(stack.url, second, (r) => r.status !== 'queued', 'gone on with room in the rack', 20_000);
    expect(['notified', 'preparing']).toContain(after.status);
    expect((await api(stack.url, `/v1/reboots/${first}`, { token: OPERATOR_TOKEN })).json.status).not.toBe('queued');
  }, 120_000);
});
