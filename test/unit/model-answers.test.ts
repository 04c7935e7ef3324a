// The reboot model's transitions for what agents answer (lambdas/core/model.ts): extension
// requests, command results, late results, heartbeats, and the story a failed reboot tells.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type CommandRecord,
  fail,
  failureStory,
  markForced,
  markRunning,
  noteLateResult,
  recordResult,
  requestExtension,
} from '../../lambdas/core/model.ts';
import { newXpuReboot, type StoredReboot } from '../../lambdas/core/reboot.ts';
import type { CommandStatus, NativeEvent } from '../../lambdas/core/types.ts';
import { EXAMPLE, parseInventory } from './inventory-fixture.ts';

const SEED = Number(process.env.FC_SEED ?? 20261206);
const [node, untrusted] = parseInventory(EXAMPLE, 'test').nodes;
const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000);

function reboot(status: StoredReboot['status'] = 'preparing', n = node): StoredReboot {
  const ev: NativeEvent = {
    id: 'e1',
    type: 'xpu.reboot.pending',
    node: n.id,
    xpu: 'dpu0',
    time: at(0).toISOString(),
    source: 'native',
    dedupKey: 'k',
    receivedAt: at(0).toISOString(),
  };
  const r = newXpuReboot('xr-01jabcdefghjkmnpqrstvwxyz0', n, 'dpu0', ev, 'planned');
  r.status = status;
  return r;
}

const RESTORE = 'xr-1.restore-pcie';
function withRestore(r: StoredReboot, status: CommandStatus): StoredReboot {
  r.commands[RESTORE] = { id: RESTORE, type: 'restore-pcie', agent: r.node, step: 'recover', status, at: at(10).toISOString() };
  return r;
}
const record = (status: CommandStatus, output = 'rescan\ndone'): CommandRecord & { agent: string } => ({
  id: RESTORE,
  type: 'restore-pcie',
  step: 'recover',
  status,
  createdAt: at(10).toISOString(),
  finishedAt: at(20).toISOString(),
  output,
  agent: node.id,
});

