// Retried writes on the in-process stack (manual clock): result POSTs and extensions act once, a replayed start finds its reboot.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../lambdas/core/inventory.ts';
import { loadMapping } from '../../lambdas/core/redfish/mapping.ts';
import { createApiApp } from '../../lambdas/handlers/api.ts';
import { createIngestHandler } from '../../lambdas/handlers/ingest.ts';
import type { RebootStore } from '../../lambdas/ports/index.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { legacyRebootId } from '../../lambdas/core/ids.ts';
import { newXpuReboot } from '../../lambdas/core/reboot.ts';
import { INVENTORY, OPERATOR_TOKEN, phases, startHarness, T0, tokenOf, type Harness } from './harness.ts';

let h: Harness;
beforeAll(async () => {
  // One more node than the shared inventory: each test has a node of its own.
  h = await startHarness({
    inventory: `${INVENTORY.trimEnd()}
  - id: retry
    trusted: true
    agentToken: ${tokenOf('retry')}
    xpus:
      - id: dpu0
`,
  });
});
afterAll(async () => {
  await h?.close();
});

/** The stack's store, with `method` throwing once after `arm()`: a write lost between two others. */
function failingOnce(store: RebootStore, method: keyof RebootStore) {
  let armed = false;
  let failed = 0;
  const wrapped = new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        if (prop === method && armed) {
          armed = false;
          failed++;
          throw new Error(`injected failure of ${String(prop)}`);
        }
        return value.apply(target, args);
      };
    },
  });
  return { store: wrapped, arm: () => (armed = true), failures: () => failed };
}

async function announce(node: string) {
  const posted = await h.event(node, 'xpu.reboot.pending', { xpu: 'dpu0', data: { reason: 'firmware update' } });
  expect(posted.status).toBe(202);
  await h.drain();
  const r = await h.rebootOf(node, 'xpu', 'dpu0');
  await h.waitForState(r.id, 'PrepareHost');
  return r;
}

async function extend(id: string, node: string, seconds: number, key?: string) {
  const res = await fetch(`${h.url}/v1/reboots/${id}/extensions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokenOf(node)}`, 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify({ seconds, reason: 'draining takes longer' }),
  });
  return { status: res.status, json: (await res.json()) as any, replayed: res.headers.get('idempotent-replayed') === 'true' };
}

describe('result POSTs', () => {
  it('a result whose first POST failed after marking the command final wakes the workflow when retried', async () => {
    const r = await announce('solo');
    const host = h.agent('solo');
    const prep = await host.poll();
    expect(prep.map((c) => c.type)).toEqual(['migrate-workloads', 'protect-pcie']);
    await host.post(prep[0].id, 'succeeded');

    // An API whose store loses the reboot write that follows the command write.
    const faulty = failingOnce(h.stack.deps.store, 'updateReboot');
    const app = createApiApp({
      ...h.stack.deps,
      store: faulty.store,
      operatorTokenHash: hashToken(OPERATOR_TOKEN),
      mapping: loadMapping(null),
    });
    const post = () =>
      app.request(`/v1/agents/solo/commands/${prep[1].id}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokenOf('solo')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ status: 'succeeded', output: '' }),
      });
    faulty.arm();
    expect((await post()).status).toBe(500);
    expect(faulty.failures()).toBe(1);
    expect((await h.stack.deps.store.getCommand('solo', prep[1].id))?.status).toBe('succeeded');
    expect((await h.reboot(r.id)).commands[prep[1].id].status).not.toBe('succeeded');

    // The agent retries: answered as a duplicate, and this time the reboot and the workflow hear of it.
    const retry = await post();
    expect(retry.status).toBe(200);
    expect(await retry.json()).toEqual({ id: prep[1].id, status: 'succeeded', duplicate: true });
    await h.waitForState(r.id, 'WaitForXpuDown');
    expect((await h.agent('solo.dpu0').poll()).map((c) => c.type)).toEqual(['proceed-reboot']);
    expect(h.now().getTime()).toBe(T0); // woken at once, not at the deadline
    const after = await h.reboot(r.id);
    expect(after.commands[prep[1].id].status).toBe('succeeded');
    expect(after.history.filter((e) => e.phase === 'command-succeeded')).toHaveLength(2);

    // A third repeat changes nothing more.
    expect((await post()).status).toBe(200);
    expect((await h.reboot(r.id)).history.filter((e) => e.phase === 'command-succeeded')).toHaveLength(2);
  });

  it('a result whose first POST wrote the reboot but died before waking the workflow wakes it when retried', async () => {
    const r = await announce('retry');
    const host = h.agent('retry');
    const prep = await host.poll();
    await host.post(prep[0].id, 'succeeded');

    // An API whose wake-up of the waiting workflow is lost once (the process died right after the write).
    let armed = true;
    const workflows = new Proxy(h.stack.deps.workflows, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (prop !== 'wake' || typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          if (armed) {
            armed = false;
            throw new Error('injected failure of wake');
          }
          return value.apply(target, args);
        };
      },
    });
    const app = createApiApp({ ...h.stack.deps, workflows, operatorTokenHash: hashToken(OPERATOR_TOKEN), mapping: loadMapping(null) });
    const post = () =>
      app.request(`/v1/agents/retry/commands/${prep[1].id}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokenOf('retry')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ status: 'succeeded', output: '' }),
      });
    expect((await post()).status).toBe(500);
    expect(armed).toBe(false);
    expect((await h.reboot(r.id)).commands[prep[1].id].status).toBe('succeeded');

    // The retry changes nothing on the reboot, but looks at the waiter again: the early go follows at once.
    expect(await (await post()).json()).toEqual({ id: prep[1].id, status: 'succeeded', duplicate: true });
    await h.waitForState(r.id, 'WaitForXpuDown');
    expect(h.now().getTime()).toBe(T0);
    expect((await h.reboot(r.id)).history.filter((e) => e.phase === 'command-succeeded')).toHaveLength(2);
  });
});

