// POST /v1/agents/{agentId}/commands/{cmdId}: an agent's result, applied to its command, its reboot and the waiting workflow.
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { NotFound } from '../core/errors.ts';
import type { InventoryIndex } from '../core/inventory.ts';
import type { Principal } from '../core/principal.ts';
import { history, isFinal, type StoredReboot } from '../core/reboot.ts';
import { COMMAND_RESULT_STATUSES } from '../core/types.ts';
import type { StoredCommand } from '../ports/index.ts';
import { changeReboot, type Deps } from './deps.ts';

export const ResultBody = z.object({
  status: z.enum(COMMAND_RESULT_STATUSES),
  output: z.string().optional().default(''),
});

/** What the API app lends the route: its one way to authenticate, read and check a request. */
export interface RouteKit {
  principal(c: Context): Promise<{ who: Principal; index: InventoryIndex }>;
  readJson(c: Context): Promise<unknown>;
  check<T>(schema: z.ZodType<T>, value: unknown, what: string): T;
  /** Throws unless `who` may act as `agentId`. */
  agentOf(agentId: string, who: Principal, index: InventoryIndex): unknown;
  capOutput(s: string): string;
  heartbeatReboots(rebootIds: Set<string>): Promise<void>;
}

const lastLine = (output: string) => output.trim().split('\n').slice(-1)[0]?.slice(0, 200);

/**
 * Records a command's final result on its reboot, unless the reboot has it already. Used for the
 * first result and for every repeat of it: a repeat re-applies what the command record says, so a
 * first POST that failed between marking the command and writing the reboot is completed by its retry.
 */
export function recordResult(r: StoredReboot, cmd: StoredCommand, agentId: string): StoredReboot | null {
  const summary = r.commands[cmd.id] ?? {
    id: cmd.id,
    type: cmd.type,
    agent: agentId,
    step: cmd.step,
    status: 'pending' as const,
    at: cmd.createdAt,
  };
  if (isFinal(summary.status) || !isFinal(cmd.status) || cmd.status === 'timed-out') return null;
  const at = cmd.finishedAt ?? cmd.seenAt ?? cmd.createdAt;
  const output = cmd.output ?? '';
  summary.status = cmd.status;
  summary.at = at;
  if (cmd.status === 'failed') summary.output = output.slice(-2000);
  r.commands[cmd.id] = summary;
  const tail = cmd.status === 'failed' && output ? `: ${lastLine(output)}` : '';
  r.history.push({ ...history(at, `command-${cmd.status}`, `${cmd.type} on ${agentId} ${cmd.status}${tail}`), by: `agent:${agentId}` });
  return r;
}

/** Mounts the result route on the API app; errors go through the app's onError. */
export function registerResultRoutes(app: Hono, deps: Deps, kit: RouteKit): void {
  app.post('/v1/agents/:agentId/commands/:cmdId', async (c) => {
    const { who, index } = await kit.principal(c);
    const agentId = c.req.param('agentId');
    kit.agentOf(agentId, who, index);
    const body = kit.check(ResultBody, await kit.readJson(c), 'result');
    const cmdId = c.req.param('cmdId');
    const existing = await deps.store.getCommand(agentId, cmdId);
    if (!existing) throw new NotFound(`no command ${cmdId} for agent ${agentId}`);
    const now = deps.clock.now().toISOString();
    const output = kit.capOutput(body.output);
    if (body.status === 'running') {
      const res = await deps.store.updateCommand(agentId, cmdId, (cmd) =>
        isFinal(cmd.status) ? null : { ...cmd, status: 'running', seenAt: now },
      );
      // The first heartbeat also shows on the reboot (operators see the hook running); later ones do not write it.
      if (res?.changed)
        await deps.store.updateReboot(existing.rebootId, (r) => {
          const summary = r.commands[cmdId];
          if (!summary || (summary.status !== 'pending' && summary.status !== 'delivered')) return null;
          summary.status = 'running';
          summary.at = now;
          return r;
        });
      await kit.heartbeatReboots(new Set([existing.rebootId]));
      return c.json({ id: cmdId, status: existing.status === 'pending' || existing.status === 'delivered' ? 'running' : existing.status });
    }
    const res = await deps.store.updateCommand(agentId, cmdId, (cmd) =>
      isFinal(cmd.status) ? null : { ...cmd, status: body.status, output, finishedAt: now, seenAt: now },
    );
    if (!res) throw new NotFound(`no command ${cmdId} for agent ${agentId}`);
    if (!res.changed && res.command.status === 'timed-out') {
      // A late result after the workflow stopped waiting: noted once, changes nothing else.
      await deps.store.updateReboot(existing.rebootId, (r) => {
        if (r.history.some((h) => h.phase === 'late-result' && h.detail.startsWith(cmdId))) return null;
        const tail = body.status === 'failed' && output ? `: ${lastLine(output)}` : '';
        r.history.push(
          history(now, 'late-result', `${cmdId} ${body.status} after the workflow stopped waiting for it${tail}`, `agent:${agentId}`),
        );
        // Keep what the agent said (e.g. "deadline exceeded"): the report lists why it timed out.
        const summary = r.commands[cmdId];
        if (summary) {
          summary.lateStatus = body.status;
          if (output) summary.output = output.slice(-2000);
        }
        return r;
      });
      return c.json({ id: cmdId, status: res.command.status, duplicate: true });
    }
    // First result or a repeat: either way the reboot gets what the command record says (a no-op
    // when it has it) and the waiting workflow is looked at again. A first POST that failed after
    // marking the command final is completed by its retry instead of being lost in the duplicate
    // path (the host recorded silent, the step timing out). The wake-up is idempotent.
    await changeReboot(deps, existing.rebootId, (r) => recordResult(r, res.command, agentId));
    return c.json(res.changed ? { id: cmdId, status: body.status } : { id: cmdId, status: res.command.status, duplicate: true });
  });
}
