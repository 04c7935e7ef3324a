// Pure fleet-safety state changes: queueing and leaving the queue, cancel and force, and the waits they wake.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { onBudgetRefused, onQueueLeft, queueRecheckAt, queueWindow, type Hold } from '../../lambdas/core/budgets.ts';
import {
  cancel,
  force,
  markForced,
  onXpuDown,
  onXpuReady,
  recordResult,
  sameOutage,
  type Refused,
  type Step,
} from '../../lambdas/core/model.ts';
import { evaluateWait, newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import { parseInventory } from '../../lambdas/core/inventory.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';

const node = parseInventory(`
policy:
  xpuReboot: { noticeSeconds: 300, maxExtensionSeconds: 1800, commandSeconds: 60 }
  budgets: [{ per: rack, maxUnavailable: 1 }]
nodes:
  - { id: n1, rack: r1, xpus: [{ id: dpu0 }] }
`).nodes[0];
const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000);
const iso = (s: number) => at(s).toISOString();

function planned(): StoredReboot {
  const ev: NativeEvent = {
    id: 'e',
    type: 'xpu.reboot.pending',
    node: 'n1',
    xpu: 'dpu0',
    time: iso(0),
    source: 'native',
    dedupKey: 'k',
    receivedAt: iso(0),
  };
  return newXpuReboot('xr-1', node, 'dpu0', ev, 'planned');
}
function ok(step: Step | Refused): Step {
  if ('refused' in step) throw new Error(step.refused);
  return step;
}
const waiting = (r: StoredReboot, waitFor: 'budget-slot' | 'prepared', step: string) => {
  r.waiter = { token: 't', step, waitFor, deadline: r.deadline, at: r.notifiedAt };
  return r;
};

describe('the queue', () => {
  it('holds the xPU deadline at most maxExtensionSeconds past the announced one, and re-dates it to a full notice when a slot frees', () => {
    const r = onBudgetRefused(planned(), 'budget: rack r1 full', [], node.policy.xpuReboot, at(1));
    expect(r).toMatchObject({ status: 'queued', deadline: iso(300 + 1800) });
    expect(r.queue).toMatchObject({ announcedDeadline: iso(300), capAt: iso(1800), recheckAt: iso(61) });
    expect(queueWindow(r, at(1))).toEqual({ signal: 'queued', waitSeconds: 60 });
    expect(evaluateWait(waiting(r, 'budget-slot', 'budget'), node, at(2))).toBeNull();
    onQueueLeft(r, 'slot', node.policy.xpuReboot, at(100));
    expect(r).toMatchObject({ status: 'notified', deadline: iso(400), queue: { admittedAt: iso(100) } });
    expect(evaluateWait(r, node, at(100))).toMatchObject({ signal: 'admitted', deadline: iso(400), secondsToDeadline: 300 });
  });

  it('a reboot a hold queued says, when it goes on, that nothing holds it any more (not that a budget slot freed)', () => {
    const r = onBudgetRefused(planned(), 'hold: hold h on node n1 (switch firmware)', [], node.policy.xpuReboot, at(1));
    onQueueLeft(r, 'slot', node.policy.xpuReboot, at(16));
    expect(r.history.at(-1)).toMatchObject({
      phase: 'admitted',
      detail: `admitted after 15s queued (no hold matches it and its budgets have room): notice goes on, new deadline ${iso(316)}`,
    });
  });

  it('never moves the deadline past the held one, whenever it goes on (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4000 }), fc.constantFrom<'slot' | 'cap'>('slot', 'cap'), (s, how) => {
        const r = onBudgetRefused(planned(), 'budget', [], node.policy.xpuReboot, at(0));
        onQueueLeft(r, how, node.policy.xpuReboot, at(s));
        expect(Date.parse(r.deadline!)).toBeLessThanOrEqual(T0 + 2100_000);
        expect(Date.parse(r.deadline!)).toBe(Math.min(T0 + (s + 300) * 1000, T0 + 2100_000));
        expect(r.history.at(-1)!.phase).toBe(how === 'cap' ? 'budget-exceeded' : 'admitted');
      }),
      { seed: 7316, numRuns: 200 },
    );
  });

  it('looks again when a hold on the node ends by itself, if that is before the next minute', () => {
    const hold: Hold = { id: 'h', selector: { node: 'n1' }, reason: '', createdAt: iso(0), by: 'operator', until: iso(20) };
    expect(queueRecheckAt({ capAt: iso(1800) }, [hold], at(0))).toBe(iso(20));
    expect(queueRecheckAt({ capAt: iso(10) }, [hold], at(0))).toBe(iso(10));
  });
});

