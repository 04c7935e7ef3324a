// POST /v1/agents/{agentId}/commands/{cmdId}: an agent's result, applied to its command, its reboot and the waiting workflow.
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { NotFound } from '../core/errors.ts';
import type { InventoryIndex } from '../core/inventory.ts';
import type { Principal } from '../core/principal.ts';
import { markRunning, noteLateResult, recordResult } from '../core/model.ts';
import { isFinal } from '../core/reboot.ts';
import { COMMAND_RESULT_STATUSES } from '../core/types.ts';
import type { Deps } from './deps.ts';
import { applyStep } from './effects.ts';

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

/** A heartbeat or a late result satisfies no wait: no workflow is looked at again. */
const QUIET = { wake: 'never' } as const;

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
      if (res?.changed) await applyStep(deps, existing.rebootId, (r) => markRunning(r, cmdId, new Date(now)), undefined, QUIET);
      await kit.heartbeatReboots(new Set([existing.rebootId]));
      return c.json({ id: cmdId, status: existing.status === 'pending' || existing.status === 'delivered' ? 'running' : existing.status });
    }
    const res = await deps.store.updateCommand(agentId, cmdId, (cmd) =>
      isFinal(cmd.status) ? null : { ...cmd, status: body.status, output, finishedAt: now, seenAt: now },
    );
    if (!res) throw new NotFound(`no command ${cmdId} for agent ${agentId}`);
    if (!res.changed && res.command.status === 'timed-out') {
      // A late result after the workflow stopped waiting: noted once, changes nothing else.
      await applyStep(
        deps,
        existing.rebootId,
        (r) => noteLateResult(r, cmdId, { status: body.status, output }, agentId, new Date(now)),
        undefined,
        QUIET,
      );
      return c.json({ id: cmdId, status: res.command.status, duplicate: true });
    }
    // First result or a repeat: either way the reboot gets what the command record says (a no-op
    // when it has it) and the waiting workflow is looked at again. A first POST that failed after
    // marking the command final is completed by its retry instead of being lost in the duplicate
    // path (the host recorded silent, the step timing out). The wake-up is idempotent.
    await applyStep(deps, existing.rebootId, (r) => recordResult(r, res.command, agentId), undefined, { wake: 'always' });
    return c.json(res.changed ? { id: cmdId, status: body.status } : { id: cmdId, status: res.command.status, duplicate: true });
  });
}
