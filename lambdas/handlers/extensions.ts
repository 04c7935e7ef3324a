// POST /v1/reboots/{id}/extensions: an agent asks for more notice; with an Idempotency-Key, a repeat is answered the first answer.
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { BadRequest, Forbidden, NotFound } from '../core/errors.ts';
import { requestExtension, type ExtensionOutcome, type ExtensionRequest } from '../core/model.ts';
import type { StoredReboot } from '../core/reboot.ts';
import { refusalTotal } from '../core/bounds.ts';
import type { NodeDef } from '../core/types.ts';
import type { IdempotentAnswer } from '../ports/index.ts';
import type { RouteKit } from './agent-results.ts';
import { wakeIfReady, type Deps } from './deps.ts';
import { applyStep } from './effects.ts';
import { mayActAs } from './auth.ts';

export const ExtensionBody = z.object({
  // No upper bound of its own (a safe integer): a request beyond what remains is trimmed, not refused
  // (CONTRACT 3), however much was asked.
  seconds: z.number().int().positive(),
  reason: z.string().max(1000).default(''),
});

/** How long an answer is kept for its repeats: agents retry within minutes, a day is ample. */
export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;
/** Printable ASCII without spaces (a UUID, a ULID, a hash), as with the IETF draft's examples. */
export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
export const REPLAYED_HEADER = 'idempotent-replayed';

/** How often a request whose key's first answer may have been dropped from its reboot looks for it in the store. */
const KEY_LOOKS = 5;

const knowsKey = (r: StoredReboot, key: string) =>
  r.extensions.some((e) => e.idempotencyKey === key) || r.refusals.some((x) => x.idempotencyKey === key);

/** Whether refusals written after `seen` was read are dropped from `r` already (lambdas/core/bounds.ts). */
const droppedSince = (seen: StoredReboot, r: StoredReboot) => refusalTotal(seen) < (r.refusalsDropped ?? 0);

function answerOf(outcome: ExtensionOutcome, at: string): IdempotentAnswer {
  return outcome.kind === 'granted'
    ? { status: 200, body: { granted: outcome.granted, deadline: outcome.deadline }, at }
    : { status: outcome.status, body: { error: outcome.code, message: outcome.reason }, at };
}

/** Mounts the extension route on the API app; errors go through the app's onError. */
export function registerExtensionRoutes(app: Hono, deps: Deps, kit: RouteKit): void {
  const reply = (c: Context, a: IdempotentAnswer, replayed: boolean) => {
    if (replayed) c.header(REPLAYED_HEADER, 'true');
    return c.json(a.body as object, a.status as 200);
  };

  app.post('/v1/reboots/:id/extensions', async (c) => {
    const { who, index } = await kit.principal(c);
    const rawKey = c.req.header('idempotency-key');
    if (rawKey !== undefined && !IDEMPOTENCY_KEY.test(rawKey))
      throw new BadRequest('Idempotency-Key must be 1 to 255 printable ASCII characters without spaces', 'ValidationError');
    const body = kit.check(ExtensionBody, await kit.readJson(c), 'extension request');
    const reboot = await deps.store.getReboot(c.req.param('id'));
    if (!reboot) throw new NotFound(`no reboot ${c.req.param('id')}`);
    if (who.kind !== 'agent' || !mayActAs(who, reboot.node, index))
      throw new Forbidden("only the agent of the reboot's node may ask for an extension");
    const node = index.node(reboot.node);
    if (!node) throw new NotFound(`node ${reboot.node} is not in the inventory`);
    const agent = who.agent ?? who.node;
    // Scoped to the reboot and the agent: one agent's key never answers another's request.
    const idempotencyKey = rawKey === undefined ? undefined : `${agent} ${rawKey}`;
    const stored = idempotencyKey ? `${reboot.id} ${idempotencyKey}` : undefined;
    const replay = async (first: IdempotentAnswer) => {
      if (first.status === 200) await catchUp(reboot.id, node);
      return reply(c, first, true);
    };
    if (stored) {
      const first = await deps.store.getIdempotentAnswer(stored);
      if (first) return replay(first);
    }

    const req: ExtensionRequest = { seconds: body.seconds, reason: body.reason, idempotencyKey, by: `agent:${agent}` };
    let outcome: ExtensionOutcome | undefined;
    let res: Awaited<ReturnType<typeof applyStep>>;
    for (let look = 1; ; look++) {
      let unsure = false;
      res = await applyStep(
        deps,
        reboot.id,
        (r) => {
          outcome = undefined;
          // `reboot` was read before the key was looked up: a first answer on it but dropped from `r`
          // since (refusals keep their last entries only) is still the first answer.
          const from = idempotencyKey && !knowsKey(r, idempotencyKey) && knowsKey(reboot, idempotencyKey) ? reboot : r;
          unsure = from === r && idempotencyKey !== undefined && look <= KEY_LOOKS && droppedSince(reboot, r);
          if (unsure) return null;
          const asked = requestExtension(from, node, req, deps.clock.now());
          outcome = asked.outcome;
          return asked.step;
        },
        node,
        // A repeat changes nothing but looks at the waiter again: its first may have died before waking it.
        { wake: 'always' },
      );
      if (!unsure || !stored) break;
      // Refusals written while this request waited were dropped unseen: the first of this key may be
      // among them, its answer stored by now or in a moment. Decided afresh only if it never shows.
      const first = await deps.store.getIdempotentAnswer(stored);
      if (first) return replay(first);
      await new Promise((r) => setTimeout(r, 10 * 2 ** look));
    }
    const updated = res?.reboot;
    if (!updated || !outcome) throw new NotFound(`no reboot ${reboot.id}`);
    let answer = answerOf(outcome, deps.clock.now().toISOString());
    const replayed = outcome.repeat;
    if (stored) {
      // First answer wins: a repeat racing this one stores nothing new and answers what is stored.
      // Whether this request is the original is the reboot's conditional write's to say: a repeat
      // that found the grant may store its (same) answer before the original gets to. One that took
      // itself for the original answers what is stored too (the first answer, whatever it decided).
      answer = await deps.store.putIdempotentAnswer(stored, answer, IDEMPOTENCY_TTL_SECONDS);
    }
    // Also on a repeat: its first may have failed after the grant, before the commands heard of it.
    if (answer.status === 200) await catchUp(reboot.id, node, updated);
    return reply(c, answer, replayed);
  });

  /** Moves the open notice-phase commands to the reboot's current deadline and wakes its waiter (both idempotent). */
  async function catchUp(rebootId: string, node: NodeDef, known?: StoredReboot) {
    const r = known ?? (await deps.store.getReboot(rebootId));
    if (!r?.deadline) return;
    await deps.store.moveNoticeDeadline(r, r.deadline);
    if (!known) await wakeIfReady(deps, r, node);
  }
}
