// The local stack on a 10,000-node NODES_FILE (2 xPUs each): it starts, and an event of the last node is accepted and applied.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetAgentToken, fleetNodeId, writeFleetInventory } from '../../scripts/gen-inventory.ts';
import { api, OPERATOR_TOKEN, startStackProcess, tempDir, waitFor, type RunningStack } from '../support/stack.ts';

let stack: RunningStack;

beforeAll(async () => {
  const dir = tempDir('fleet-inventory');
  const nodesFile = join(dir, 'fleet.json');
  writeFleetInventory(nodesFile, 10_000);
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe('a 10,000-node inventory', () => {
  it('serves /healthz and accepts an event of node 9,999 with its own token', async () => {
    expect((await api(stack.url, '/healthz')).status).toBe(200);
    const node = fleetNodeId(9_999);
    const res = await api(stack.url, '/v1/events', {
      token: fleetAgentToken(node),
      body: { id: 'fleet-1', type: 'xpu.reboot.pending', node, xpu: 'dpu1', data: { reason: 'firmware' } },
    });
    expect(res.status).toBe(202);
    const reboot = await waitFor(
      'the reboot of node 9,999',
      async () => (await api(stack.url, `/v1/reboots?node=${node}`, { token: OPERATOR_TOKEN })).json.items[0],
    );
    expect(reboot).toMatchObject({ node, xpu: 'dpu1', kind: 'xpu' });
  }, 60_000);
});
