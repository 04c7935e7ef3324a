// The pure parts of retried writes: an extension request applied twice, a result recorded twice.
import { describe, expect, it } from 'vitest';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { recordResult, requestExtension } from '../../lambdas/core/model.ts';
import type { StoredCommand } from '../../lambdas/ports/index.ts';
import { EXAMPLE, parseInventory } from './inventory-fixture.ts';

const node = parseInventory(EXAMPLE, 'test').nodes[0];
const T0 = '2030-01-01T00:00:00.000Z';
const now = new Date('2030-01-01T00:00:30.000Z');

function reboot(): StoredReboot {
  const ev: NativeEvent = {
    id: 'e1',
    type: 'xpu.reboot.pending',
    node: node.id,
    xpu: 'dpu0',
    time: T0,
    source: 'native',
    dedupKey: 'k',
    receivedAt: T0,
  };
  const r = newXpuReboot('xr-01jabcdefghjkmnpqrstvwxyz0', node, 'dpu0', ev, 'planned');
  r.status = 'preparing';
  return r;
}

/** The old in-place shape of the extension transition, so these cases read as before. */
function applyExtensionRequest(r: StoredReboot, n: typeof node, req: Parameters<typeof requestExtension>[2], at: Date) {
  const { outcome, step } = requestExtension(r, n, req, at);
  if (step) Object.assign(r, step.reboot);
  return { outcome, changed: step !== null };
}

describe('requestExtension', () => {
  const ask = (key?: string) => ({ seconds: 30, reason: 'drain', idempotencyKey: key, by: 'agent:node-a' });

  it('grants once per key: a repeat answers the first grant and changes nothing', () => {
    const r = reboot();
    const first = applyExtensionRequest(r, node, ask('node-a k1'), now);
    expect(first).toMatchObject({ changed: true, outcome: { kind: 'granted', granted: 30, repeat: false } });
    const deadline = r.deadline;
    const again = applyExtensionRequest(r, node, ask('node-a k1'), new Date(now.getTime() + 5000));
    expect(again).toEqual({ changed: false, outcome: { ...first.outcome, repeat: true } });
    expect(r.extensions).toHaveLength(1);
    expect(r.deadline).toBe(deadline);
    expect(applyExtensionRequest(r, node, ask('node-a k2'), now).changed).toBe(true);
    expect(applyExtensionRequest(r, node, ask(), now).changed).toBe(true);
    expect(r.extensions).toHaveLength(3);
  });

  it('counts a refusal once per key and answers its repeat with the same code and reason', () => {
    const r = reboot();
    r.status = 'rebooting';
    const first = applyExtensionRequest(r, node, ask('node-a k1'), now);
    expect(first).toMatchObject({ changed: true, outcome: { kind: 'refused', status: 409, code: 'PastNoticePhase' } });
    const again = applyExtensionRequest(r, node, ask('node-a k1'), now);
    expect(again).toEqual({ changed: false, outcome: { ...first.outcome, repeat: true } });
    expect(r.refusals).toHaveLength(1);
    expect(r.history.filter((h) => h.phase === 'extension-refused')).toEqual([expect.objectContaining({ by: 'agent:node-a' })]);
  });
});

describe('recordResult', () => {
  const cmd = (status: StoredCommand['status']): StoredCommand => ({
    id: 'xr-1.protect-pcie',
    type: 'protect-pcie',
    rebootId: 'xr-1',
    node: node.id,
    xpu: null,
    args: {},
    deadline: T0,
    agent: node.id,
    step: 'prepare',
    status,
    noticePhase: true,
    createdAt: T0,
    finishedAt: '2030-01-01T00:00:10.000Z',
    output: 'boom\nlast line',
  });

  it('records a final result the reboot does not have, and nothing when it has it', () => {
    const r = reboot();
    r.commands['xr-1.protect-pcie'] = {
      id: 'xr-1.protect-pcie',
      type: 'protect-pcie',
      agent: node.id,
      step: 'prepare',
      status: 'delivered',
      at: T0,
    };
    const once = recordResult(r, cmd('failed'), node.id)?.reboot;
    expect(once?.commands['xr-1.protect-pcie']).toMatchObject({
      status: 'failed',
      at: '2030-01-01T00:00:10.000Z',
      output: 'boom\nlast line',
    });
    expect(once?.history.at(-1)).toMatchObject({
      phase: 'command-failed',
      detail: 'protect-pcie on node-a failed: last line',
      by: `agent:${node.id}`,
    });
    expect(r.commands['xr-1.protect-pcie'].status).toBe('delivered'); // pure: the given reboot is left as it was
    expect(recordResult(structuredClone(once!), cmd('failed'), node.id)).toBeNull();
  });

  it('records nothing for a command that is not final or timed out', () => {
    expect(recordResult(reboot(), cmd('running'), node.id)).toBeNull();
    expect(recordResult(reboot(), cmd('timed-out'), node.id)).toBeNull();
  });
});
