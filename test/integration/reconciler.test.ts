// Issue 14: a reboot whose workflow execution ended, failed or is gone is ended with a reason and its claim released.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../local/stack.ts';
import { parseConfig } from '../../local/config.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { createReconciler } from '../../lambdas/handlers/reconciler.ts';
import type { WorkflowExecutionState } from '../../lambdas/ports/index.ts';
import { api, tempDir, waitFor } from '../support/stack.ts';

const OPERATOR = 'operator-token-reconciler';
const A = 'agent-token-node-a';
const INVENTORY = `
nodes:
  - id: node-a
    trusted: true
    agentToken: ${A}
    xpus: [{ id: dpu0 }, { id: dpu1 }, { id: dpu2 }, { id: dpu3 }, { id: dpu4 }]
`;

let stack: Stack;

beforeAll(async () => {
  const dir = tempDir('reconciler');
  writeFileSync(join(dir, 'nodes.yaml'), INVENTORY);
  stack = await startStack({
    config: parseConfig({
      PORT: '0',
      DATA_DIR: join(dir, 'data'),
      NODES_FILE: join(dir, 'nodes.yaml'),
      OPERATOR_TOKEN: OPERATOR,
      RECONCILE_INTERVAL_SECONDS: '0',
    }),
    logger: silentLogger,
  });
});
afterAll(async () => {
  await stack?.close();
});

async function startReboot(xpu: string, id: string): Promise<any> {
  expect((await api(stack.url, '/v1/events', { token: A, body: { id, type: 'xpu.reboot.pending', node: 'node-a', xpu } })).status).toBe(
    202,
  );
  return waitFor(`reboot of ${xpu} from ${id}`, async () => {
    const items = (await api(stack.url, `/v1/reboots?node=node-a`, { token: OPERATOR })).json.items as any[];
    return items.find((r) => r.xpu === xpu && r.status === 'preparing' && r.history.some((h: any) => h.detail.includes(id)));
  });
}

