// The HTTP API (one hono app): served by @hono/node-server locally and by API Gateway + Lambda in AWS.
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { BadRequest, Forbidden, HttpError, NotFound, PayloadTooLarge } from '../core/errors.ts';
import type { InventoryIndex } from '../core/inventory.ts';
import { actorOf, type Principal } from '../core/principal.ts';
import { SECONDS_TEXT } from '../core/reboot.ts';
import { parseRedfishPayload } from '../core/redfish/parse.ts';
import { translateRedfishEvent } from '../core/redfish/translate.ts';
import type { Mapping } from '../core/redfish/mapping.ts';
import { complianceReport } from './report-job.ts';
import { parseReportQuery, type ReportQuery } from '../core/report/query.ts';
import { renderReport } from '../core/report/render.ts';
import { NATIVE_EVENT_TYPES, REBOOT_STATUSES, type Command, type NativeEvent, type NodeDef } from '../core/types.ts';
import type { DeadLetterQueue, StoredCommand } from '../ports/index.ts';
import type { Deps } from './deps.ts';
import { publicReboot } from './views.ts';
import { registerDlqRoutes } from './dlq.ts';
import { authorizeAgent, authorizeEvent, bearerToken, requirePrincipal } from './auth.ts';
import { registerRolloutRoutes } from './rollout-routes.ts';
import { markDowns } from './down-marks.ts';
import { registerResultRoutes } from './agent-results.ts';
import { registerExtensionRoutes } from './extensions.ts';
import type { HealthReport } from './health.ts';
import { registerFleetRoutes } from './fleet-routes.ts';
import { registerOpenApiRoute } from './openapi.ts';
import { registerNodeRoutes } from './nodes.ts';
import { contended } from './contended.ts';
import { isDependencyDown, unavailable } from './unavailable.ts';
import { registerPathLimits } from './path-limits.ts';
import { readBodyBytes } from './body.ts';
import { givenParams } from './query.ts';

export const MAX_BODY_BYTES = 256 * 1024;
/** Agents long-poll at most this long; API Gateway's 30 s integration limit caps it lower in AWS. */
export const MAX_WAIT_SECONDS = 30;
/** A delivered command goes out again if its agent said nothing about it for this long. */
export const REDELIVER_AFTER_MS = 15_000;
export const MAX_OUTPUT_BYTES = 64 * 1024;
/** A long poll looks again this often without a wake-up: for redeliveries due and to heartbeat. */
const POLL_RECHECK_MS = 5_000;

export type { Principal } from '../core/principal.ts';

export interface ApiDeps extends Deps {
  /** SHA-256 (hex) of the operator token; undefined disables operator access. */
  operatorTokenHash?: string;
  mapping: Mapping;
  maxWaitSeconds?: number;
  /** Aborted when the process stops: long polls answer at once instead of holding shutdown up. */
  shutdown?: AbortSignal;
  /** The ingest DLQ for the operator's /v1/dlq routes; absent, they answer 503. */
  dlq?: DeadLetterQueue;
  /** Probes the store, queue and workflow engine for /healthz; absent, /healthz answers 200. */
  health?: () => Promise<HealthReport>;
  /**
   * When this API began serving after the one before it stopped (the local stack's start; unset in
   * AWS, where instances come and go side by side). A command handed out before it and not answered
   * since may have died with that process's response: it goes out again at once, not after
   * REDELIVER_AFTER_MS (the agent's journal keeps a hook from running twice).
   */
  servingSince?: Date;
}

export { authenticate } from './auth.ts';

/**
 * The routes where a token may sit in the URL: the two a BMC posts to, for BMCs that send no custom headers
 * (contract 3, RFC 6750 §2.3; a BMC's native events as much as its Redfish ones).
 */
const QUERY_TOKEN_PATHS = new Set(['/v1/events/redfish', '/v1/events']);

function bearer(c: Context): string | undefined {
  // Elsewhere an operator's or agent's token in a URL would end up in proxies' logs and browser history, and the
  // other routes (DLQ, rollouts, fleet) already refuse it: /openapi.json declares it for the event routes only.
  return bearerToken(c.req.header('authorization'), QUERY_TOKEN_PATHS.has(c.req.path) ? c.req.query('access_token') : undefined);
}

async function readBody(c: Context): Promise<string> {
  const buf = await readBodyBytes(c, MAX_BODY_BYTES);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw new BadRequest('body is not valid UTF-8', 'MalformedJson');
  }
}

