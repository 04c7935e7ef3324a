// Reboot and command ids: ULID-based, time-ordered, unique; legacy ids still recognised.
import { describe, expect, it } from 'vitest';
import { commandId, legacyRebootId, newRebootId, rebootIdKind, rebootIdTime } from '../../lambdas/core/ids.ts';

describe('reboot ids', () => {
  it('are unique and sort in the order they were minted, also within one millisecond and with the clock stepping back', () => {
    const t = new Date('2030-01-01T00:00:00Z');
    const ids = [
      ...Array.from({ length: 500 }, () => newRebootId('xpu', t)),
      newRebootId('xpu', new Date(t.getTime() - 60_000)),
      newRebootId('xpu', new Date(t.getTime() + 1)),
    ];
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    expect(ids[0]).toMatch(/^xr-[0-9a-z]{26}$/);
    expect(newRebootId('host', t)).toMatch(/^hr-/);
  });

  it('carry the time they were minted at; legacy ids carry none but keep their kind', () => {
    const t = new Date('2031-05-06T07:08:09.010Z');
    expect(rebootIdTime(newRebootId('xpu', t))?.toISOString()).toBe(t.toISOString());
    const legacy = legacyRebootId('xpu', 'native:n:e1');
    expect(legacy).toMatch(/^xr-[0-9a-z]{16}$/);
    expect(legacy).toBe(legacyRebootId('xpu', 'native:n:e1'));
    expect(rebootIdTime(legacy)).toBeUndefined();
    expect(rebootIdKind(legacy)).toBe('xpu');
  });
});

describe('command ids', () => {
  it('are stable for one reboot, type and target, and differ across reboots of the same event', () => {
    const t = new Date('2030-01-01T00:00:00Z');
    const [a, b] = [newRebootId('xpu', t), newRebootId('xpu', t)];
    expect(commandId(a, 'protect-pcie', null)).toBe(commandId(a, 'protect-pcie', null));
    expect(commandId(a, 'protect-pcie', null)).not.toBe(commandId(b, 'protect-pcie', null));
    expect(commandId(a, 'reprovision', 'dpu0')).toBe(`${a}.reprovision.dpu0`);
    expect(commandId(a, 'postpone-reboot', 'dpu0', 2)).toBe(`${a}.postpone-reboot.dpu0.2`);
  });
});
