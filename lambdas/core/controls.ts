// Operator controls over one reboot (contract 7.3), as named pure state changes: cancel and force.
import { commandId, history, isNoticePhase, summarize, undoneCommands, type PlannedCommand, type StoredReboot } from './reboot.ts';
import { agentIdOf } from './inventory.ts';
import type { Actor, CommandType, NodeDef } from './types.ts';

/** What the handler carries out after it wrote the changed reboot; every effect is idempotent. */
export type ControlEffect =
  /** Write these commands, in this order (an agent runs them in turn). */
  | { kind: 'send'; commands: PlannedCommand[]; step: string }
  /** Stop handing out these open commands: the workflow no longer waits for them. */
  | { kind: 'close-commands'; ids: string[] }
  /** Give back the node's xPU claim and budget slots, and let a queued reboot go on. */
  | { kind: 'release' }
  /** Take the queued reboot out of the queue (and count it in its budgets, beyond them if need be). */
  | { kind: 'leave-queue'; takeBudget: boolean }
  /** Wake the workflow's waiting state with this outcome. */
  | { kind: 'wake'; outcome: { signal: string } };

export type ControlStep =
  | { ok: true; reboot: StoredReboot; effects: ControlEffect[]; repeated: boolean }
  | { ok: false; code: string; reason: string };

/**
 * Has the xPU gone down (or been told to)? From then on the reboot cannot be withdrawn or hurried:
 * the device is away, and only its recovery is left.
 */
function xpuWentDown(r: StoredReboot): string | undefined {
  if (r.kind !== 'xpu') return 'only xPU reboots have a notice phase';
  if (r.mode === 'crash' || r.crashedAt) return 'the xPU crashed';
  if (r.downAt) return 'the xPU went down';
  if (r.readyAt) return 'the xPU rebooted already';
  if (r.rebootingAt || r.forced) return `the xPU was told to reboot (${r.status})`;
  if (r.status !== 'queued' && !isNoticePhase(r.status)) return `the reboot is ${r.status}`;
  return undefined;
}

function plan(r: StoredReboot, type: CommandType, xpu: string | null, args: Record<string, unknown>, deadline: string): PlannedCommand {
  return { id: commandId(r.id, type, xpu), type, agent: agentIdOf(r.node, xpu), xpu: r.xpu, args, deadline, noticePhase: false };
}

/**
 * Withdraws an xPU reboot before its xPU went down: the xPU is told to stand down (`cancel-reboot`),
 * and the host undoes what it was asked to do, in turn: `restore-pcie` if `protect-pcie` was sent,
 * then `resume-workloads` if `migrate-workloads` was. A repeated cancel answers the same and
 * carries out the same (idempotent) effects, so a crash between the write and them loses nothing.
 */
export function cancel(r: StoredReboot, node: NodeDef, by: Actor, reason: string, now: Date): ControlStep {
  const repeated = r.status === 'cancelled';
  if (!repeated) {
    const down = xpuWentDown(r);
    if (down) return { ok: false, code: 'PastNoticePhase', reason: `cannot cancel: ${down}` };
  }
  const at = now.toISOString();
  const due = new Date(now.getTime() + node.policy.xpuReboot.commandSeconds * 1000).toISOString();
  const sent = (type: CommandType) => Object.values(r.commands).some((c) => c.type === type && c.step === 'prepare');
  const commands = [plan(r, 'cancel-reboot', r.xpu, { reason }, due)];
  if (sent('protect-pcie')) commands.push(plan(r, 'restore-pcie', null, { reason: `reboot ${r.id} cancelled` }, due));
  if (sent('migrate-workloads')) commands.push(plan(r, 'resume-workloads', null, { reason: `reboot ${r.id} cancelled` }, due));
  const open = Object.values(r.commands).filter((c) => c.step === 'prepare' && ['pending', 'delivered', 'running'].includes(c.status));
  const wasQueued = r.status === 'queued';
  if (!repeated) {
    r.status = 'cancelled';
    r.endedAt = at;
    for (const c of open) r.commands[c.id] = { ...c, status: 'timed-out' };
    for (const p of commands) r.commands[p.id] ??= summarize(p, 'cancel', at);
    r.history.push({ ...history(at, 'cancelled', `cancelled${reason ? `: ${reason}` : ''}; ${commands.map((c) => c.type).join(', then ')} sent`), by });
  }
  return {
    ok: true,
    reboot: r,
    repeated,
    effects: [
      { kind: 'close-commands', ids: open.map((c) => c.id) },
      { kind: 'send', commands, step: 'cancel' },
      ...(wasQueued || repeated ? [{ kind: 'leave-queue' as const, takeBudget: false }] : []),
      { kind: 'release' },
      { kind: 'wake', outcome: { signal: 'cancelled' } },
    ],
  };
}

/**
 * Hurries an xPU reboot in its notice phase (or still queued): `proceed-reboot` goes to the xPU at
 * once, and what the host had not finished is recorded as for a reboot forced at its deadline. A
 * queued reboot leaves the queue and counts in its budgets, beyond them if need be.
 */
export function force(r: StoredReboot, node: NodeDef, by: Actor, reason: string, now: Date): ControlStep {
  const repeated = r.forced && r.history.some((h) => h.phase === 'forced' && h.by === by);
  if (!repeated) {
    const down = xpuWentDown(r);
    if (down) return { ok: false, code: 'PastNoticePhase', reason: `cannot force: ${down}` };
  }
  const at = now.toISOString();
  const due = new Date(now.getTime() + node.policy.xpuReboot.commandSeconds * 1000).toISOString();
  const proceed = plan(r, 'proceed-reboot', r.xpu, {}, due);
  const undone = undoneCommands(r, ['prepare']);
  const open = undone.filter((c) => ['pending', 'delivered', 'running'].includes(c.status));
  const wasQueued = r.status === 'queued';
  if (!repeated) {
    r.forced = true;
    r.outstanding = undone.map((c) => `${c.type} (${c.status})`);
    for (const c of open) r.commands[c.id] = { ...c, status: 'timed-out' };
    r.commands[proceed.id] ??= summarize(proceed, 'proceed', at);
    r.status = 'rebooting';
    r.rebootingAt = at;
    if (r.queue && !r.queue.admittedAt) r.queue = { ...r.queue, admittedAt: at };
    r.history.push({
      ...history(at, 'forced', `forced${reason ? `: ${reason}` : ''}: told the xPU to reboot now${undone.length ? `; still outstanding: ${r.outstanding.join(', ')}` : ''}`),
      by,
    });
  }
  return {
    ok: true,
    reboot: r,
    repeated,
    effects: [
      { kind: 'close-commands', ids: open.map((c) => c.id) },
      { kind: 'send', commands: [proceed], step: 'proceed' },
      ...(wasQueued ? [{ kind: 'leave-queue' as const, takeBudget: true }] : []),
      { kind: 'wake', outcome: { signal: 'forced' } },
    ],
  };
}