describe('reconciler', () => {
  it('leaves running reboots alone', async () => {
    const reboot = await startReboot('dpu0', 'rec-running');
    const res = await stack.reconcile();
    expect(res.ended).toEqual([]);
    expect(res.checked).toBeGreaterThanOrEqual(1);
    expect((await stack.deps.store.getNodeState('node-a')).xpus.dpu0).toBe(reboot.id);
  });

  it('ends a reboot whose execution was stopped, releases its claim, counts it; a new notice starts a new reboot', async () => {
    const reboot = await startReboot('dpu1', 'rec-aborted');
    const arn = `${stack.workflowArns['xpu-reboot'].replace(':stateMachine:', ':execution:')}:${reboot.id}`;
    stack.engine.stopExecution({ executionArn: arn, error: 'Test.Stopped', cause: 'stopped by the test' });

    const res = await stack.reconcile();
    expect(res.ended).toEqual([{ rebootId: reboot.id, reason: 'workflow-failed' }]);
    const after = (await api(stack.url, `/v1/reboots/${reboot.id}`, { token: OPERATOR })).json;
    expect(after.status).toBe('failed');
    expect(after.endedAt).toBeTruthy();
    expect(after.history.at(-1)).toMatchObject({ phase: 'failed', by: 'coordinator' });
    expect(after.history.at(-1).detail).toMatch(/workflow-failed: its workflow execution ended ABORTED/);
    expect((await stack.deps.store.getNodeState('node-a')).xpus.dpu1).toBeUndefined();
    expect(stack.counters.get('RebootsReconciled')).toBe(1);

    // Not stuck: the next notice for that xPU is a reboot of its own, not joined to the dead one.
    const next = await startReboot('dpu1', 'rec-after');
    expect(next.id).not.toBe(reboot.id);
    // A second pass changes nothing more.
    expect((await stack.reconcile()).ended).toEqual([]);
  });

  it('ends a reboot whose execution failed or is gone (after the grace), not one that may still start', async () => {
    const reboot = await startReboot('dpu2', 'rec-gone');
    const states: WorkflowExecutionState[] = [{ status: 'NOT_FOUND' }];
    const describe = async () => states[0];
    const withGrace = createReconciler({ ...stack.deps, workflows: { ...stack.deps.workflows, describe } }, { missingGraceSeconds: 3600 });
    expect((await withGrace()).ended).toEqual([]);
    states[0] = { status: 'FAILED', error: 'States.TaskFailed', cause: 'retries exhausted' };
    const res = await createReconciler(
      { ...stack.deps, workflows: { ...stack.deps.workflows, describe } },
      { missingGraceSeconds: 3600 },
    )();
    expect(res.ended.map((e) => e.rebootId)).toContain(reboot.id);
    const after = (await api(stack.url, `/v1/reboots/${reboot.id}`, { token: OPERATOR })).json;
    expect(after.history.at(-1).detail).toMatch(/States.TaskFailed: retries exhausted/);
    expect((await stack.deps.store.getNodeState('node-a')).xpus.dpu2).toBeUndefined();
  });

  it('wakes a running wait whose condition already happened (a lost wake-up), once, and counts it', async () => {
    const reboot = await startReboot('dpu3', 'rec-lost-wakeup');
    await waitFor('the wait for the host', async () => (await stack.deps.store.getReboot(reboot.id))?.waiter?.waitFor === 'prepared');
    // The xPU's ready lands on the reboot, but the wake-up that change sends is lost.
    const at = new Date().toISOString();
    await stack.deps.store.updateReboot(reboot.id, (r) => ({ ...r, readyAt: at }));
    expect((await stack.reconcile()).woken).toEqual([reboot.id]);
    expect(stack.counters.get('LostWakeupsRecovered')).toBe(1);
    // The workflow went on from where it waited: the host is asked to restore PCIe.
    await waitFor('restore-pcie', async () =>
      Object.values((await stack.deps.store.getReboot(reboot.id))?.commands ?? {}).some((c) => c.type === 'restore-pcie'),
    );
    // Woken once: the next pass finds the new wait not yet satisfied.
    expect((await stack.reconcile()).woken).toEqual([]);
    expect(stack.counters.get('LostWakeupsRecovered')).toBe(1);
  });

  it('a reboot it ends sends on what it kept for the xPU’s next reboot (model.ts defer)', async () => {
    const reboot = await startReboot('dpu4', 'rec-kept');
    const arn = `${stack.workflowArns['xpu-reboot'].replace(':stateMachine:', ':execution:')}:${reboot.id}`;
    stack.engine.stopExecution({ executionArn: arn, error: 'Test.Stopped', cause: 'stopped by the test' });
    // The xPU is back; with its workflow gone the reboot keeps the claim, so the next notice reaches it.
    const post = (id: string, type: string) => api(stack.url, '/v1/events', { token: A, body: { id, type, node: 'node-a', xpu: 'dpu4' } });
    expect((await post('rec-kept-ready', 'xpu.ready')).status).toBe(202);
    await waitFor('the ready applied', async () => (await stack.deps.store.getReboot(reboot.id))?.readyAt);
    expect((await post('rec-kept-next', 'xpu.reboot.pending')).status).toBe(202);
    await waitFor('the notice kept', async () => (await stack.deps.store.getReboot(reboot.id))?.deferred?.length === 1);
    expect((await stack.deps.store.getNodeState('node-a')).xpus.dpu4).toBe(reboot.id);

    const res = await stack.reconcile();
    expect(res.ended.map((e) => e.rebootId)).toContain(reboot.id);
    const next = await waitFor('the next reboot, from the kept notice', async () => {
      const items = (await api(stack.url, '/v1/reboots?node=node-a', { token: OPERATOR })).json.items as any[];
      return items.find((r) => r.xpu === 'dpu4' && r.id !== reboot.id);
    });
    expect(next.history[0].phase).toBe('notified');
    expect(next.history[0].detail).toContain('event rec-kept-next)');
  });
});
