// Pure reboot decisions: deadlines, extension caps, the deny policy, command plans and wake-ups.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  decideExtension,
  decideHostReboot,
  evaluateWait,
  newXpuReboot,
  planCommands,
  rebootIdFor,
  type StoredReboot,
} from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { EXAMPLE, parseInventory } from './inventory-fixture.ts';

const inv = parseInventory(EXAMPLE, 'test');
const nodeA = inv.nodes[0];
const nodeB = inv.nodes[1];
const T0 = '2026-11-25T10:00:00.000Z';

function pending(data: Record<string, unknown> = {}, time = T0): NativeEvent {
  return {
    id: 'e1',
    type: 'xpu.reboot.pending',
    node: 'node-a',
    xpu: 'dpu0',
    time,
    data,
    source: 'native',
    dedupKey: 'native:node-a:e1',
    receivedAt: T0,
  };
}

describe('xPU reboot deadline', () => {
  it('is the notice time plus the policy notice when the event gives none', () => {
    const r = newXpuReboot('r1', nodeA, 'dpu0', pending(), 'planned');
    expect(r.deadline).toBe('2026-11-25T10:02:00.000Z');
    expect(r.noticeSeconds).toBe(120);
  });

  it('may be shortened by the event, never lengthened past the policy', () => {
    expect(newXpuReboot('r', nodeA, 'dpu0', pending({ noticeSeconds: 30 }), 'planned').deadline).toBe('2026-11-25T10:00:30.000Z');
    expect(newXpuReboot('r', nodeA, 'dpu0', pending({ noticeSeconds: 9999 }), 'planned').deadline).toBe('2026-11-25T10:02:00.000Z');
    expect(newXpuReboot('r', nodeA, 'dpu0', pending({ noticeSeconds: -5 }), 'planned').noticeSeconds).toBe(120);
    expect(newXpuReboot('r', nodeA, 'dpu0', pending({ noticeSeconds: '45' }), 'planned').noticeSeconds).toBe(45);
    for (const junk of ['', ' ', 'soon', null, true, Number.NaN])
      expect(newXpuReboot('r', nodeA, 'dpu0', pending({ noticeSeconds: junk }), 'planned').noticeSeconds).toBe(120);
  });

  it('is the notice time itself for a notice of 0 given (a reboot without notice), not the policy', () => {
    for (const zero of [0, '0', 0.4]) {
      const r = newXpuReboot('r', nodeA, 'dpu0', pending({ noticeSeconds: zero }), 'planned');
      expect(r.noticeSeconds).toBe(0);
      expect(r.deadline).toBe(r.notifiedAt);
    }
  });

  it('does not let a BMC clock running ahead extend the notice', () => {
    const r = newXpuReboot('r', nodeA, 'dpu0', pending({}, '2026-11-25T11:00:00.000Z'), 'planned');
    expect(r.notifiedAt).toBe(T0);
  });

  it('derives the same reboot id from the same event key', () => {
    expect(rebootIdFor('xpu', 'k1')).toBe(rebootIdFor('xpu', 'k1'));
    expect(rebootIdFor('xpu', 'k1')).not.toBe(rebootIdFor('xpu', 'k2'));
    expect(rebootIdFor('host', 'k1')).toMatch(/^hr-/);
  });
});

describe('extensions', () => {
  const base = () => newXpuReboot('r1', nodeA, 'dpu0', pending(), 'planned');
  const now = new Date('2026-11-25T10:01:00Z');

  it('grants within the caps and trims a request beyond the remaining seconds', () => {
    const r = base();
    r.extensions.push({ at: T0, requested: 1500, granted: 1500, reason: '', deadline: '' });
    const d = decideExtension(r, nodeA, 600, now);
    expect(d).toMatchObject({ kind: 'granted', granted: 300 });
  });

  it('refuses an untrusted host with 403 before any 409', () => {
    const r = base();
    r.status = 'rebooting';
    expect(decideExtension(r, nodeB, 60, now)).toMatchObject({ kind: 'refused', status: 403 });
  });

  it('refuses with 409 past the notice phase, past the deadline, at maxExtensions and with no seconds left', () => {
    const r = base();
    r.status = 'rebooting';
    expect(decideExtension(r, nodeA, 60, now)).toMatchObject({ status: 409, code: 'PastNoticePhase' });
    expect(decideExtension(base(), nodeA, 60, new Date('2026-11-25T10:05:00Z'))).toMatchObject({ status: 409, code: 'PastDeadline' });
    const full = base();
    for (let i = 0; i < 3; i++) full.extensions.push({ at: T0, requested: 1, granted: 1, reason: '', deadline: '' });
    expect(decideExtension(full, nodeA, 60, now)).toMatchObject({ status: 409, code: 'MaxExtensions' });
    const spent = base();
    spent.extensions.push({ at: T0, requested: 1800, granted: 1800, reason: '', deadline: '' });
    expect(decideExtension(spent, nodeA, 60, now)).toMatchObject({ status: 409, code: 'NoExtensionSecondsLeft' });
  });

  it('never lets the total exceed maxExtensionSeconds nor the count exceed maxExtensions (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 10 }), (asks) => {
        const r = base();
        for (const s of asks) {
          const d = decideExtension(r, nodeA, s, now);
          if (d.kind === 'granted') {
            expect(d.granted).toBeGreaterThan(0);
            expect(d.granted).toBeLessThanOrEqual(s);
            r.extensions.push({ at: T0, requested: s, granted: d.granted, reason: '', deadline: d.deadline });
            r.deadline = d.deadline;
          }
        }
        const total = r.extensions.reduce((a, e) => a + e.granted, 0);
        expect(total).toBeLessThanOrEqual(1800);
        expect(r.extensions.length).toBeLessThanOrEqual(3);
      }),
    );
  });
});