describe('requestExtension', () => {
  const Request = fc.record({
    seconds: fc.integer({ min: 1, max: 2000 }),
    key: fc.option(fc.constantFrom('k1', 'k2', 'k3'), { nil: undefined }),
    after: fc.integer({ min: 0, max: 60 }),
  });

  it('never grants beyond the policy, answers a repeated key as first, and leaves the given reboot untouched', () => {
    fc.assert(
      fc.property(fc.array(Request, { maxLength: 12 }), (asks) => {
        const { maxExtensions, maxExtensionSeconds } = node.policy.xpuReboot;
        let r = reboot();
        const announced = Date.parse(r.deadline!);
        const first = new Map<string, unknown>();
        let refusedFresh = 0;
        let t = 0;
        for (const a of asks) {
          t += a.after;
          const before = structuredClone(r);
          const key = a.key && `${node.id} ${a.key}`;
          const { outcome, step } = requestExtension(
            r,
            node,
            { seconds: a.seconds, reason: 'drain', idempotencyKey: key, by: 'agent:node-a' },
            at(t),
          );
          expect(r).toEqual(before);
          if (key && first.has(key)) {
            expect(step).toBeNull();
            expect({ ...outcome, repeat: false }).toEqual(first.get(key));
            expect(outcome.repeat).toBe(true);
            continue;
          }
          if (key) first.set(key, outcome);
          expect(step).not.toBeNull();
          if (outcome.kind === 'refused') refusedFresh++;
          r = step!.reboot;
        }
        const granted = r.extensions.reduce((s, e) => s + e.granted, 0);
        expect(r.extensions.length).toBeLessThanOrEqual(maxExtensions);
        expect(granted).toBeLessThanOrEqual(maxExtensionSeconds);
        expect(Date.parse(r.deadline!)).toBe(announced + granted * 1000);
        expect(r.refusals).toHaveLength(refusedFresh);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('trims a request to the seconds left and refuses past the notice phase with 409', () => {
    const r = reboot();
    const big = requestExtension(r, node, { seconds: 5000, reason: '', by: 'agent:node-a' }, at(1));
    expect(big.outcome).toMatchObject({ kind: 'granted', granted: node.policy.xpuReboot.maxExtensionSeconds });
    const late = requestExtension(reboot('rebooting'), node, { seconds: 5, reason: '', by: 'agent:node-a' }, at(1));
    expect(late.outcome).toMatchObject({ kind: 'refused', status: 409, code: 'PastNoticePhase' });
    expect(late.step?.reboot.refusals).toHaveLength(1);
  });
  it('an untrusted host is refused 403 before any 409, and nothing is counted', () => {
    const { outcome } = requestExtension(reboot('rebooting', untrusted), untrusted, { seconds: 5, reason: '', by: 'agent:node-b' }, at(1));
    const r = reboot('preparing', untrusted);
    const asked = requestExtension(r, untrusted, { seconds: 5, reason: '', idempotencyKey: 'node-b k', by: 'agent:node-b' }, at(1));
    expect(outcome).toMatchObject({ kind: 'refused', status: 403 });
    // Rejected, so nothing changes on the reboot (only a 409 is counted).
    expect(asked).toMatchObject({ outcome: { kind: 'refused', status: 403, repeat: false }, step: null });
  });
});

describe('command results', () => {
  it('recordResult records a final result once, whatever the order and repeats of the answers', () => {
    const Answer = fc.record({ status: fc.constantFrom<CommandStatus>('succeeded', 'failed', 'skipped', 'running', 'timed-out') });
    fc.assert(
      fc.property(fc.array(Answer, { maxLength: 8 }), (answers) => {
        let r = withRestore(reboot('recovering'), 'delivered');
        for (const a of answers) {
          const before = structuredClone(r);
          const step = recordResult(r, record(a.status), node.id);
          expect(r).toEqual(before);
          if (step) r = step.reboot;
        }
        const lines = r.history.filter((h) => h.phase.startsWith('command-'));
        expect(lines.length).toBeLessThanOrEqual(1);
        const firstFinal = answers.find((a) => ['succeeded', 'failed', 'skipped'].includes(a.status));
        expect(r.commands[RESTORE].status).toBe(firstFinal?.status ?? 'delivered');
        if (firstFinal) expect(lines[0]).toMatchObject({ phase: `command-${firstFinal.status}`, by: `agent:${node.id}` });
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('markRunning shows the first heartbeat only', () => {
    const r = withRestore(reboot('recovering'), 'delivered');
    const once = markRunning(r, RESTORE, at(15));
    expect(once?.reboot.commands[RESTORE]).toMatchObject({ status: 'running', at: at(15).toISOString() });
    expect(r.commands[RESTORE].status).toBe('delivered');
    expect(markRunning(once!.reboot, RESTORE, at(16))).toBeNull();
    expect(markRunning(r, 'no-such-command', at(16))).toBeNull();
  });

  it('noteLateResult notes a result after the wait once and keeps what the agent said', () => {
    const r = withRestore(reboot('failed'), 'timed-out');
    const once = noteLateResult(r, RESTORE, { status: 'failed', output: 'deadline exceeded' }, node.id, at(200));
    expect(once?.reboot.commands[RESTORE]).toMatchObject({ status: 'timed-out', lateStatus: 'failed', output: 'deadline exceeded' });
    expect(once?.reboot.history.at(-1)).toMatchObject({ phase: 'late-result', by: `agent:${node.id}` });
    expect(noteLateResult(once!.reboot, RESTORE, { status: 'failed', output: '' }, node.id, at(201))).toBeNull();
  });
});

describe('the failure story', () => {
  const ALL: Array<CommandStatus | 'absent'> = ['absent', 'pending', 'delivered', 'running', 'succeeded', 'failed', 'skipped', 'timed-out'];

  it('never says restore-pcie succeeded and that nothing more is sent after a failure, whatever its status', () => {
    for (const status of ALL) {
      const r = status === 'absent' ? reboot('recovering') : withRestore(reboot('recovering'), status);
      const story = failureStory('restore-pcie-failed', undefined, r);
      expect(story.includes('succeeded') && story.includes('nothing more is sent'), `${status}: ${story}`).toBe(false);
      if (status === 'succeeded') expect(story).toMatch(/succeeded on the host only after the workflow had stopped waiting/);
      if (status === 'failed') expect(story).toMatch(/restore-pcie xr-1.restore-pcie failed on the host/);
      if (['pending', 'delivered', 'running', 'timed-out'].includes(status)) expect(story).toMatch(/was not answered in time/);
    }
  });

  it('fail tells the story from the reboot it writes: a result that beat the closing is recorded first', () => {
    const r = withRestore(reboot('recovering'), 'running');
    const step = fail(r, 'restore-pcie-failed', undefined, [], at(140), [record('succeeded')]);
    expect(step?.reboot.commands[RESTORE].status).toBe('succeeded');
    expect(step?.reboot.history.map((h) => h.phase).slice(-2)).toEqual(['command-succeeded', 'failed']);
    expect(step?.reboot.history.at(-1)?.detail).toMatch(/succeeded on the host only after/);
    // Closed by the workflow instead: the story says it was not answered.
    const closed = fail(r, 'restore-pcie-failed', undefined, [RESTORE], at(140));
    expect(closed?.reboot.commands[RESTORE].status).toBe('timed-out');
    expect(closed?.reboot.history.at(-1)?.detail).toMatch(/was not answered in time/);
    // An ended reboot is not failed again (a replayed step).
    expect(fail(step!.reboot, 'restore-pcie-failed', undefined, [], at(150))).toBeNull();
  });

  it('a forced reboot never lists as outstanding what succeeded in time, and says when it succeeded only after the deadline', () => {
    const r = reboot('preparing');
    const deadline = Date.parse(r.deadline!);
    const prep = (type: 'migrate-workloads' | 'protect-pcie', status: CommandStatus, atMs: number) => ({
      id: `xr-1.${type}`,
      type,
      agent: node.id,
      step: 'prepare',
      status,
      at: new Date(atMs).toISOString(),
    });
    r.commands['xr-1.migrate-workloads'] = prep('migrate-workloads', 'running', deadline - 60_000);
    r.commands['xr-1.protect-pcie'] = prep('protect-pcie', 'delivered', deadline - 60_000);
    const undone = Object.values(r.commands).map((c) => ({ ...c }));
    // Read before the write: migrate-workloads succeeded a second before the deadline (its result
    // reached the reboot meanwhile); protect-pcie's record says succeeded, but only after the deadline.
    const fresh = structuredClone(r);
    fresh.commands['xr-1.migrate-workloads'] = prep('migrate-workloads', 'succeeded', deadline - 1000);
    undone[1] = prep('protect-pcie', 'succeeded', deadline + 2000);
    const step = markForced(fresh, undone, [], new Date(deadline + 3000));
    expect(step?.reboot.outstanding).toEqual(['protect-pcie (succeeded after the deadline)']);
    expect(step?.reboot.history.at(-1)?.detail).toBe(
      'deadline reached: the xPU watchdog reboots it; still outstanding: protect-pcie (succeeded after the deadline)',
    );
    // Nothing answered: both outstanding, as they were.
    const silent = markForced(r, Object.values(r.commands), [], new Date(deadline));
    expect(silent?.reboot.outstanding).toEqual(['migrate-workloads (running)', 'protect-pcie (delivered)']);
  });
});