describe('cancel', () => {
  it('before the xPU went down: cancel-reboot, then restore-pcie for what the host was asked (resume-workloads waits for it)', () => {
    const r = waiting(planned(), 'prepared', 'prepare');
    r.status = 'preparing';
    r.commands['xr-1.migrate-workloads'] = {
      id: 'xr-1.migrate-workloads',
      type: 'migrate-workloads',
      agent: 'n1',
      step: 'prepare',
      status: 'running',
      at: iso(1),
    };
    r.commands['xr-1.protect-pcie'] = {
      id: 'xr-1.protect-pcie',
      type: 'protect-pcie',
      agent: 'n1',
      step: 'prepare',
      status: 'pending',
      at: iso(1),
    };
    const step = ok(cancel(r, node, 'operator', 'wrong xPU', at(10)));
    expect(step.reboot).toMatchObject({ status: 'cancelled', endedAt: iso(10) });
    expect(step.reboot.history.at(-1)).toMatchObject({ phase: 'cancelled', by: 'operator' });
    const send = step.effects.find((e) => e.kind === 'send');
    expect(send && send.kind === 'send' && send.commands.map((c) => [c.type, c.agent])).toEqual([
      ['cancel-reboot', 'n1.dpu0'],
      ['restore-pcie', 'n1'],
    ]);
    expect(step.reboot.history.at(-1)!.detail).toMatch(/resume-workloads follows once restore-pcie succeeded/);
    expect(step.effects.find((e) => e.kind === 'close-commands')).toEqual({
      kind: 'close-commands',
      ids: ['xr-1.migrate-workloads', 'xr-1.protect-pcie'],
    });
    expect(evaluateWait(step.reboot, node, at(10))).toEqual({ signal: 'cancelled' });
    // Repeated: the same effects, no second history entry.
    const again = ok(cancel(step.reboot, node, 'operator', 'again', at(11)));
    expect(again.reboot).toBe(step.reboot);
    expect(again.effects.map((e) => e.kind)).toEqual(['close-commands', 'send', 'leave-queue', 'release', 'release-budgets']);
  });

  it('resume-workloads follows the cancel only once its restore-pcie succeeded; a failed restore-pcie is never followed by it', () => {
    const prepared = () => {
      const r = waiting(planned(), 'prepared', 'prepare');
      r.status = 'preparing';
      for (const type of ['migrate-workloads', 'protect-pcie'] as const)
        r.commands[`xr-1.${type}`] = { id: `xr-1.${type}`, type, agent: 'n1', step: 'prepare', status: 'delivered', at: iso(1) };
      return ok(cancel(r, node, 'operator', 'x', at(10))).reboot;
    };
    const restore = (status: 'succeeded' | 'failed') => ({
      id: 'xr-1.restore-pcie',
      type: 'restore-pcie' as const,
      step: 'cancel',
      status,
      createdAt: iso(10),
      finishedAt: iso(20),
      deadline: iso(70),
    });
    const sent = (s: Step | null) =>
      s?.effects.flatMap((e) => (e.kind === 'send' ? e.commands.map((c) => [c.type, c.deadline]) : [])) ?? [];

    const failed = recordResult(prepared(), restore('failed'), 'n1');
    expect(failed?.reboot.commands['xr-1.restore-pcie']?.status).toBe('failed');
    expect(sent(failed)).toEqual([]);
    expect(Object.values(failed!.reboot.commands).map((c) => c.type)).not.toContain('resume-workloads');

    const done = recordResult(prepared(), restore('succeeded'), 'n1');
    expect(sent(done)).toEqual([['resume-workloads', iso(80)]]);
    expect(done!.reboot.commands['xr-1.resume-workloads']).toMatchObject({ step: 'cancel', status: 'pending' });
    // The result posted again: nothing new on the reboot, the send repeated (a crash may have kept it from going out).
    const again = recordResult(done!.reboot, restore('succeeded'), 'n1');
    expect(again?.reboot).toBe(done!.reboot);
    expect(sent(again)).toEqual([['resume-workloads', iso(80)]]);
    // And a repeated cancel re-sends it too, now that restore-pcie succeeded.
    const repeat = ok(cancel(done!.reboot, node, 'operator', 'again', at(30)));
    expect(sent(repeat).map(([t]) => t)).toEqual(['cancel-reboot', 'restore-pcie', 'resume-workloads']);
  });

  it('of a reboot whose host was asked to migrate but not yet to protect PCIe: resume-workloads at once', () => {
    const r = waiting(planned(), 'prepared', 'prepare');
    r.status = 'preparing';
    r.commands['xr-1.migrate-workloads'] = {
      id: 'xr-1.migrate-workloads',
      type: 'migrate-workloads',
      agent: 'n1',
      step: 'prepare',
      status: 'delivered',
      at: iso(1),
    };
    const step = ok(cancel(r, node, 'operator', 'x', at(10)));
    const send = step.effects.find((e) => e.kind === 'send');
    expect(send && send.kind === 'send' && send.commands.map((c) => c.type)).toEqual(['cancel-reboot', 'resume-workloads']);
  });

  it('of a queued reboot: only the xPU hears of it, and it leaves the queue', () => {
    const r = onBudgetRefused(planned(), 'hold: h', [], node.policy.xpuReboot, at(1));
    const step = ok(cancel(r, node, 'agent:n1.dpu0', '', at(5)));
    const send = step.effects.find((e) => e.kind === 'send');
    expect(send && send.kind === 'send' && send.commands.map((c) => c.type)).toEqual(['cancel-reboot']);
    expect(step.effects).toContainEqual({ kind: 'leave-queue', takeBudget: false });
  });

  it('after the xPU went down, crashed, or was told to reboot: refused', () => {
    for (const change of [
      (r: StoredReboot) => (r.downAt = iso(3)),
      (r: StoredReboot) => (r.rebootingAt = iso(3)),
      (r: StoredReboot) => (r.crashedAt = iso(3)),
    ]) {
      const r = planned();
      change(r);
      expect(cancel(r, node, 'operator', '', at(5))).toMatchObject({ refused: expect.any(String), code: 'PastNoticePhase' });
      expect(force(r, node, 'operator', '', at(5))).toMatchObject({ refused: expect.any(String), code: 'PastNoticePhase' });
    }
  });

  it('won against the deadline’s timer: the timer’s step then records nothing (a cancelled reboot is never also forced)', () => {
    const r = planned();
    r.status = 'preparing';
    const cancelled = ok(cancel(r, node, 'operator', 'race', at(299))).reboot;
    expect(markForced(cancelled, [], [], at(300))).toBeNull();
  });

  it('a down or ready received after the cancel is not the cancelled reboot’s: kept for the xPU’s next (unannounced) reboot', () => {
    const r = planned();
    r.status = 'preparing';
    const cancelled = ok(cancel(r, node, 'operator', 'race', at(10))).reboot;
    for (const type of ['xpu.down', 'xpu.ready'] as const) {
      const ev: NativeEvent = {
        id: `late-${type}`,
        type,
        node: 'n1',
        xpu: 'dpu0',
        time: iso(11),
        source: 'native',
        dedupKey: `k-${type}`,
        receivedAt: iso(11),
      };
      const step = (type === 'xpu.down' ? onXpuDown : onXpuReady)(cancelled, ev);
      expect(step?.effects).toEqual([{ kind: 'defer' }]);
      expect(step?.reboot).toMatchObject({ status: 'cancelled', deferred: [expect.objectContaining({ id: `late-${type}` })] });
      expect(step?.reboot.downAt ?? step?.reboot.readyAt).toBeUndefined();
    }
  });

  it('a down received before the cancel but applied after it is not the cancelled reboot’s either: a new outage, counted', () => {
    const r = planned();
    r.status = 'preparing';
    const cancelled = ok(cancel(r, node, 'operator', 'race', at(10))).reboot;
    const down: NativeEvent = {
      id: 'queued-down',
      type: 'xpu.down',
      node: 'n1',
      xpu: 'dpu0',
      time: iso(9),
      source: 'native',
      dedupKey: 'k-queued-down',
      receivedAt: iso(9),
    };
    // Still holding the claim: kept for the next reboot, not recorded as the cancelled one's down.
    const step = onXpuDown(cancelled, down);
    expect(step?.effects).toEqual([{ kind: 'defer' }]);
    expect(step?.reboot.downAt).toBeUndefined();
    // Claim released: the ingest does not take it for the cancelled reboot's outage, it starts an unannounced one.
    expect(sameOutage(cancelled, down)).toBe(false);
    expect(sameOutage(cancelled, { ...down, type: 'xpu.ready', dedupKey: 'k-queued-ready' })).toBe(false);
    // A down from before the reboot was announced is still its stale one.
    expect(sameOutage(cancelled, { ...down, time: iso(-60), receivedAt: iso(-60) })).toBe(true);
  });

  it('once its deadline passed, whether or not the timer has recorded it yet: refused, as is force (the watchdog reboots the xPU)', () => {
    const r = planned();
    r.status = 'preparing';
    for (const s of [300, 301]) {
      expect(cancel(r, node, 'operator', '', at(s))).toMatchObject({ refused: expect.stringMatching(/deadline/), code: 'PastNoticePhase' });
      expect(force(r, node, 'operator', '', at(s))).toMatchObject({ refused: expect.stringMatching(/deadline/), code: 'PastNoticePhase' });
    }
    expect(cancel(r, node, 'operator', '', at(299))).not.toHaveProperty('refused');
    // A queued reboot's deadline is the held one: before it, still cancellable.
    const q = onBudgetRefused(planned(), 'budget: rack r1 full', [], node.policy.xpuReboot, at(1));
    expect(cancel(q, node, 'operator', '', at(400))).not.toHaveProperty('refused');
  });
});

