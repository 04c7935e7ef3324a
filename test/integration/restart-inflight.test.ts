// Issue 14: events the killed stack had taken from the queue are handed out again at once on restart.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { api, OPERATOR_TOKEN, startStackProcess, tempDir, waitFor, writeInventory, type RunningStack } from '../support/stack.ts';

const INVENTORY = `
nodes:
  - id: node-a
    trusted: true
    agentToken: agent-token-node-a
    xpus: [{ id: dpu0 }, { id: dpu1 }, { id: dpu2 }]
`;

const running: RunningStack[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop('SIGKILL')));
});

describe('restart after kill -9 with events in flight', () => {
  it('processes the events the killed consumer held within 10 s of the restart (visibility timeout 120 s)', async () => {
    const dir = tempDir('inflight');
    const nodesFile = writeInventory(dir, INVENTORY);
    const dataDir = join(dir, 'data');
    // The visibility timeout is far longer than the 10 s allowed: only an immediate redelivery passes.
    // Each start takes a port of its own (PORT 0): reusing the killed one's raced other tests' sockets (EADDRINUSE).
    const env = { INGEST_VISIBILITY_SECONDS: '120' };
    const first = await startStackProcess({ dataDir, nodesFile, env: { ...env, INGEST_TEST_HOLD_MS: '60000' } });
    running.push(first);
    for (const xpu of ['dpu0', 'dpu1', 'dpu2']) {
      const res = await api(first.url, '/v1/events', {
        token: 'agent-token-node-a',
        body: { id: `inflight-${xpu}`, type: 'xpu.reboot.pending', node: 'node-a', xpu },
      });
      expect(res.status).toBe(202);
    }
    // The consumer has received a batch and holds it (test hook): kill -9 exactly there.
    await waitFor('the consumer to hold a batch', async () => first.output().includes('test-hook: ingest holds'));
    await first.stop('SIGKILL');
    expect((await api(first.url, '/healthz').catch(() => ({ status: 0 }))).status).toBe(0);

    const second = await startStackProcess({ dataDir, nodesFile, env });
    running.push(second);
    const items = await waitFor(
      'all three reboots after the restart',
      async () => {
        const list = (await api(second.url, '/v1/reboots', { token: OPERATOR_TOKEN })).json.items as {
          xpu: string;
          history: { detail?: string }[];
        }[];
        return list.length === 3 ? list : undefined;
      },
      10_000,
    );
    expect(items.map((r) => r.xpu).sort()).toEqual(['dpu0', 'dpu1', 'dpu2']);
    // Processed once each, and the receive that died with the stack did not park anything.
    for (const r of items) expect(r.history.filter((h) => String(h.detail).includes(`event inflight-${r.xpu})`))).toHaveLength(1);
    expect((await api(second.url, '/v1/dlq', { token: OPERATOR_TOKEN })).json.items).toEqual([]);
  });
});
