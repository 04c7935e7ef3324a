// Issue 14: a message whose processing kills the whole stack is not handed out for ever. Each receive that ends
// with the stack dying counts; after MAX_RECEIVE_COUNT of them the message is parked in the DLQ with a reason
// (GET /v1/dlq), and the stack then starts and processes the events that follow.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_RECEIVE_COUNT } from '../../local/sqs.ts';
import { api, OPERATOR_TOKEN, startStackProcess, tempDir, waitFor, writeInventory, type RunningStack } from '../support/stack.ts';

const INVENTORY = `
nodes:
  - id: node-a
    trusted: true
    agentToken: agent-token-node-a
    xpus: [{ id: dpu0 }, { id: dpu1 }, { id: dpu2 }]
`;
const AGENT = 'agent-token-node-a';
const CRASH = 'test-hook: ingest crashes the stack on event poison-1';

const running: RunningStack[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop('SIGKILL')));
});

async function reboots(url: string): Promise<Array<{ xpu: string; history: Array<{ detail?: string }> }>> {
  return (await api(url, '/v1/reboots', { token: OPERATOR_TOKEN })).json.items;
}

describe('a message that kills the stack each time it is processed', () => {
  it(`is parked in the DLQ with its reason after ${MAX_RECEIVE_COUNT} deaths; the events after it are processed`, async () => {
    const dir = tempDir('poison');
    const nodesFile = writeInventory(dir, INVENTORY);
    const dataDir = join(dir, 'data');
    // PORT 0: each restart takes a port of its own (reusing one races other tests' sockets).
    const env = { INGEST_TEST_CRASH_EVENT: 'poison-1', RECONCILE_INTERVAL_SECONDS: '0' };

    const first = await startStackProcess({ dataDir, nodesFile, env });
    running.push(first);
    const before = await api(first.url, '/v1/events', {
      token: AGENT,
      body: { id: 'before-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu1' },
    });
    expect(before.status).toBe(202);
    await waitFor('the event before the poison to be processed', async () => (await reboots(first.url)).length === 1);
    const poison = await api(first.url, '/v1/events', {
      token: AGENT,
      body: { id: 'poison-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0' },
    });
    expect(poison.status).toBe(202);
    await waitFor('the stack to die of the poison message', async () => first.proc.signalCode !== null || first.proc.exitCode !== null);
    expect(first.output()).toContain(CRASH);
    expect(first.proc.signalCode).toBe('SIGKILL');
    let deaths = 1;

    // Every start hands the message out again at once (the stack is its only consumer), and dies of it, until its
    // receives are used up. A start that dies before it is ready rejects; one that got ready dies just after.
    let survivor: RunningStack | undefined;
    for (let start = 0; start < MAX_RECEIVE_COUNT + 2 && !survivor; start++) {
      let output: string;
      try {
        const s = await startStackProcess({ dataDir, nodesFile, env });
        running.push(s);
        const died = await waitFor('the stack to die of the poison message, or to keep running', async () => {
          if (s.proc.signalCode !== null || s.proc.exitCode !== null) return 'died';
          const dlq = await api(s.url, '/v1/dlq', { token: OPERATOR_TOKEN }).catch(() => undefined);
          return dlq?.status === 200 && dlq.json.items.length > 0 ? 'parked' : undefined;
        });
        if (died === 'parked') survivor = s;
        output = s.output();
      } catch (err) {
        output = (err as Error).message;
      }
      if (!survivor) {
        expect(output).toContain(CRASH);
        deaths++;
      }
    }
    expect(deaths).toBe(MAX_RECEIVE_COUNT);
    expect(survivor).toBeDefined();
    const url = survivor!.url;

    const dlq = (await api(url, '/v1/dlq', { token: OPERATOR_TOKEN })).json.items;
    expect(dlq).toHaveLength(1);
    expect(dlq[0].event.id).toBe('poison-1');
    expect(dlq[0].receiveCount).toBe(MAX_RECEIVE_COUNT);
    expect(dlq[0].reason).toMatch(
      new RegExp(
        `coordinator stopped \\(killed or crashed\\) while this event was being processed \\(receive ${MAX_RECEIVE_COUNT} of ${MAX_RECEIVE_COUNT}\\); parked`,
      ),
    );

    // The stack is usable again: the next event is processed; the poison event made no reboot.
    const next = await api(url, '/v1/events', {
      token: AGENT,
      body: { id: 'after-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu2' },
    });
    expect(next.status).toBe(202);
    const items = await waitFor('the event after the poison to be processed', async () => {
      const list = await reboots(url);
      return list.length === 2 ? list : undefined;
    });
    expect(items.map((r) => r.xpu).sort()).toEqual(['dpu1', 'dpu2']);
    expect(survivor!.proc.exitCode).toBeNull();
  }, 180_000);
});
