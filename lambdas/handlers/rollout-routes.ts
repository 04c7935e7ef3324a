// Operator routes for rollouts (/v1/rollouts), the fleet at a glance (/v1/fleet) and the live page (/ui).
import type { Context, Hono } from 'hono';
import { ulid } from 'ulid';
import { z } from 'zod';
import { BadRequest, Conflict, Forbidden, HttpError, NotFound, PayloadTooLarge } from '../core/errors.ts';
import type { InventoryIndex } from '../core/inventory.ts';
import { actorOf, type Principal } from '../core/principal.ts';
import { isEnded } from '../core/reboot.ts';
import {
  cancelRollout,
  claimIsFresh,
  isInFlight,
  keyedRolloutId,
  MAX_PLAN,
  overlapOf,
  planRollout,
  publicRollout,
  type Rollout,
} from '../core/rollout.ts';
import type { RolloutStore } from '../ports/rollouts.ts';
import { bearerToken, requirePrincipal } from './auth.ts';
import type { Deps } from './deps.ts';
import { activeHolds, budgetUse } from './fleet-seams.ts';
import { provisionedNodes } from './fleet.ts';
import type { RolloutTagged } from './rollout.ts';
import { claimPlan, releasePlan } from './rollout-claims.ts';
import { FLEET_PAGE } from './ui-page.ts';
import { rolloutWorkflowInput } from '../core/workflow-io.ts';
import { IDEMPOTENCY_KEY } from './extensions.ts';
import { givenParams } from './query.ts';

/** The contract's one body limit (413 above it), as on every other route. */
const MAX_BODY_BYTES = 256 * 1024;
/** Reboots the fleet view reads (newest first): those in flight and the recent past for the timeline. */
const FLEET_REBOOTS = 500;
const TIMELINE_HOURS = 24;

export interface RolloutRouteDeps extends Deps {
  /** SHA-256 (hex) of the operator token; else the stored inventory's. */
  operatorTokenHash?: string;
}

const SelectorBody = z
  .strictObject({ node: z.string().min(1), rack: z.string().min(1), zone: z.string().min(1), tenant: z.string().min(1) })
  .partial()
  .refine((s) => Object.keys(s).length <= 1, 'name one of node, rack, zone or tenant (or none: the whole fleet)');

export const RolloutBody = z.strictObject({
  selector: SelectorBody.default({}),
  maxUnavailable: z.number().int().min(1).max(1000),
  reason: z.string().min(1).max(1000),
  noticeSeconds: z.number().int().positive().max(2_000_000).optional(),
  maxFailures: z.number().int().min(1).max(1000).default(1),
  dryRun: z.boolean().default(false),
});

export const CancelBody = z.strictObject({ reason: z.string().max(1000).default('') });

/** The largest page of GET /v1/rollouts (docs/rollouts.md). */
export const MAX_ROLLOUT_LIST = 100;
/**
 * As GET /v1/reboots' ListParams: a limit that is not a whole number from 1 is a 400 ValidationError;
 * more than MAX_ROLLOUT_LIST asked, that many are answered (a page is at most that), not a 400.
 */
export const RolloutListParams = z.object({ limit: z.coerce.number().int().min(1).default(20) });

class NotConfigured extends HttpError {
  override readonly name = 'NotConfigured';
  constructor(message: string) {
    super(503, 'NotConfigured', message);
  }
}

async function jsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) throw new PayloadTooLarge(`body is over ${MAX_BODY_BYTES} bytes`);
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BadRequest(`body is not JSON: ${(err as Error).message}`, 'MalformedJson');
  }
}

function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const res = schema.safeParse(value);
  if (!res.success) throw new BadRequest(`${what}: ${z.prettifyError(res.error).replace(/\n/g, '; ')}`, 'ValidationError');
  return res.data;
}

