// Operator routes for the ingest DLQ: list what is parked there and why, and move it back to the ingest queue.
import type { Hono } from 'hono';
import { z } from 'zod';
import { BadRequest, Forbidden, HttpError, Unauthorized } from '../core/errors.ts';
import type { InventoryIndex } from '../core/inventory.ts';
import type { DeadLetterQueue } from '../ports/index.ts';
import { authenticate, bearerToken } from './auth.ts';
import { readBodyBytes } from './body.ts';
import { givenParams } from './query.ts';

export const DLQ_LIST_MAX = 100;
export const DLQ_LIST_DEFAULT = 20;
const MAX_REDRIVE_IDS = 1000;
/** Contract section 3: a body over 256 KiB is 413, read no further than that. */
const MAX_BODY_BYTES = 256 * 1024;

export interface DlqRouteDeps {
  inventory: () => Promise<InventoryIndex>;
  /** SHA-256 (hex) of the operator token; else the stored inventory's. */
  operatorTokenHash?: string;
  /** Undefined when this deployment has no DLQ configured (DLQ_URL): the routes answer 503. */
  dlq?: DeadLetterQueue;
  /** How long one redrive moves messages (default REDRIVE_BUDGET_MS). */
  redriveBudgetMs?: number;
}

/**
 * How long one POST /v1/dlq/redrive moves messages before it answers `more: true` (docs/operations.md):
 * API Gateway gives up on a request at 30 s, and a DLQ of thousands takes minutes to move. The rest of
 * the 30 s covers the walk's last receive and releasing what it held.
 */
export const REDRIVE_BUDGET_MS = 20_000;

class NotConfigured extends HttpError {
  override readonly name = 'NotConfigured';
  constructor(message: string) {
    super(503, 'NotConfigured', message);
  }
}

export const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(DLQ_LIST_MAX).default(DLQ_LIST_DEFAULT),
});

export const RedriveBody = z.union([
  z.strictObject({ ids: z.array(z.string().min(1).max(200)).min(1).max(MAX_REDRIVE_IDS) }),
  z.strictObject({ all: z.literal(true) }),
]);

/** Mounts GET /v1/dlq and POST /v1/dlq/redrive on the API app; errors go through the app's onError. */
export function registerDlqRoutes(app: Hono, deps: DlqRouteDeps): void {
  async function operatorOnly(authorization: string | undefined): Promise<DeadLetterQueue> {
    // Header only: an operator token in a URL ends up in access logs.
    const who = authenticate(bearerToken(authorization), await deps.inventory(), deps.operatorTokenHash);
    if (!who) throw new Unauthorized();
    if (who.kind !== 'operator') throw new Forbidden('only the operator may read or redrive the dead-letter queue');
    if (!deps.dlq) throw new NotConfigured('this deployment has no dead-letter queue configured (DLQ_URL)');
    return deps.dlq;
  }

  app.get('/v1/dlq', async (c) => {
    const dlq = await operatorOnly(c.req.header('authorization'));
    const q = ListQuery.safeParse(givenParams(c.req.query()));
    if (!q.success) throw new BadRequest(`limit must be a whole number from 1 to ${DLQ_LIST_MAX}`, 'ValidationError');
    const items = await dlq.list(q.data.limit);
    return c.json({ items, count: items.length });
  });

  app.post('/v1/dlq/redrive', async (c) => {
    const dlq = await operatorOnly(c.req.header('authorization'));
    const bytes = await readBodyBytes(c, MAX_BODY_BYTES);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new BadRequest('body must be JSON: {"ids": ["<message id>", ...]} or {"all": true}', 'MalformedJson');
    }
    const parsed = RedriveBody.safeParse(body);
    if (!parsed.success)
      throw new BadRequest('body must be {"ids": ["<message id>", ...]} (1 to 1000 ids) or {"all": true}', 'ValidationError');
    const res = await dlq.redrive('ids' in parsed.data ? parsed.data.ids : undefined, {
      stopAt: Date.now() + (deps.redriveBudgetMs ?? REDRIVE_BUDGET_MS),
    });
    return c.json({
      redriven: res.redriven.length,
      notFound: res.notFound.length,
      ids: res.redriven,
      missing: res.notFound,
      // Out of time with messages (or requested ids) maybe left: send the same request again.
      more: res.more === true,
    });
  });
}
