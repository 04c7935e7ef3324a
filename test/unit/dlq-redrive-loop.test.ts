// POST /v1/dlq/redrive gives the DLQ a time budget and relays `more`; `rebootctl dlq redrive` asks again
// until nothing more remains (docs/operations.md, "Redrive").
import { describe, expect, it } from 'vitest';
import { runDlqRedrive, type DlqCliIo } from '../../cli/commands/dlq.ts';
import { hashToken, InventoryIndex, parseInventory } from '../../lambdas/core/inventory.ts';
import { loadMapping } from '../../lambdas/core/redfish/mapping.ts';
import { createApiApp } from '../../lambdas/handlers/api.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { REDRIVE_BUDGET_MS } from '../../lambdas/handlers/dlq.ts';
import type { DeadLetterQueue, RedriveResult } from '../../lambdas/ports/index.ts';

const TOKEN = 'operator-token-for-the-redrive-loop';

/** A DLQ of `ids` that moves `perCall` of them per call and says more remain while any do. */
function fakeDlq(ids: string[], perCall: number) {
  const left = [...ids];
  const calls: Array<{ ids?: readonly string[]; stopAt?: number; at: number }> = [];
  const dlq: DeadLetterQueue = {
    list: async () => [],
    redrive: async (want, opts): Promise<RedriveResult> => {
      calls.push({ ids: want, stopAt: opts?.stopAt, at: Date.now() });
      const pick = left.filter((id) => !want || want.includes(id)).slice(0, perCall);
      for (const id of pick) left.splice(left.indexOf(id), 1);
      const more = left.some((id) => !want || want.includes(id));
      return { redriven: pick, notFound: [], ...(more ? { more } : {}) };
    },
  };
  return { dlq, calls, left };
}

function serve(dlq: DeadLetterQueue) {
  const index = new InventoryIndex(parseInventory('nodes: []'));
  const app = createApiApp({
    inventory: async () => index,
    operatorTokenHash: hashToken(TOKEN),
    mapping: loadMapping(null),
    logger: silentLogger,
    dlq,
  } as unknown as Parameters<typeof createApiApp>[0]);
  const io: DlqCliIo & { out: string; err: string } = {
    out: '',
    err: '',
    fetch: (input, init) => Promise.resolve(app.request(String(input), init as RequestInit)),
    env: {},
    stdout: (s) => void (io.out += s),
    stderr: (s) => void (io.err += s),
  };
  return { app, io };
}

describe('POST /v1/dlq/redrive', () => {
  it('gives the DLQ REDRIVE_BUDGET_MS (well under API Gateway’s 30 s) and answers more: true while messages remain', async () => {
    const fake = fakeDlq(['m1', 'm2', 'm3'], 2);
    const { app } = serve(fake.dlq);
    const post = async () =>
      (
        await app.request('/v1/dlq/redrive', {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ all: true }),
        })
      ).json();
    expect(await post()).toEqual({ redriven: 2, notFound: 0, ids: ['m1', 'm2'], missing: [], more: true });
    expect(await post()).toEqual({ redriven: 1, notFound: 0, ids: ['m3'], missing: [], more: false });
    expect(REDRIVE_BUDGET_MS).toBeLessThanOrEqual(25_000);
    for (const c of fake.calls) expect(c.stopAt! - c.at).toBeGreaterThan(REDRIVE_BUDGET_MS - 1000);
  });
});

describe('rebootctl dlq redrive', () => {
  it('asks again while more remain, and reports the total', async () => {
    const ids = Array.from({ length: 7 }, (_, i) => `m${i}`);
    const fake = fakeDlq(ids, 3);
    const { io } = serve(fake.dlq);
    expect(await runDlqRedrive({ server: 'http://coordinator.test', token: TOKEN }, io)).toBe(0);
    expect(fake.calls).toHaveLength(3);
    expect(fake.left).toEqual([]);
    expect(io.out.split('\n')[0]).toBe('redriven 7 messages to the ingest queue');
    expect(io.out).toContain('  m6\n');
    expect(io.err).toMatch(/3 redriven so far, more remain/);
  });

  it('by ids: asks again for those not moved yet only', async () => {
    const fake = fakeDlq(['a', 'b', 'c', 'd'], 1);
    const { io } = serve(fake.dlq);
    expect(await runDlqRedrive({ server: 'http://coordinator.test', token: TOKEN, id: ['b', 'c', 'd'], json: true }, io)).toBe(0);
    expect(fake.calls.map((c) => c.ids)).toEqual([['b', 'c', 'd'], ['c', 'd'], ['d']]);
    expect(JSON.parse(io.out)).toEqual({ redriven: 3, notFound: 0, ids: ['b', 'c', 'd'], missing: [], more: false });
    expect(fake.left).toEqual(['a']);
  });
});
