// Property test against the live webhook (HTTP, in-process stack): arbitrary JSON, arbitrary bytes, mutated vendor
// payloads and Event-shaped junk. Never a 5xx; 2xx exactly for valid Events; every event queued is complete and
// is applied (nothing left in the queue or the DLQ).
import fc from 'fast-check';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NATIVE_EVENT_TYPES } from '../../lambdas/core/types.ts';
import { fixtureText, startWebhookStack, type WebhookStack } from '../fixtures/redfish/webhook-stack.ts';

const NODES = [
  'node-a',
  'node-b',
  'node-dell',
  'node-hpe',
  'node-intel',
  'node-cray',
  'node-gigabyte',
  'node-foxconn',
  'node-zt',
  'node-p',
];
const NODE_IDS = new Set(NODES);
const MAX_BYTES = 256 * 1024;

let h: WebhookStack;
beforeAll(async () => {
  h = await startWebhookStack({ at: '2025-03-02T12:00:30Z' });
});
afterAll(async () => {
  await h?.close();
});

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function depth(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  const children = Array.isArray(v) ? v : Object.values(v);
  return 1 + Math.max(0, ...children.map(depth));
}

/** The node a Context names (`node-b`, `node-b.dpu0`, `node-b:label`), if any. */
function namedNode(ctx: unknown): string | undefined {
  if (typeof ctx !== 'string' || ctx.trim() === '') return undefined;
  const head = ctx.trim().split(':')[0].trim();
  if (NODE_IDS.has(head)) return head;
  const dot = head.indexOf('.');
  return dot > 0 && NODE_IDS.has(head.slice(0, dot)) ? head.slice(0, dot) : undefined;
}

/** What the contract says the webhook answers for these bytes, worked out without the server's code. */
function expectedStatus(bytes: Uint8Array, node: string): { status: number; records?: number } {
  if (bytes.byteLength > MAX_BYTES) return { status: 413 };
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return { status: 400 };
  }
  if (!isObject(doc) || !Array.isArray(doc.Events) || depth(doc) > 64) return { status: 400 };
  if (!doc.Events.every(isObject)) return { status: 400 };
  const contexts = [doc.Context, ...(doc.Events as Array<Record<string, unknown>>).map((r) => r.Context)];
  if (contexts.some((c) => namedNode(c) !== undefined && namedNode(c) !== node)) return { status: 403 };
  return { status: 202, records: doc.Events.length };
}

const isoUtc = z.string().refine((s) => !Number.isNaN(Date.parse(s)) && new Date(s).toISOString() === s, 'ISO UTC');
const CompleteEvent = z.strictObject({
  id: z.string().regex(/^rf-[0-9a-f]{32}$/),
  type: z.enum(NATIVE_EVENT_TYPES),
  node: z.enum(NODES as [string, ...string[]]),
  xpu: z.string().min(1).optional(),
  time: isoUtc,
  /** The record had no usable timestamp: `time` is the receipt (lambdas/core/types.ts). */
  timeIsReceipt: z.literal(true).optional(),
  receivedAt: isoUtc,
  source: z.literal('redfish'),
  dedupKey: z.string().regex(/^node-[a-z]+:redfish:(id|content):[0-9a-f]{64}$/),
  messageId: z.string().min(1),
  data: z.record(z.string(), z.union([z.string().min(1), z.number().positive()])),
  /** Who sent it (docs/reboot-model.md): the posting node's BMC. */
  by: z.string().regex(/^bmc:node-[a-z]+$/),
});

const statuses = new Map<number, number>();

async function check(bytes: Uint8Array, node: string) {
  const before = h.sent.length;
  const res = await h.redfish(node, bytes);
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  expect(res.status).toBeLessThan(500);
  const want = expectedStatus(bytes, node);
  expect(res.status, res.text).toBe(want.status);
  const sent = h.sent.slice(before);
  if (res.status === 202) {
    expect(res.json.accepted + res.json.ignored).toBe(want.records);
    expect(sent).toHaveLength(res.json.accepted);
    for (const ev of sent) {
      expect(ev.node).toBe(node);
      expect(ev.by).toBe(`bmc:${node}`);
      expect(CompleteEvent.safeParse(ev).error).toBeUndefined();
    }
  } else {
    expect(res.json).toMatchObject({ error: expect.any(String), message: expect.any(String) });
    expect(sent).toEqual([]);
  }
}

const nodeArb = fc.constantFrom(...NODES);
const utf8 = (s: string) => new TextEncoder().encode(s);

const FIXTURES = [
  'bluefield-dc-off.json',
  'cray-off.json',
  'dell-bare.json',
  'dell-negative-multi.json',
  'dmtf-event-group.json',
  'dmtf-expanded-origin.json',
  'foxconn-dc-off.json',
  'hpe-object-origin.json',
  'hpe-string-origin.json',
  'intel-system-off.json',
  'xpureboot-messages.json',
  'xpureboot-pending.json',
];

