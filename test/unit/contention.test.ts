// Contention on one item: the retry budget, the turns of one process's writers, and the API's 503 when both ran out.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffMs, CONFLICT_POLICY, conflictRetry, Turns, type ConflictPolicy } from '../../lambdas/adapters/optimistic.ts';
import { ConcurrentUpdate } from '../../lambdas/core/errors.ts';
import { hashToken, InventoryIndex, parseInventory } from '../../lambdas/core/inventory.ts';
import { newXpuReboot } from '../../lambdas/core/reboot.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { createApiApp, type ApiDeps } from '../../lambdas/handlers/api.ts';
import { CONTENDED_RETRY_AFTER_SECONDS } from '../../lambdas/handlers/contended.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { openApiDocument } from '../../lambdas/handlers/openapi.ts';
import type { StoredCommand } from '../../lambdas/ports/index.ts';

const SEED = 20261206;

describe('backoff after a lost race', () => {
  it('is uniform in [0, min(cap, base * 2^attempt)] (full jitter), whatever the attempt', () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
        const ms = backoffMs(attempt, { ...CONFLICT_POLICY, random: () => r });
        expect(ms).toBeGreaterThanOrEqual(0);
        expect(ms).toBeLessThanOrEqual(Math.min(CONFLICT_POLICY.capMs, CONFLICT_POLICY.baseMs * 2 ** attempt));
        expect(Number.isFinite(ms)).toBe(true);
      }),
      { seed: SEED },
    );
  });
});

describe('the retry budget of one write', () => {
  /** A policy on a clock the test moves: no waiting, and nothing hangs on the machine's speed. */
  function stubbed(over: Partial<ConflictPolicy> = {}) {
    let now = 0;
    const slept: number[] = [];
    const policy: ConflictPolicy = {
      ...CONFLICT_POLICY,
      now: () => now,
      random: () => 1,
      sleep: async (ms) => {
        slept.push(ms);
        now += ms;
      },
      ...over,
    };
    return { policy, slept, tick: (ms: number) => (now += ms) };
  }

  it('keeps trying while its budget lasts, however many races it lost, then gives up with ConcurrentUpdate', async () => {
    const { policy, slept } = stubbed({ budgetMs: 5_000 });
    const retry = conflictRetry('reboot xr-1', policy);
    let attempt = 0;
    for (; retry.more(attempt); attempt++) await retry.lost(attempt);
    // Far more than the 12 attempts a fixed count allowed: the budget, not a count, ends it.
    expect(attempt).toBeGreaterThan(12);
    expect(slept.reduce((s, ms) => s + ms, 0)).toBeGreaterThanOrEqual(5_000);
    expect(Math.max(...slept)).toBe(CONFLICT_POLICY.capMs);
    const err = retry.giveUp();
    expect(err).toBeInstanceOf(ConcurrentUpdate);
    expect(err.name).toBe('ConcurrentUpdate'); // what ASL Retry and the API's 503 match on
    expect(err.message).toMatch(/^reboot xr-1 kept changing under \d+ attempts/);
  });

  it('always makes its first attempt, and stops at maxAttempts should the clock not move', () => {
    const { policy } = stubbed({ budgetMs: 0, maxAttempts: 7 });
    expect(conflictRetry('x', policy).more(0)).toBe(true);
    expect(conflictRetry('x', policy).more(1)).toBe(false);
    const still = stubbed({ maxAttempts: 7 });
    const retry = conflictRetry('x', still.policy);
    expect([0, 1, 6, 7, 8].map((n) => retry.more(n))).toEqual([true, true, true, false, false]);
  });

  it('the budget counts from the write, not from the module (a later write has all of it)', () => {
    const { policy, tick } = stubbed({ budgetMs: 100 });
    tick(1_000_000);
    const retry = conflictRetry('x', policy);
    expect(retry.more(1)).toBe(true);
    tick(100);
    expect(retry.more(2)).toBe(false);
  });
});

describe('turns of one process', () => {
  it('writers of one key run one at a time, first come first served; other keys do not wait', async () => {
    const turns = new Turns();
    const log: string[] = [];
    const gates = new Map<string, () => void>();
    const writer = (key: string, name: string) =>
      turns.run(key, async (waited) => {
        log.push(`start ${name}${waited ? ' (waited)' : ''}`);
        await new Promise<void>((r) => gates.set(name, r));
        log.push(`end ${name}`);
        return name;
      });
    const a = writer('R#1', 'a');
    const b = writer('R#1', 'b');
    const c = writer('R#1', 'c');
    const other = writer('R#2', 'other');
    await Promise.resolve();
    await Promise.resolve();
    expect(log).toEqual(['start a', 'start other']);
    gates.get('other')!();
    expect(await other).toBe('other');
    gates.get('a')!();
    expect(await a).toBe('a');
    await new Promise((r) => setImmediate(r));
    expect(log.slice(-1)).toEqual(['start b (waited)']);
    gates.get('b')!();
    await b;
    await new Promise((r) => setImmediate(r));
    gates.get('c')!();
    await c;
    expect(log).toEqual(['start a', 'start other', 'end other', 'end a', 'start b (waited)', 'end b', 'start c (waited)', 'end c']);
    expect(turns.busy).toBe(0);
  });

  it('a writer that throws hands the turn on, and nothing stays held (seeded interleavings)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ key: fc.constantFrom('a', 'b'), fails: fc.boolean(), ticks: fc.nat(3) }), { maxLength: 20 }),
        async (ws) => {
          const turns = new Turns();
          const inside = new Map<string, number>();
          let overlapped = false;
          const settled = await Promise.allSettled(
            ws.map((w) =>
              turns.run(w.key, async () => {
                inside.set(w.key, (inside.get(w.key) ?? 0) + 1);
                if (inside.get(w.key)! > 1) overlapped = true;
                for (let i = 0; i < w.ticks; i++) await Promise.resolve();
                inside.set(w.key, inside.get(w.key)! - 1);
                if (w.fails) throw new Error('lost');
                return w.key;
              }),
            ),
          );
          expect(overlapped).toBe(false);
          expect(settled.map((s) => s.status)).toEqual(ws.map((w) => (w.fails ? 'rejected' : 'fulfilled')));
          expect(turns.busy).toBe(0);
        },
      ),
      { seed: SEED, numRuns: 50 },
    );
  });
});