describe('extensions with an Idempotency-Key', () => {
  it('a repeat with the same key answers the first answer and grants nothing more; a new key grants again', async () => {
    const r = await announce('duo');
    const first = await extend(r.id, 'duo', 120, 'k-1');
    expect(first).toMatchObject({
      status: 200,
      replayed: false,
      json: { granted: 120, deadline: new Date(Date.parse(r.deadline!) + 120_000).toISOString() },
    });
    const again = await extend(r.id, 'duo', 120, 'k-1');
    expect(again).toEqual({ ...first, replayed: true });
    expect((await h.reboot(r.id)).extensions).toHaveLength(1);
    const other = await extend(r.id, 'duo', 60, 'k-2');
    expect(other.json.granted).toBe(60);
    expect((await h.reboot(r.id)).extensions).toHaveLength(2);
  });

  it('parallel repeats of one request grant once and all get the same answer', async () => {
    const r = await announce('cycler');
    const answers = await Promise.all(Array.from({ length: 8 }, () => extend(r.id, 'cycler', 90, 'same-request')));
    for (const a of answers) expect({ status: a.status, json: a.json }).toEqual({ status: 200, json: answers[0].json });
    expect(answers.filter((a) => !a.replayed)).toHaveLength(1);
    const after = await h.reboot(r.id);
    expect(after.extensions).toHaveLength(1);
    expect(after.deadline).toBe(new Date(Date.parse(r.deadline!) + 90_000).toISOString());
    expect(phases(after).filter((p) => p === 'extended')).toHaveLength(1);
  });

  it('a refused request repeated with its key is answered the same 409 and counted once', async () => {
    const r = await announce('lax');
    expect((await extend(r.id, 'lax', 600)).status).toBe(200); // all of maxExtensionSeconds
    const refused = await Promise.all(Array.from({ length: 4 }, () => extend(r.id, 'lax', 30, 'late-ask')));
    for (const a of refused)
      expect({ status: a.status, json: a.json }).toEqual({
        status: 409,
        json: { error: 'NoExtensionSecondsLeft', message: expect.any(String) },
      });
    expect(new Set(refused.map((a) => a.json.message)).size).toBe(1);
    const after = await h.reboot(r.id);
    expect(after.refusals).toHaveLength(1);
    expect(after.refusalCount).toBe(1);
    expect((await extend(r.id, 'lax', 30, 'late-ask')).replayed).toBe(true);
  });
});

describe('reboot ids', () => {
  it('a start replayed after a crash between the id mapping and the reboot write creates that reboot, once', async () => {
    const faulty = failingOnce(h.stack.deps.store, 'createReboot');
    const ingest = createIngestHandler({ ...h.stack.deps, store: faulty.store });
    const at = h.now().toISOString();
    const ev: NativeEvent = {
      id: 'crash-between',
      type: 'xpu.reboot.pending',
      node: 'strict',
      xpu: 'dpu0',
      time: at,
      receivedAt: at,
      source: 'native',
      dedupKey: 'native:strict:crash-between',
      data: {},
    };
    faulty.arm();
    await expect(ingest(ev)).rejects.toThrow(/injected/);
    const mapped = await h.stack.deps.store.rebootIdOfEvent(ev.dedupKey);
    expect(mapped).toMatch(/^xr-[0-9a-z]{26}$/);
    expect(await h.stack.deps.store.getReboot(mapped!)).toBeUndefined();

    expect(await ingest(ev)).toEqual({ kind: 'started', rebootId: mapped });
    expect(await ingest(ev)).toEqual({ kind: 'duplicate' });
    const reboots = await h.reboots('strict');
    expect(reboots.map((x) => x.id)).toEqual([mapped]);
    await h.waitForState(mapped!, 'PrepareHost');
  });

  it('a replay of an event that started a reboot under an old-style id finds that reboot', async () => {
    const at = h.now().toISOString();
    const ev: NativeEvent = {
      id: 'before-upgrade',
      type: 'xpu.reboot.pending',
      node: 'wary',
      xpu: 'dpu0',
      time: at,
      receivedAt: at,
      source: 'native',
      dedupKey: 'native:wary:before-upgrade',
      data: {},
    };
    const old = legacyRebootId('xpu', ev.dedupKey);
    const node = (await h.stack.deps.inventory()).node('wary')!;
    expect(await h.stack.deps.store.createReboot(newXpuReboot(old, node, 'dpu0', ev, 'planned'))).toBe(true);
    expect((await h.stack.deps.store.claimXpu('wary', 'dpu0', old)).ok).toBe(true);

    expect(await createIngestHandler(h.stack.deps)(ev)).toEqual({ kind: 'started', rebootId: old });
    expect((await h.reboots('wary')).map((x) => x.id)).toEqual([old]);
    await h.waitForState(old, 'PrepareHost');
  });
});