describe('host reboot policy', () => {
  it('denies while an xPU reboots, joins a running host reboot, allows otherwise', () => {
    expect(decideHostReboot(nodeA, { xpus: { dpu0: 'xr-1' } })).toMatchObject({ kind: 'deny' });
    expect(decideHostReboot(nodeA, { xpus: {}, host: 'hr-1' })).toEqual({ kind: 'join', rebootId: 'hr-1' });
    expect(decideHostReboot(nodeA, { xpus: {} })).toEqual({ kind: 'allow' });
  });
});

describe('command plans', () => {
  const now = new Date(T0);
  it('migrates to another healthy xPU of the same host when there is one, else to another host', () => {
    const r = newXpuReboot('r1', nodeA, 'dpu0', pending(), 'planned');
    const [migrate, protect] = planCommands(r, 'prepare', { node: nodeA, now, busyXpus: [] });
    expect(migrate).toMatchObject({
      type: 'migrate-workloads',
      agent: 'node-a',
      args: { target: 'other-xpu', xpu: 'dpu1' },
      deadline: r.deadline,
    });
    expect(protect).toMatchObject({ type: 'protect-pcie', agent: 'node-a' });
    const busy = planCommands(r, 'prepare', { node: nodeA, now, busyXpus: ['dpu1'] });
    expect(busy[0].args).toEqual({ target: 'other-host' });
  });

  it('gives command ids that repeat for a replayed step', () => {
    const r = newXpuReboot('r1', nodeA, 'dpu0', pending(), 'planned');
    const a = planCommands(r, 'prepare', { node: nodeA, now, busyXpus: [] }).map((c) => c.id);
    const b = planCommands(r, 'prepare', { node: nodeA, now, busyXpus: [] }).map((c) => c.id);
    expect(a).toEqual(b);
    expect(new Set(a).size).toBe(2);
  });
});

describe('waking the notice phase', () => {
  function waiting(): StoredReboot {
    const r = newXpuReboot('r1', nodeA, 'dpu0', pending(), 'planned');
    for (const c of planCommands(r, 'prepare', { node: nodeA, now: new Date(T0), busyXpus: [] }))
      r.commands[c.id] = { id: c.id, type: c.type, agent: c.agent, step: 'prepare', status: 'pending', at: T0 };
    r.waiter = { token: 't', step: 'prepare', waitFor: 'prepared', deadline: r.deadline, at: T0 };
    return r;
  }
  const now = new Date('2026-11-25T10:01:00Z');

  it('waits while commands are open, wakes when all succeeded or skipped', () => {
    const r = waiting();
    expect(evaluateWait(r, nodeA, now)).toBeNull();
    const [a, b] = Object.keys(r.commands);
    r.commands[a].status = 'succeeded';
    expect(evaluateWait(r, nodeA, now)).toBeNull();
    r.commands[b].status = 'skipped';
    expect(evaluateWait(r, nodeA, now)).toMatchObject({ signal: 'prepared', secondsToDeadline: 60 });
  });

  it('does not go early when a preparation command failed', () => {
    const r = waiting();
    for (const c of Object.values(r.commands)) c.status = 'failed';
    expect(evaluateWait(r, nodeA, now)).toBeNull();
  });

  it('wakes on a moved deadline, a crash, or the xPU coming back', () => {
    const ext = waiting();
    ext.deadline = '2026-11-25T10:10:00.000Z';
    expect(evaluateWait(ext, nodeA, now)).toMatchObject({ signal: 'extended', secondsToDeadline: 540 });
    const crash = waiting();
    crash.crashedAt = T0;
    expect(evaluateWait(crash, nodeA, now)).toMatchObject({ signal: 'crashed' });
    const ready = waiting();
    ready.readyAt = T0;
    expect(evaluateWait(ready, nodeA, now)).toMatchObject({ signal: 'xpu-ready' });
  });
});

describe('notice time and clock skew', () => {
  it('dates the notice by the receipt, however far off the source clock is (contract 7.1)', () => {
    // A clock 30 s behind used to shorten the notice by 30 s: the source's time only orders its own events.
    for (const time of ['2026-11-25T09:59:30.000Z', '2026-11-25T10:00:40.000Z']) {
      const r = newXpuReboot('r', nodeA, 'dpu0', pending({}, time), 'planned');
      expect(r.notifiedAt).toBe(T0);
      expect(r.origin?.time).toBe(time);
    }
    const skewed = newXpuReboot('r', nodeA, 'dpu0', pending({}, '2026-11-25T07:00:00.000Z'), 'planned');
    expect(skewed.notifiedAt).toBe(T0);
    expect(skewed.deadline).toBe('2026-11-25T10:02:00.000Z');
  });
});
