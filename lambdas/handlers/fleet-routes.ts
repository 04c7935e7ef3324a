// Operator routes for fleet safety (docs/fleet-safety.md): holds, and cancel/force of one reboot.
import type { Context, Hono } from 'hono';
import { ulid } from 'ulid';
import { z } from 'zod';
import { type HOLD_SELECTOR_KEYS, holdMatches, isHoldActive, repeatedHold, type Hold } from '../core/budgets.ts';
import { acceptedDown } from '../core/down-marks.ts';
import { cancel, force, type Refused } from '../core/model.ts';
import { BadRequest, Conflict, Forbidden, NotFound } from '../core/errors.ts';
import { agentIdOf, type InventoryIndex } from '../core/inventory.ts';
import { actorOf, type Principal } from '../core/principal.ts';
import { isFinal } from '../core/reboot.ts';
import type { CommandStatus, NodeDef } from '../core/types.ts';
import { check, readJson } from './api.ts';
import type { Deps } from './deps.ts';
import { applyStep } from './effects.ts';
import { provisionedNodes, wakeQueued } from './fleet.ts';
import { publicReboot } from './views.ts';
import { mayActAs } from './auth.ts';

const isoTime = z.string().refine((s) => Number.isFinite(Date.parse(s)), 'not a date-time');
const name = z.string().min(1).max(200);

export const HoldBody = z.strictObject({
  selector: z
    .strictObject({ node: name.optional(), rack: name.optional(), zone: name.optional(), tenant: name.optional() })
    .refine((s) => Object.values(s).filter((v) => v !== undefined).length === 1, 'name exactly one of node, rack, zone, tenant'),
  reason: z.string().min(1).max(1000),
  until: isoTime.optional(),
});

export const ControlBody = z.object({ reason: z.string().max(1000).default('') });

export interface FleetRouteDeps extends Deps {
  /** The API's own token check (one bearer-token reader): 401 without a known token. */
  principal(c: Context): Promise<{ who: Principal; index: InventoryIndex }>;
}

/** An empty body reads as `{}`: `{"reason"}` is optional for cancel and force. */
async function optionalJson(c: Context): Promise<unknown> {
  if (Number(c.req.header('content-length') ?? NaN) === 0) return {};
  return readJson(c);
}