export async function readJson(c: Context): Promise<unknown> {
  const text = await readBody(c);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BadRequest(`body is not JSON: ${(err as Error).message}`, 'MalformedJson');
  }
}

export function check<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const res = schema.safeParse(value);
  if (!res.success) throw new BadRequest(`${what}: ${z.prettifyError(res.error).replace(/\n/g, '; ')}`, 'ValidationError');
  return res.data;
}

const isoTime = z.string().refine((s) => Number.isFinite(Date.parse(s)), 'not a date-time');

export const NativeEventBody = z.object({
  id: z.string().min(1).max(200),
  type: z.string().min(1),
  node: z.string().min(1).max(100),
  xpu: z.string().min(1).max(100).nullish(),
  time: isoTime.nullish(),
  data: z.record(z.string(), z.unknown()).nullish(),
});

/** An announced notice: seconds, 0 for none (a number or its digits; core/reboot.ts noticeSecondsFor caps it). */
const NoticeSeconds = z.union([z.number().finite().nonnegative(), z.string().regex(SECONDS_TEXT, 'not a number of seconds')]).nullish();

/** The largest page of GET /v1/reboots. */
export const MAX_LIST_LIMIT = 1000;

export const ListParams = z.object({
  node: z.string().optional(),
  status: z.enum(REBOOT_STATUSES).optional(),
  // More than MAX_LIST_LIMIT asked: that many are answered (a page is at most that), not a 400.
  limit: z.coerce.number().int().min(1).default(100),
  cursor: z.string().optional(),
});

function publicCommand(c: StoredCommand): Command {
  return { id: c.id, type: c.type, rebootId: c.rebootId, node: c.node, xpu: c.xpu ?? null, args: c.args ?? {}, deadline: c.deadline };
}

function capOutput(s: string): string {
  const bytes = Buffer.byteLength(s);
  if (bytes <= MAX_OUTPUT_BYTES) return s;
  return (
    `[truncated ${bytes - MAX_OUTPUT_BYTES} bytes]\n` +
    Buffer.from(s)
      .subarray(bytes - MAX_OUTPUT_BYTES)
      .toString('utf8')
  );
}

