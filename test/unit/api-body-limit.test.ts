// A body without Content-Length (chunked) is refused with 413 as soon as it passes 256 KiB: the API stops
// reading there instead of holding the whole stream in memory first (lambdas/handlers/body.ts).
import { describe, expect, it } from 'vitest';
import { hashToken, InventoryIndex, parseInventory } from '../../lambdas/core/inventory.ts';
import { loadMapping } from '../../lambdas/core/redfish/mapping.ts';
import { createApiApp, MAX_BODY_BYTES, type ApiDeps } from '../../lambdas/handlers/api.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';

const index = new InventoryIndex(
  parseInventory('nodes:\n  - { id: n1, bmcToken: bmc-token-n1, agentToken: agent-token-n1, xpus: [{ id: dpu0 }] }\n'),
);
const queued: unknown[] = [];
const app = createApiApp({
  mapping: loadMapping(null),
  operatorTokenHash: hashToken('operator'),
  inventory: async () => index,
  logger: silentLogger,
  clock: { now: () => new Date('2030-01-01T00:00:00.000Z') },
  store: { touchBmc: async () => {} },
  queue: { send: async (evs: unknown[]) => void queued.push(...evs) },
  metrics: { count: () => {} },
} as unknown as ApiDeps);

/** A body of `total` bytes in 64 KiB chunks, counting what the reader pulled. */
function endless(total: number) {
  const pulled = { bytes: 0 };
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (pulled.bytes >= total) return c.close();
      pulled.bytes += chunk.byteLength;
      c.enqueue(chunk);
    },
  });
  return { body, pulled };
}

describe('a chunked body over the limit', () => {
  it.each([
    ['/v1/events/redfish', 'bmc-token-n1'],
    ['/v1/events', 'agent-token-n1'],
  ])('%s: 413 after reading little more than 256 KiB of a 64 MiB stream', async (path, token) => {
    const { body, pulled } = endless(64 * 1024 * 1024);
    const res = await app.request(path, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: 'PayloadTooLarge' });
    expect(pulled.bytes).toBeLessThan(MAX_BODY_BYTES + 4 * 64 * 1024);
    expect(queued).toEqual([]);
  });

  it('a body of exactly the limit is still read whole', async () => {
    const text = JSON.stringify({ Events: [], pad: '' });
    const padded = JSON.stringify({ Events: [], pad: ' '.repeat(MAX_BODY_BYTES - text.length) });
    expect(padded.length).toBe(MAX_BODY_BYTES);
    const res = await app.request('/v1/events/redfish', {
      method: 'POST',
      headers: { authorization: 'Bearer bmc-token-n1', 'content-type': 'application/json' },
      body: new Blob([padded]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 0, ignored: 0 });
  });
});