/** Mounts /v1/holds and /v1/reboots/{id}/cancel|force on the API app; errors go through the app's onError. */
export function registerFleetRoutes(app: Hono, deps: FleetRouteDeps): void {
  async function operator(c: Context, what: string) {
    const { who, index } = await deps.principal(c);
    if (who.kind !== 'operator') throw new Forbidden(`only the operator may ${what}`);
    return { who, index };
  }

  const view = (h: Hold, nodes: readonly NodeDef[]) => ({
    ...h,
    active: isHoldActive(h, deps.clock.now()),
    nodes: nodes.filter((n) => holdMatches(h, n)).map((n) => n.id),
  });
  /** The nodes as holds see them: a hold on a tenant matches the nodes provisioned for it, not those the inventory names. */
  const nodesFor = (holds: readonly Pick<Hold, 'selector'>[], index: InventoryIndex) =>
    holds.some((h) => h.selector.tenant !== undefined) ? provisionedNodes(deps, index.inventory.nodes) : index.inventory.nodes;

  app.post('/v1/holds', async (c) => {
    const { who, index } = await operator(c, 'place holds');
    const body = check(HoldBody, await readJson(c), 'hold');
    const [key, value] = Object.entries(body.selector).find(([, v]) => v !== undefined) as [(typeof HOLD_SELECTOR_KEYS)[number], string];
    const nodes = await nodesFor([{ selector: { [key]: value } }], index);
    // A hold that matches nothing is almost certainly a typo: say so instead of holding nothing.
    if (!nodes.some((n) => (key === 'node' ? n.id : n[key]) === value))
      throw new NotFound(`no node of the inventory has ${key} ${value}${key === 'tenant' ? ' (the tenant it is provisioned for)' : ''}`);
    const now = deps.clock.now();
    if (body.until && Date.parse(body.until) <= now.getTime())
      throw new BadRequest(`hold: until ${body.until} is not in the future`, 'ValidationError');
    const hold: Hold = {
      id: `hold-${ulid().toLowerCase()}`,
      selector: { [key]: value },
      reason: body.reason,
      ...(body.until ? { until: new Date(body.until).toISOString() } : {}),
      createdAt: now.toISOString(),
      by: actorOf(who),
    };
    // A repeat of a request whose answer was lost (kill -9 after the write) places nothing more.
    const first = repeatedHold(await deps.store.listHolds(), hold, now);
    if (first) return c.json(view(first, nodes), 201);
    await deps.store.putHold(hold);
    return c.json(view(hold, nodes), 201);
  });

  app.get('/v1/holds', async (c) => {
    const { index } = await operator(c, 'list holds');
    const now = deps.clock.now();
    const items = (await deps.store.listHolds()).filter((h) => isHoldActive(h, now)).sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1));
    const nodes = await nodesFor(items, index);
    return c.json({ items: items.map((h) => view(h, nodes)) });
  });

  app.delete('/v1/holds/:id', async (c) => {
    await operator(c, 'release holds');
    const gone = await deps.store.deleteHold(c.req.param('id'));
    // What the hold queued goes on (each still within its budgets). Also when it is gone already: this may
    // be the repeat of a delete whose API died after the delete, before the queue heard of it.
    await wakeQueued(deps);
    if (!gone) throw new NotFound(`no hold ${c.req.param('id')}`);
    return c.body(null, 204);
  });

  async function control(c: Context, kind: 'cancel' | 'force') {
    const { who, index } = await deps.principal(c);
    const body = check(ControlBody, await optionalJson(c), kind);
    const id = c.req.param('id') ?? '';
    const reboot = await deps.store.getReboot(id);
    if (!reboot) throw new NotFound(`no reboot ${id}`);
    mayControl(who, reboot.node, reboot.xpu, kind, index);
    const node: NodeDef | undefined = index.node(reboot.node);
    if (!node) throw new NotFound(`node ${reboot.node} is not in the inventory`);
    const by = actorOf(who);
    // What the host had not finished, with where each command got to (delivered, running...): the
    // reboot's own summaries only know what the workflow wrote.
    const live = new Map<string, CommandStatus>();
    for (const c of Object.values(reboot.commands)) {
      if (c.step !== 'prepare' || isFinal(c.status)) continue;
      const stored = await deps.store.getCommand(c.agent, c.id);
      if (stored) live.set(c.id, stored.status);
    }
    // A down the API accepted before this cancel and the queue has not delivered yet: the xPU went down all the same.
    const mark = kind === 'cancel' && reboot.xpu && deps.downMarks ? await deps.downMarks.last(reboot.node, reboot.xpu) : undefined;
    let refused: Refused | undefined;
    const res = await applyStep(
      deps,
      id,
      (r) => {
        for (const [cid, status] of live) if (r.commands[cid] && !isFinal(r.commands[cid].status)) r.commands[cid].status = status;
        const down = kind === 'cancel' ? acceptedDown(r, mark) : undefined;
        if (down) {
          refused = { refused: `cannot cancel: ${down}`, code: 'PastNoticePhase' };
          return null;
        }
        const out = (kind === 'cancel' ? cancel : force)(r, node, by, body.reason, deps.clock.now());
        refused = 'refused' in out ? out : undefined;
        return 'refused' in out ? null : out;
      },
      node,
      // A repeat (the client's retry after a kill -9 between the first's write and its wake-up) wakes the
      // workflow too, as an extension's does: else it sees the cancel or force only at its own time-out.
      { wake: 'always' },
    );
    if (!res) throw new NotFound(`no reboot ${id}`);
    if (refused) throw new Conflict(refused.refused, refused.code);
    return c.json(publicReboot((await deps.store.getReboot(id)) ?? res.reboot));
  }

  app.post('/v1/reboots/:id/cancel', (c) => control(c, 'cancel'));
  app.post('/v1/reboots/:id/force', (c) => control(c, 'force'));
}

/** Cancel: the operator, or the xPU's own agent for its xPU reboot (docs/identities.md tokens decide who that is). Force: the operator only. */
function mayControl(who: Principal, node: string, xpu: string | null, kind: 'cancel' | 'force', index: InventoryIndex) {
  if (who.kind === 'operator') return;
  if (kind === 'cancel' && who.kind === 'agent' && xpu && mayActAs(who, agentIdOf(node, xpu), index)) return;
  throw new Forbidden(
    kind === 'cancel' ? "only the operator or the xPU's own agent may cancel this reboot" : 'only the operator may force a reboot',
  );
}