/** Mounts the routes on the API app; errors go through the app's onError. */
export function registerRolloutRoutes(app: Hono, deps: RolloutRouteDeps): void {
  /** The operator only (named operators included); the token from the header, never the URL (it would end up in access logs). */
  async function operator(c: Context): Promise<{ index: InventoryIndex; who: Principal }> {
    const index = await deps.inventory();
    const who = requirePrincipal(bearerToken(c.req.header('authorization')), index, deps.operatorTokenHash);
    if (who.kind !== 'operator') throw new Forbidden('only the operator may use rollouts and the fleet view');
    return { index, who };
  }
  async function operatorOnly(c: Context): Promise<InventoryIndex> {
    return (await operator(c)).index;
  }

  function store(): RolloutStore {
    if (!deps.rollouts) throw new NotConfigured('this deployment has no rollout store wired');
    return deps.rollouts;
  }

  async function theRollout(id: string): Promise<Rollout> {
    const r = await store().getRollout(id);
    if (!r) throw new NotFound(`no rollout ${id}`);
    return r;
  }

  // The page itself is public (it holds no data); it asks for the operator token and sends it on every call.
  app.get('/ui', (c) =>
    c.html(FLEET_PAGE, 200, {
      'content-security-policy':
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
      'cache-control': 'no-store',
    }),
  );

  app.post('/v1/rollouts', async (c) => {
    const { index, who } = await operator(c);
    const by = actorOf(who);
    const key = c.req.header('idempotency-key');
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key))
      throw new BadRequest('Idempotency-Key must be 1 to 255 printable ASCII characters without spaces', 'ValidationError');
    const body = check(RolloutBody, await jsonBody(c), 'rollout');
    const sel = body.selector;
    if (sel.node && !index.node(sel.node)) throw new NotFound(`node ${sel.node} is not in the inventory`);
    // A tenant is the one a node is provisioned for (contract 7.1), not the inventory's.
    const nodes = sel.tenant ? await provisionedNodes(deps, index.inventory.nodes) : index.inventory.nodes;
    const plan = planRollout({ ...index.inventory, nodes }, sel);
    if (plan.length === 0) throw new BadRequest(`the selector ${JSON.stringify(sel)} matches no xPU`, 'EmptyPlan');
    if (plan.length > MAX_PLAN)
      throw new BadRequest(
        `the selector matches ${plan.length} xPUs; one rollout takes at most ${MAX_PLAN}: roll out by zone or rack`,
        'PlanTooLarge',
      );
    if (body.dryRun) return c.json({ id: null, status: 'dry-run', dryRun: true, plan }, 201);
    const id = key === undefined ? `ro-${ulid().toLowerCase()}` : keyedRolloutId(by, key);
    const first = key === undefined ? undefined : await store().getRollout(id);
    if (first) {
      // A repeat: the first's answer. Its workflow is started again (by name, so at most once) in case the
      // first request died between its record and the start: a running rollout nothing runs would hold its xPUs.
      if (first.status === 'running') await deps.workflows.start('rollout', first.id, rolloutWorkflowInput(first.id));
      return c.json({ id: first.id, status: first.status, plan: first.items.map((it) => ({ node: it.node, xpu: it.xpu })) }, 201);
    }
    const listed = await store().listRollouts(100);
    const clash = overlapOf(plan, listed);
    if (clash) {
      await startOrphan(listed.find((r) => r.id === clash.rolloutId));
      throw new Conflict(
        `${clash.node}/${clash.xpu} is still to be rebooted by rollout ${clash.rolloutId} (${clash.status}): cancel that one first, or select other xPUs`,
        'RolloutOverlap',
      );
    }
    // overlapOf read a list that a start running beside this one is not in yet: the claims decide.
    const claimedAt = deps.clock.now();
    const taken = await claimPlan(store(), plan, id, deps.clock);
    if (taken)
      throw new Conflict(
        taken.status === 'starting'
          ? `${taken.node}/${taken.xpu} is claimed by rollout ${taken.rolloutId}, which is starting now (one that died starting frees it within 5 minutes): try again shortly, or select other xPUs`
          : `${taken.node}/${taken.xpu} is still to be rebooted by rollout ${taken.rolloutId} (${taken.status}): cancel that one first, or select other xPUs`,
        'RolloutOverlap',
      );
    // Others take over claims whose record is this late: writing it now could overlap them.
    if (!claimIsFresh(claimedAt, deps.clock.now())) {
      await releasePlan(store(), plan, id);
      throw new HttpError(503, 'Unavailable', 'claiming the xPUs took too long: nothing was started, send the request again');
    }
    const now = deps.clock.now().toISOString();
    const rollout: Rollout = {
      id,
      status: 'running',
      selector: sel,
      maxUnavailable: body.maxUnavailable,
      maxFailures: body.maxFailures,
      reason: body.reason,
      ...(body.noticeSeconds !== undefined ? { noticeSeconds: body.noticeSeconds } : {}),
      createdAt: now,
      by,
      items: plan.map((p) => ({ ...p, state: 'pending' })),
      history: [{ at: now, phase: 'started', detail: `${plan.length} xPUs, at most ${body.maxUnavailable} at a time: ${body.reason}`, by }],
      waiter: null,
      version: 0,
    };
    await store().createRollout(rollout);
    await deps.workflows.start('rollout', rollout.id, rolloutWorkflowInput(rollout.id));
    deps.metrics.count('RolloutsStarted');
    return c.json({ id: rollout.id, status: rollout.status, plan }, 201);
  });

  /**
   * A running rollout that no execution runs: its start died between its record and its workflow (kill -9),
   * and its xPUs would stay taken for good. Its workflow is started (by name and with the same input, so
   * at most once, also if that start is only slow). Only the first generation: later ones are started by
   * the rollout's own ticks.
   */
  async function startOrphan(r: Rollout | undefined): Promise<void> {
    if (r?.status !== 'running' || (r.generation ?? 1) > 1) return;
    if ((await deps.workflows.describe('rollout', r.id)).status !== 'NOT_FOUND') return;
    deps.logger.warn('rollout: its workflow was never started (its start died): started now', { rolloutId: r.id });
    await deps.workflows.start('rollout', r.id, rolloutWorkflowInput(r.id));
  }

  app.get('/v1/rollouts', async (c) => {
    await operatorOnly(c);
    const q = check(RolloutListParams, givenParams(c.req.query()), 'query');
    const items = await store().listRollouts(Math.min(q.limit, MAX_ROLLOUT_LIST));
    return c.json({ items: items.map(publicRollout) });
  });

  app.get('/v1/rollouts/:id', async (c) => {
    await operatorOnly(c);
    return c.json(publicRollout(await theRollout(c.req.param('id'))));
  });

  app.post('/v1/rollouts/:id/cancel', async (c) => {
    const { who } = await operator(c);
    const body = check(CancelBody, await jsonBody(c), 'cancel');
    const id = c.req.param('id');
    await theRollout(id);
    const res = await store().updateRollout(id, (r) => cancelRollout(r, body.reason, actorOf(who), deps.clock.now()));
    if (!res) throw new NotFound(`no rollout ${id}`);
    if (!res.changed) throw new Conflict(`rollout ${id} is ${res.rollout.status}: nothing to cancel`, 'RolloutEnded');
    // The workflow stops starting xPUs at its next look; wake it now rather than at its fallback timeout.
    if (res.rollout.waiter) await deps.workflows.wake(res.rollout.waiter.token, { signal: 'cancelled' });
    return c.json(publicRollout(res.rollout));
  });

  app.get('/v1/fleet', async (c) => {
    const index = await operatorOnly(c);
    const now = deps.clock.now();
    const since = new Date(now.getTime() - TIMELINE_HOURS * 3600_000).toISOString();
    const [page, holds, rollouts, nodes] = await Promise.all([
      deps.store.listReboots({ limit: FLEET_REBOOTS }),
      activeHolds(deps),
      deps.rollouts ? deps.rollouts.listRollouts(20) : Promise.resolve([]),
      // Each node in the tenant it is provisioned for: its tenant, its holds and its budgets.
      provisionedNodes(deps, index.inventory.nodes),
    ]);
    const reboots = page.items as RolloutTagged[];
    const active = reboots.filter((r) => !isEnded(r.status));
    const unavailable = new Set(active.filter((r) => r.status !== 'queued').map((r) => r.node));
    const view = (r: RolloutTagged) => ({
      id: r.id,
      kind: r.kind,
      node: r.node,
      xpu: r.xpu,
      status: r.status,
      mode: r.mode,
      notifiedAt: r.notifiedAt,
      deadline: r.deadline,
      forced: r.forced,
      ...(r.endedAt ? { endedAt: r.endedAt } : {}),
      ...(r.rolloutId ? { rolloutId: r.rolloutId } : {}),
    });
    const holdMatches = (h: { selector: Record<string, string> }, n: { id: string; rack?: string; zone?: string; tenant?: string }) =>
      Object.entries(h.selector).every(([k, v]) => (k === 'node' ? n.id : (n as Record<string, unknown>)[k]) === v);
    // xPUs a rollout has asked to reboot (reboot-xpu out) that have not announced yet.
    const asked = new Map<string, string[]>();
    for (const r of rollouts)
      for (const it of r.items) if (it.state === 'sent') asked.set(it.node, [...(asked.get(it.node) ?? []), it.xpu]);
    const racks = new Map<string, unknown[]>();
    for (const n of nodes) {
      const rack = n.rack ?? '(no rack)';
      const mine = active.filter((r) => r.node === n.id);
      if (!racks.has(rack)) racks.set(rack, []);
      racks.get(rack)!.push({
        id: n.id,
        zone: n.zone ?? null,
        tenant: n.tenant ?? null,
        xpus: n.xpus.map((x) => x.id),
        state:
          mine.length === 0
            ? 'idle'
            : mine.some((r) => r.status !== 'queued')
              ? mine.some((r) => r.kind === 'host')
                ? 'host-rebooting'
                : 'xpu-rebooting'
              : 'queued',
        reboots: mine.map(view),
        asked: asked.get(n.id) ?? [],
        holds: holds.filter((h) => holdMatches(h, n)).map((h) => h.id),
      });
    }
    return c.json({
      generatedAt: now.toISOString(),
      racks: [...racks].map(([rack, nodes]) => ({ rack, nodes })),
      totals: {
        nodes: index.inventory.nodes.length,
        inFlight: active.filter((r) => r.status !== 'queued').length,
        queued: active.filter((r) => r.status === 'queued').length,
        unavailableNodes: unavailable.size,
      },
      budgets: await budgetUse(deps, nodes, unavailable),
      holds,
      rollouts: rollouts.map((r) => {
        const p = publicRollout(r);
        return {
          id: p.id,
          status: p.status,
          reason: p.reason,
          selector: p.selector,
          createdAt: p.createdAt,
          total: p.plan.length,
          done: p.done.length,
          failed: p.failed.length,
          inFlight: r.items.filter(isInFlight).length,
          ...(p.blocked ? { blocked: p.blocked } : {}),
        };
      }),
      timeline: reboots.filter((r) => r.notifiedAt >= since || !isEnded(r.status)).map(view),
    });
  });
}