describe('a request whose write kept losing', () => {
  const OPERATOR = 'operator-token-contention';
  const index = new InventoryIndex(
    parseInventory(`
nodes:
  - id: n1
    trusted: true
    agentToken: agent-token-n1
    xpus:
      - id: dpu0
`),
  );
  const at = '2030-01-01T00:00:00.000Z';
  const ev: NativeEvent = {
    id: 'e1',
    type: 'xpu.reboot.pending',
    node: 'n1',
    xpu: 'dpu0',
    time: at,
    receivedAt: at,
    source: 'native',
    dedupKey: 'native:n1:e1',
    data: {},
  };
  const reboot = newXpuReboot('xr-1', index.node('n1')!, 'dpu0', ev, 'planned');
  const command: StoredCommand = {
    id: 'c-1',
    type: 'migrate-workloads',
    rebootId: 'xr-1',
    node: 'n1',
    xpu: null,
    args: {},
    agent: 'n1',
    step: 'prepare',
    status: 'delivered',
    noticePhase: true,
    createdAt: at,
    deadline: '2030-01-01T00:05:00.000Z',
  };
  const lost = () => {
    throw new ConcurrentUpdate('reboot xr-1 kept changing under 40 attempts in 8000 ms');
  };
  const app = createApiApp({
    mapping: { rules: [] },
    operatorTokenHash: hashToken(OPERATOR),
    inventory: async () => index,
    logger: silentLogger,
    clock: { now: () => new Date(at) },
    store: {
      getReboot: async () => structuredClone(reboot),
      getIdempotentAnswer: async () => undefined,
      getCommand: async () => structuredClone(command),
      updateReboot: lost,
      updateCommand: lost,
    },
  } as unknown as ApiDeps);
  const post = (path: string, token: string, body: unknown, headers: Record<string, string> = {}) =>
    app.request(path, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  it.each([
    ['an extension', () => post('/v1/reboots/xr-1/extensions', 'agent-token-n1', { seconds: 60 })],
    [
      'an extension with an Idempotency-Key',
      () => post('/v1/reboots/xr-1/extensions', 'agent-token-n1', { seconds: 60 }, { 'idempotency-key': 'k' }),
    ],
    ['a cancel', () => post('/v1/reboots/xr-1/cancel', OPERATOR, { reason: 'not now' })],
    ['a force', () => post('/v1/reboots/xr-1/force', OPERATOR, { reason: 'now' })],
    ['a result', () => post('/v1/agents/n1/commands/c-1', 'agent-token-n1', { status: 'succeeded' })],
    ['a heartbeat', () => post('/v1/agents/n1/commands/c-1', 'agent-token-n1', { status: 'running' })],
  ])('%s is answered 503 ConcurrentUpdate with Retry-After, not 500', async (_, send) => {
    const res = await send();
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe(String(CONTENDED_RETRY_AFTER_SECONDS));
    expect(await res.json()).toEqual({
      error: 'ConcurrentUpdate',
      message: expect.stringMatching(/kept changing.*send the request again/),
    });
  });

  it('the OpenAPI document lists that 503, with its Retry-After, on the routes that write', () => {
    const doc = openApiDocument() as any;
    for (const [path, method] of [
      ['/v1/reboots/{id}/extensions', 'post'],
      ['/v1/reboots/{id}/cancel', 'post'],
      ['/v1/reboots/{id}/force', 'post'],
      ['/v1/agents/{agentId}/commands/{cmdId}', 'post'],
      ['/v1/holds/{id}', 'delete'],
    ])
      expect(doc.paths[path][method].responses['503'], `${method} ${path}`).toEqual({
        $ref: '#/components/responses/UnavailableOrContended',
      });
    expect(doc.paths['/v1/rollouts/{id}/cancel'].post.responses['503']).toEqual({
      $ref: '#/components/responses/UnavailableNotConfiguredOrContended',
    });
    for (const name of ['UnavailableOrContended', 'UnavailableNotConfiguredOrContended']) {
      expect(doc.components.responses[name].headers['Retry-After'].schema).toEqual({ type: 'integer', minimum: 0 });
      expect(doc.components.responses[name].description).toContain('`ConcurrentUpdate`');
    }
    // A read never writes: its 503 is only a dependency's (unavailable.ts).
    expect(doc.paths['/v1/reboots/{id}'].get.responses['503']).toEqual({ $ref: '#/components/responses/Unavailable' });
    expect(doc.components.responses.Unavailable.description).not.toContain('ConcurrentUpdate');
  });
});
