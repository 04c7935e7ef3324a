// The early go an xPU never took is withdrawn once the xPU went down or came back anyway (handlers/end.ts
// withdrawUntakenGo): its agent, polling after the boot, must not reboot it a second time. One it took stays.
import { describe, expect, it } from 'vitest';
import { withdrawUntakenGo } from '../../lambdas/handlers/end.ts';
import type { Deps } from '../../lambdas/handlers/deps.ts';
import type { StoredReboot } from '../../lambdas/core/reboot.ts';
import type { CommandStatus } from '../../lambdas/core/types.ts';

const go = (id: string, status: CommandStatus) => ({
  id,
  type: 'proceed-reboot',
  agent: 'n1.dpu0',
  step: 'proceed',
  status,
  at: '2030-01-01T00:00:00.000Z',
});

function fake(stored: Record<string, CommandStatus>) {
  const records = new Map(Object.entries(stored).map(([id, status]) => [id, { id, status } as Record<string, unknown>]));
  const deps = {
    clock: { now: () => new Date('2030-01-01T00:05:00.000Z') },
    store: {
      updateCommand: async (_agent: string, id: string, change: (c: any) => any) => {
        const next = change(structuredClone(records.get(id)));
        if (!next) return { command: records.get(id), changed: false };
        records.set(id, next);
        return { command: next, changed: true };
      },
    },
  } as unknown as Deps;
  return { deps, records };
}

describe('withdrawUntakenGo', () => {
  it('withdraws a go still pending (never delivered), leaves one its agent took', async () => {
    const r = { commands: { a: go('a', 'pending'), b: go('b', 'pending') } } as unknown as StoredReboot;
    // The reboot's summary says pending for both; the command records know b was delivered since.
    const { deps, records } = fake({ a: 'pending', b: 'delivered' });
    expect(await withdrawUntakenGo(deps, r)).toEqual(['a']);
    expect(records.get('a')).toMatchObject({ status: 'timed-out', output: expect.stringMatching(/withdrawn/) });
    expect(records.get('b')).toMatchObject({ status: 'delivered' });
  });

  it('withdraws nothing once the go has a result', async () => {
    const r = { commands: { a: go('a', 'succeeded') } } as unknown as StoredReboot;
    expect(await withdrawUntakenGo(fake({ a: 'succeeded' }).deps, r)).toEqual([]);
  });
});