export function createApiApp(deps: ApiDeps) {
  const app = new Hono();
  const maxWait = deps.maxWaitSeconds ?? MAX_WAIT_SECONDS;

  async function principal(c: Context): Promise<{ who: Principal; index: InventoryIndex }> {
    const index = await deps.inventory();
    return { who: requirePrincipal(bearer(c), index, deps.operatorTokenHash), index };
  }

  function mayReadNode(who: Principal, node: string) {
    if (who.kind === 'operator') return;
    if (who.kind === 'agent' && who.node === node) return;
    throw new Forbidden(`this token may not read node ${node}`);
  }

  app.onError((err, c) => {
    if (err instanceof HttpError) return c.json({ error: err.code, message: err.message }, err.status as 400);
    if ((err as Error).name === 'BadCursor') return c.json({ error: 'BadRequest', message: (err as Error).message }, 400);
    if ((err as Error).name === 'ConcurrentUpdate') return contended(c, err as Error, deps.logger);
    if (isDependencyDown(err)) return unavailable(c, err as Error, deps.logger);
    deps.logger.error('request failed', { path: c.req.path, error: (err as Error).stack ?? String(err) });
    return c.json({ error: 'InternalError', message: 'the request could not be completed; it is safe to retry' }, 500);
  });
  app.notFound((c) => c.json({ error: 'NotFound', message: `no route ${c.req.method} ${c.req.path}` }, 404));
  registerPathLimits(app);

  app.get('/healthz', async (c) => {
    const report = deps.health ? await deps.health() : { ok: true };
    return report.ok ? c.json({ ok: true }) : c.json(report, 503);
  });
  registerOpenApiRoute(app);
  registerDlqRoutes(app, deps);
  registerNodeRoutes(app, deps, principal);
  registerRolloutRoutes(app, deps);
  registerFleetRoutes(app, { ...deps, principal });

  app.post('/v1/events/redfish', async (c) => {
    const { who, index } = await principal(c);
    if (who.kind !== 'bmc') throw new Forbidden('only a BMC token may post Redfish events');
    const node = index.node(who.node)!;
    const body = await readBodyBytes(c, MAX_BODY_BYTES);
    const parsed = parseRedfishPayload(body, { maxBytes: MAX_BODY_BYTES });
    if (!parsed.ok) {
      if (parsed.status === 413) throw new PayloadTooLarge(parsed.message);
      throw new BadRequest(parsed.message, parsed.error);
    }
    const receivedAt = deps.clock.now().toISOString();
    const result = translateRedfishEvent(parsed.event, { node, inventory: index.inventory, mapping: deps.mapping, receivedAt });
    if (result.kind === 'forbidden') throw new Forbidden(result.message);
    const by = actorOf(who);
    // Any delivery, even of ignored records (e.g. HeartbeatEvent), shows the subscription is alive. Marked
    // before the records are queued: a 503 from here must mean nothing was accepted (docs/api.md).
    await deps.store.touchBmc(node.id, receivedAt);
    const queued = result.accepted.map((ev) => ({ ...ev, by }));
    await markDowns(deps, queued);
    await deps.queue.send(queued);
    deps.metrics.count('RedfishRecordsAccepted', result.accepted.length);
    return c.json({ accepted: result.accepted.length, ignored: result.ignored.length }, 202);
  });

  app.post('/v1/events', async (c) => {
    const { who, index } = await principal(c);
    const body = check(NativeEventBody, await readJson(c), 'event');
    if (!(NATIVE_EVENT_TYPES as readonly string[]).includes(body.type))
      throw new BadRequest(`unknown event type '${body.type}'; one of ${NATIVE_EVENT_TYPES.join(', ')}`, 'UnknownEventType');
    // A notice that is not a number of seconds would silently become the policy's: refused instead.
    if (body.type === 'xpu.reboot.pending') check(NoticeSeconds, body.data?.noticeSeconds, 'data.noticeSeconds');
    const node = index.node(body.node);
    if (!node) throw new NotFound(`node ${body.node} is not in the inventory`);
    if (who.kind !== 'operator' && who.node !== node.id)
      throw new Forbidden(`a token of node ${who.node} may not post events for node ${node.id}`);
    const xpu = resolveXpu(node, body.type, body.xpu ?? undefined);
    const from = authorizeEvent(who, { type: body.type, node: node.id, xpu }, index);
    const receivedAt = deps.clock.now().toISOString();
    const ev: NativeEvent = {
      id: body.id,
      type: body.type as NativeEvent['type'],
      node: node.id,
      ...(xpu ? { xpu } : {}),
      time: body.time ? new Date(body.time).toISOString() : receivedAt,
      data: body.data ?? {},
      source: 'native',
      dedupKey: `native:${node.id}:${body.id}`,
      receivedAt,
      by: actorOf(from),
    };
    await markDowns(deps, [ev]);
    await deps.queue.send([ev]);
    return c.json({ accepted: 1, ignored: 0, id: ev.id }, 202);
  });

  app.get('/v1/reboots', async (c) => {
    const { who } = await principal(c);
    const q = check(ListParams, givenParams(c.req.query()), 'query');
    if (who.kind === 'bmc') throw new Forbidden('a BMC token may not list reboots');
    if (who.kind === 'agent') {
      if (q.node && q.node !== who.node) throw new Forbidden(`a token of node ${who.node} may not list node ${q.node}`);
      q.node = who.node;
    }
    const limit = Math.min(q.limit, MAX_LIST_LIMIT);
    const page = await deps.store.listReboots({ node: q.node, status: q.status, limit, cursor: q.cursor });
    return c.json({ items: page.items.map(publicReboot), next: page.next });
  });

  app.get('/v1/reboots/:id', async (c) => {
    const { who } = await principal(c);
    const reboot = await deps.store.getReboot(c.req.param('id'));
    if (!reboot) throw new NotFound(`no reboot ${c.req.param('id')}`);
    mayReadNode(who, reboot.node);
    return c.json(publicReboot(reboot));
  });

  app.get('/v1/agents/:agentId/commands', async (c) => {
    const { who, index } = await principal(c);
    const agentId = c.req.param('agentId');
    authorizeAgent(agentId, who, index);
    const waitRaw = c.req.query('wait');
    const wait = waitRaw === undefined ? 0 : Number(waitRaw);
    if (!Number.isFinite(wait) || wait < 0) throw new BadRequest('wait must be a number of seconds from 0 to 30', 'ValidationError');
    const until = Date.now() + Math.min(wait, maxWait) * 1000;
    const abort = new AbortController();
    c.req.raw.signal?.addEventListener?.('abort', () => abort.abort());
    let lastBeat = 0;
    let handed: StoredCommand[] | undefined;
    let idle = false;
    for (;;) {
      // Listen before looking: a command written between the look and the wait still wakes us.
      // With nothing open, only a new command (which notifies) can make this poll answer: no recheck then.
      const done = new AbortController();
      const woken = deps.signal.wait(
        agentId,
        Math.min(until - Date.now(), idle ? Infinity : POLL_RECHECK_MS),
        AbortSignal.any([abort.signal, done.signal, ...(deps.shutdown ? [deps.shutdown] : [])]),
      );
      // Woken with the commands just written (in-process signal): mark those instead of reading them back.
      // If none of them is ours to deliver any more (another poll took them), look as usual.
      const fast = handed ? await deliver(handed) : undefined;
      handed = undefined;
      if (fast && fast.ready.length > 0) {
        done.abort();
        return c.json(fast.ready.map(publicCommand));
      }
      const { ready, open } = await deliverable(agentId);
      idle = open.length === 0;
      // An agent that polls is alive: keep the waits of its open commands from timing out. Only
      // commands already handed out count, so a first delivery never waits for a heartbeat.
      if (Date.now() - lastBeat >= POLL_RECHECK_MS) {
        lastBeat = Date.now();
        const busy = new Set(open.filter((o) => o.status !== 'pending').map((o) => o.rebootId));
        if (busy.size) await heartbeatReboots(busy).catch((err) => deps.logger.warn('heartbeat failed', { agentId, error: String(err) }));
      }
      if (ready.length > 0 || Date.now() >= until || abort.signal.aborted || deps.shutdown?.aborted) {
        done.abort();
        return c.json(ready.map(publicCommand));
      }
      const got = await woken;
      // Claimed: the writer stored these as delivered to this very poll (command-delivery.ts), nothing to mark.
      if (got && 'delivered' in got) return c.json(got.delivered.map(publicCommand));
      // Its client went away: whatever it marked now would wait REDELIVER_AFTER_MS for the next poll.
      if (abort.signal.aborted) return c.json([]);
      handed = got?.filter((cmd) => cmd.agent === agentId);
    }
  });

  /** Handed out before this, unanswered: due again. REDELIVER_AFTER_MS ago, or this API's start if later. */
  function redeliverBefore(now: Date): string {
    const silent = now.getTime() - REDELIVER_AFTER_MS;
    const since = deps.servingSince?.getTime() ?? 0;
    return new Date(Math.max(silent, since)).toISOString();
  }

  async function deliver(commands: StoredCommand[]): Promise<{ ready: StoredCommand[]; open: StoredCommand[] }> {
    const now = deps.clock.now();
    const before = redeliverBefore(now);
    const marked = await Promise.all(commands.map((c) => deps.store.markDelivered(c, now.toISOString(), before)));
    return { ready: marked.filter((c): c is StoredCommand => c !== undefined), open: commands };
  }

  async function deliverable(agentId: string): Promise<{ ready: StoredCommand[]; open: StoredCommand[] }> {
    const now = deps.clock.now();
    const before = redeliverBefore(now);
    const open = await deps.store.openCommands(agentId);
    const due = open.filter((c) => c.status === 'pending' || c.redeliver || !c.seenAt || c.seenAt < before);
    return { ready: (await deliver(due)).ready, open };
  }

  async function heartbeatReboots(rebootIds: Set<string>) {
    for (const id of rebootIds) {
      const r = await deps.store.getReboot(id);
      if (r?.waiter) await deps.workflows.heartbeat(r.waiter.token);
    }
  }

  const kit = { principal, readJson, check, agentOf: authorizeAgent, capOutput, heartbeatReboots };
  registerExtensionRoutes(app, deps, kit);
  registerResultRoutes(app, deps, kit);

  app.get('/v1/reports/compliance', async (c) => {
    const { who } = await principal(c);
    if (who.kind !== 'operator') throw new Forbidden('only the operator may read compliance reports');
    let q: ReportQuery;
    try {
      q = parseReportQuery(c.req.query());
    } catch (err) {
      throw new BadRequest((err as Error).message, 'InvalidReportQuery');
    }
    const { from, to } = q;
    const report = await complianceReport(deps, from, to);
    const out = renderReport(report, q.format);
    return c.body(out.body, 200, { 'content-type': out.contentType });
  });

  return app;
}

function resolveXpu(node: NodeDef, type: string, xpu: string | undefined): string | undefined {
  if (xpu) {
    if (!node.xpus.some((x) => x.id === xpu)) throw new NotFound(`node ${node.id} has no xPU ${xpu}`);
    return xpu;
  }
  if (!type.startsWith('xpu.')) return undefined;
  if (node.xpus.length === 1) return node.xpus[0].id;
  throw new BadRequest(`${type} needs "xpu": node ${node.id} has ${node.xpus.length} xPUs`, 'ValidationError');
}