describe('force', () => {
  it('in the notice phase: proceed-reboot at once, what the host had not finished recorded as for a forced reboot', () => {
    const r = waiting(planned(), 'prepared', 'prepare');
    r.commands['xr-1.migrate-workloads'] = {
      id: 'xr-1.migrate-workloads',
      type: 'migrate-workloads',
      agent: 'n1',
      step: 'prepare',
      status: 'succeeded',
      at: iso(1),
    };
    r.commands['xr-1.protect-pcie'] = {
      id: 'xr-1.protect-pcie',
      type: 'protect-pcie',
      agent: 'n1',
      step: 'prepare',
      status: 'delivered',
      at: iso(1),
    };
    const step = ok(force(r, node, 'operator', 'hurry', at(7)));
    expect(step.reboot).toMatchObject({
      status: 'rebooting',
      forced: true,
      rebootingAt: iso(7),
      outstanding: ['protect-pcie (delivered)'],
    });
    expect(step.effects.find((e) => e.kind === 'send')).toMatchObject({ commands: [{ type: 'proceed-reboot', agent: 'n1.dpu0' }] });
    expect(evaluateWait(step.reboot, node, at(7))).toMatchObject({ signal: 'forced', deadline: r.deadline });
  });

  it('of a queued reboot: it leaves the queue and counts in its budget', () => {
    const r = waiting(onBudgetRefused(planned(), 'budget', [], node.policy.xpuReboot, at(1)), 'budget-slot', 'budget');
    const step = ok(force(r, node, 'operator', '', at(5)));
    expect(step.effects).toContainEqual({ kind: 'leave-queue', takeBudget: true });
    expect(evaluateWait(step.reboot, node, at(5))).toMatchObject({ signal: 'forced' });
  });

  it('repeated (the API killed between its write and its effects): leaves the queue and counts in its budget again', () => {
    const r = waiting(onBudgetRefused(planned(), 'budget', [], node.policy.xpuReboot, at(1)), 'budget-slot', 'budget');
    const first = ok(force(r, node, 'operator', '', at(5)));
    const again = ok(force(first.reboot, node, 'operator', '', at(6)));
    expect(again.reboot).toBe(first.reboot);
    expect(again.effects).toContainEqual({ kind: 'leave-queue', takeBudget: true });
    expect(again.effects.find((e) => e.kind === 'send')).toMatchObject({ commands: [{ type: 'proceed-reboot' }] });
    // Not queued when forced: nothing to leave.
    const plain = ok(force(planned(), node, 'operator', '', at(5)));
    expect(ok(force(plain.reboot, node, 'operator', '', at(6))).effects.some((e) => e.kind === 'leave-queue')).toBe(false);
  });
});
