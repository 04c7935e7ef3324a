// What GET /v1/reboots[/id], a node's activeReboots and the report read of a stored reboot: the reboot, not the
// machinery the workflow and the model keep on it (handlers/views.ts publicReboot).
import { describe, expect, it } from 'vitest';
import { parseInventory } from '../../lambdas/core/inventory.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { publicReboot } from '../../lambdas/handlers/views.ts';

const node = parseInventory('nodes:\n  - { id: n1, rack: r1, xpus: [{ id: dpu0 }] }\n').nodes[0];
const at = '2030-01-01T00:00:00.000Z';
const ev: NativeEvent = {
  id: 'e',
  type: 'xpu.reboot.pending',
  node: 'n1',
  xpu: 'dpu0',
  time: at,
  source: 'native',
  dedupKey: 'k',
  receivedAt: at,
};

describe('publicReboot', () => {
  it('shows the reboot and its story, not the sources’ own clocks or the workflow’s bookkeeping', () => {
    const origin = { source: 'bmc', time: '2029-12-22T00:00:00.000Z', receivedAt: at };
    const stored: StoredReboot = {
      ...newXpuReboot('xr-1', node, 'dpu0', ev, 'planned'),
      origin,
      readyOrigin: origin,
      downOrigin: origin,
      joinedOrigins: [origin],
      hostReadyOrigin: origin,
      hostDownOrigin: origin,
      waiter: { token: 't', step: 'notice', waitFor: 'host-ready' } as StoredReboot['waiter'],
      executionName: 'xr-1',
      deferred: [ev],
      outageNotices: [ev],
    };
    const shown = publicReboot(stored) as unknown as Record<string, unknown>;
    for (const hidden of [
      'origin',
      'readyOrigin',
      'downOrigin',
      'joinedOrigins',
      'hostReadyOrigin',
      'hostDownOrigin',
      'waiter',
      'executionName',
      'deferred',
      'outageNotices',
      'version',
    ])
      expect(shown, hidden).not.toHaveProperty(hidden);
    // Nothing the BMC's clock said (ten days behind) is in what the API shows.
    expect(JSON.stringify(shown)).not.toContain('2029-12-22');
    for (const field of ['id', 'kind', 'node', 'xpu', 'status', 'mode', 'notifiedAt', 'deadline', 'extensions', 'history'])
      expect(shown, field).toHaveProperty(field);
  });
});
