// GET /v1/nodes/{id}: a node as the coordinator knows it now (docs/reboot-model.md): the tenant its xPUs are
// provisioned for, and the reboots that hold it.
import type { Context, Hono } from 'hono';
import { Forbidden, NotFound } from '../core/errors.ts';
import type { InventoryIndex } from '../core/inventory.ts';
import type { Principal } from '../core/principal.ts';
import type { RebootStore } from '../ports/index.ts';
import { publicReboot } from './views.ts';

export interface NodeRouteDeps {
  store: RebootStore;
}

/** Mounts the route; `principal` is the app's own token check (one bearer-token reader). */
export function registerNodeRoutes(
  app: Hono,
  deps: NodeRouteDeps,
  principal: (c: Context) => Promise<{ who: Principal; index: InventoryIndex }>,
): void {
  app.get('/v1/nodes/:id', async (c) => {
    const { who, index } = await principal(c);
    const id = c.req.param('id');
    if (who.kind !== 'operator' && !(who.kind === 'agent' && who.node === id)) throw new Forbidden(`this token may not read node ${id}`);
    const node = index.node(id);
    if (!node) throw new NotFound(`node ${id} is not in the inventory`);
    const state = await deps.store.getNodeState(id);
    const holders = [...new Set([state.host, ...Object.values(state.xpus)].filter((x): x is string => !!x))];
    const reboots = (await Promise.all(holders.map((r) => deps.store.getReboot(r)))).filter((r) => r !== undefined && !r.endedAt);
    return c.json({
      id: node.id,
      rack: node.rack ?? null,
      zone: node.zone ?? null,
      provisionedTenant: state.provisionedTenant ?? node.tenant ?? null,
      xpus: node.xpus.map((x) => ({ id: x.id, persistentPower: x.persistentPower })),
      activeReboots: reboots.map((r) => publicReboot(r!)),
    });
  });
}