const junk = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant(undefined));
const recordArb = fc.record(
  {
    MessageId: fc.oneof(
      {
        weight: 6,
        arbitrary: fc.constantFrom(
          'XpuReboot.1.0.RebootPending',
          'XpuReboot.1.0.0.Crashed',
          'XpuReboot.1.2.Ready',
          'XpuReboot.1.0.HostRebootRequested',
          'ResourceEvent.1.4.3.ResourcePoweredOff',
          'ResourceEvent.1.0.ResourcePowerStateChanged',
          'Platform.1.3.2.PlatformResetWatchdogTimer',
          'OpenBMC.0.1.DCPowerOff',
          'OpenBMC.0.5.BIOSBoot',
          'Alert.1.0.0.SystemPowerOff',
          'iLOEvents.2.1.ServerPoweredOff',
          'SYS1001',
          'IDRAC.2.9.ASR0001',
          'TMP0120',
          'ZT_Event_Service_Log.1.0.Alert',
          '.',
          '..Key',
          'A.B.',
        ),
      },
      { weight: 1, arbitrary: fc.string() },
      { weight: 1, arbitrary: junk },
    ),
    EventId: fc.oneof(fc.string(), fc.integer(), fc.double(), junk),
    MemberId: fc.oneof(fc.string(), fc.integer(), junk),
    EventTimestamp: fc.oneof(
      fc.constantFrom(
        '2025-03-02T12:00:00+00:00',
        '2025-03-02T15:00:00+0300',
        '2025-03-02T12:00:00Z',
        '1970-01-01T00:00:00Z',
        '2099-01-01T00:00:00Z',
        '2025-02-30T00:00:00Z',
        'yesterday',
      ),
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      junk,
    ),
    EventTimeStamp: junk,
    Created: junk,
    OriginOfCondition: fc.oneof(
      fc.constantFrom(
        '/redfish/v1/Systems/Bluefield',
        '/redfish/v1/Systems/system/',
        '/redfish/v1/Systems/1',
        'https://bmc/redfish/v1/Systems/Card2-SoC',
        '/redfish/v1/Chassis/1',
      ),
      fc.record({ '@odata.id': fc.oneof(fc.constantFrom('/redfish/v1/Systems/Bluefield', '/redfish/v1/Systems/QSBP82704274'), junk) }),
      junk,
    ),
    MessageArgs: fc.oneof(
      fc.array(fc.oneof(fc.constantFrom('600', '0', '-5', 'PERST#', 'ipmi', 'On', 'Off', '/redfish/v1/Systems/Bluefield'), junk), {
        maxLength: 4,
      }),
      junk,
    ),
    Message: junk,
    Context: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('$SELF', '$SELF.dpu0', ' $SELF:label ', 'Default Context', 'any string is valid', '') },
      { weight: 1, arbitrary: fc.constantFrom('node-a', 'node-b', 'node-b.dpu0', 'node-dell:x', ' node-hpe ') },
      { weight: 1, arbitrary: junk },
    ),
    Severity: junk,
    Oem: junk,
  },
  { requiredKeys: ['MessageId'] },
);
const eventArb = fc.record(
  {
    '@odata.type': fc.constantFrom('#Event.v1_7_0.Event', '#EventService.1.0.0.Event'),
    Id: junk,
    Name: junk,
    Context: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('$SELF', '$SELF.dpu0', '$SELF:PowerState', 'Default Context') },
      { weight: 1, arbitrary: fc.constantFrom('node-a', 'node-b', 'node-zt:PowerState') },
      { weight: 1, arbitrary: junk },
    ),
    Events: fc.oneof(
      { weight: 8, arbitrary: fc.array(recordArb, { maxLength: 5 }) },
      { weight: 1, arbitrary: fc.array(fc.oneof(recordArb, junk), { minLength: 1, maxLength: 3 }) },
      { weight: 1, arbitrary: junk },
    ),
  },
  { requiredKeys: ['Events'] },
);

describe('the live webhook under arbitrary input', () => {
  it('arbitrary JSON values: never a 5xx, 2xx only for an object with an Events array of objects', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), nodeArb, async (v, node) => check(utf8(JSON.stringify(v) ?? 'null'), node)),
      { numRuns: 50 },
    );
  });

  it('arbitrary bytes and vendor payloads with bytes flipped or cut: never a 5xx, never a half-accepted POST', async () => {
    const mutated = fc
      .record({
        file: fc.constantFrom(...FIXTURES),
        cut: fc.option(fc.nat(), { nil: undefined }),
        flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
      })
      .map(({ file, cut, flips }) => {
        const bytes = utf8(fixtureText(file));
        for (const [at, b] of flips) bytes[at % bytes.length] = b;
        return cut === undefined ? bytes : bytes.slice(0, cut % (bytes.length + 1));
      });
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 512 }), mutated, fc.string().map(utf8)), nodeArb, async (bytes, node) =>
        check(bytes, node),
      ),
      { numRuns: 60 },
    );
  });

  it('Event-shaped payloads with junk in every field: never a 5xx, every accepted record a complete native event', async () => {
    await fc.assert(
      // $SELF in a Context stands for the posting node (a BMC subscribed with its own node's Context).
      fc.asyncProperty(eventArb, nodeArb, async (ev, node) => check(utf8(JSON.stringify(ev).replaceAll('$SELF', node)), node)),
      { numRuns: 100 },
    );
  });

  it('afterwards: every queued event was applied, nothing failed, nothing is parked in the DLQ', async () => {
    // Traffic of its own (seeded, so the same every run): the test stands alone when run by itself (-t),
    // and checks what the properties above queued when run after them.
    for (const [ev, node] of fc.sample(fc.tuple(eventArb, nodeArb), { numRuns: 60, seed: 18 }))
      await check(utf8(JSON.stringify(ev).replaceAll('$SELF', node)), node);
    for (const [bytes, node] of fc.sample(fc.tuple(fc.uint8Array({ maxLength: 64 }), nodeArb), { numRuns: 25, seed: 18 }))
      await check(bytes, node);
    await h.drain();
    // A message that failed once would be invisible for the retry delay: wait past it, then look again.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await h.depth()).toEqual({ queued: 0, dlq: 0 });
    expect(h.errors).toEqual([]);
    for (const d of await h.dropped()) expect(CompleteEvent.safeParse(d.event).error).toBeUndefined();
    // The runs did exercise both sides.
    expect(statuses.get(202) ?? 0).toBeGreaterThan(20);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(20);
    expect(h.sent.length).toBeGreaterThan(10);
  });
});
