// Property tests: whatever reaches the webhook, parse+translate answer with a structured result and never a half event.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HOST_REBOOT_METHODS } from '../../lambdas/core/redfish/mapping.ts';
import { parseRedfishPayload } from '../../lambdas/core/redfish/parse.ts';
import { translateRedfishEvent } from '../../lambdas/core/redfish/translate.ts';
import { NATIVE_EVENT_TYPES, type NodeDef } from '../../lambdas/core/types.ts';
import { inventory } from '../fixtures/redfish/inventory.ts';
import { defaultMapping, RECEIVED_AT } from '../fixtures/redfish/load.ts';

const PARSE_ERRORS = ['PayloadTooLarge', 'InvalidEncoding', 'MalformedJson', 'TooDeeplyNested', 'NotAnEvent', 'MalformedRecord'];

function isIso(s: unknown): boolean {
  return typeof s === 'string' && !Number.isNaN(Date.parse(s)) && new Date(s).toISOString() === s;
}

/** Runs the whole path and asserts the shape of every outcome; returns the dedup keys for determinism checks. */
function check(raw: string | Uint8Array, node: NodeDef): string[] {
  const parsed = parseRedfishPayload(raw);
  if (!parsed.ok) {
    expect([400, 413]).toContain(parsed.status);
    expect(PARSE_ERRORS).toContain(parsed.error);
    expect(typeof parsed.message).toBe('string');
    return [];
  }
  const out = translateRedfishEvent(parsed.event, { node, inventory, mapping: defaultMapping, receivedAt: RECEIVED_AT });
  if (out.kind === 'forbidden') {
    expect(out.message).toMatch(/names node/);
    return [];
  }
  expect(out.kind).toBe('ok');
  expect(out.accepted.length + out.ignored.length).toBe(parsed.event.records.length);
  const indexes = new Set(out.ignored.map((i) => i.index));
  expect(indexes.size).toBe(out.ignored.length);
  for (const ig of out.ignored) {
    expect(typeof ig.reason).toBe('string');
    expect(typeof ig.code).toBe('string');
  }
  for (const ev of out.accepted) {
    expect(ev.id).toMatch(/^rf-[0-9a-f]{32}$/);
    expect(NATIVE_EVENT_TYPES).toContain(ev.type);
    expect(ev.node).toBe(node.id);
    if (ev.type.startsWith('xpu.')) expect(node.xpus.map((x) => x.id)).toContain(ev.xpu);
    else expect(ev.xpu).toBeUndefined();
    expect(isIso(ev.time)).toBe(true);
    expect(ev.receivedAt).toBe(RECEIVED_AT);
    expect(ev.source).toBe('redfish');
    expect(ev.dedupKey.startsWith(`${node.id}:redfish:`)).toBe(true);
    expect(typeof ev.messageId === 'string' && ev.messageId.length > 0).toBe(true);
    const data = ev.data ?? {};
    expect(Object.getPrototypeOf(data)).toBe(Object.prototype);
    for (const [k, v] of Object.entries(data)) {
      if (k === 'noticeSeconds') expect(typeof v === 'number' && Number.isFinite(v) && v > 0).toBe(true);
      else if (k === 'reason') expect(typeof v === 'string' && v.length > 0 && v.length <= 1024).toBe(true);
      else if (k === 'method') expect(HOST_REBOOT_METHODS).toContain(v);
      else if (k === 'tenant') expect(typeof v === 'string' && v.length > 0).toBe(true);
      else throw new Error(`unexpected data field ${k}`);
    }
  }
  return out.accepted.map((e) => e.dedupKey);
}

const nodeArb = fc.constantFrom(...inventory.nodes);

const messageIds = [
  'XpuReboot.1.0.RebootPending',
  'XpuReboot.1.0.0.Crashed',
  'XpuReboot.1.0.Ready',
  'XpuReboot.1.0.HostRebootRequested',
  'ResourceEvent.1.4.3.ResourcePoweredOff',
  'ResourceEvent.1.0.ResourcePowerStateChanged',
  'Platform.1.3.2.PlatformResetWatchdogTimer',
  'Platform.1.3.2.OperatingSystemCrash',
  'Power.1.2.0.ChassisPoweredOff',
  'OpenBMC.0.1.DCPowerOff',
  'OpenBMC.0.5.BIOSBoot',
  'Alert.1.0.0.SystemPowerOff',
  'iLOEvents.2.1.ServerPoweredOn',
  'SYS1001',
  'TMP0120',
  'EventLog.1.0.Alert',
  '',
  '...',
];
const origins = [
  '/redfish/v1/Systems/system',
  '/redfish/v1/Systems/Bluefield/',
  '/redfish/v1/Systems/1/Memory',
  '/redfish/v1/Systems/Card2-SoC',
  '/redfish/v1/Chassis/Enclosure',
  'https://bmc/redfish/v1/Systems/IPU0',
  'System Board',
];
const contexts = ['node-a', 'node-b', 'node-a.dpu0', 'node-hpe.dpu1', 'Default Context', 'node-cray:x', ''];

const recordArb = fc.record(
  {
    MessageId: fc.oneof(fc.constantFrom(...messageIds), fc.string(), fc.anything()),
    MessageArgs: fc.oneof(
      fc.array(
        fc.oneof(
          fc.constantFrom('600', '0', '-1', 'On', 'Off', 'shell', 'PERST#', '/redfish/v1/Systems/Card1-SoC', 'x'.repeat(2000)),
          fc.jsonValue(),
        ),
        { maxLength: 4 },
      ),
      fc.jsonValue(),
    ),
    OriginOfCondition: fc.oneof(
      fc.constantFrom(...origins),
      fc.constantFrom(...origins).map((o) => ({ '@odata.id': o, Status: { State: 'Enabled' } })),
      fc.jsonValue(),
    ),
    EventTimestamp: fc.oneof(
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString().replace('Z', '+0300')),
      fc.string(),
      fc.jsonValue(),
    ),
    EventTimeStamp: fc.string(),
    Created: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
    EventId: fc.oneof(fc.string(), fc.integer(), fc.jsonValue()),
    MemberId: fc.oneof(fc.string(), fc.integer()),
    Context: fc.oneof(fc.constantFrom(...contexts), fc.jsonValue()),
    Message: fc.oneof(fc.string(), fc.jsonValue()),
    Oem: fc.jsonValue(),
    __proto__: fc.jsonValue(),
  },
  { requiredKeys: [] },
);

const eventArb = fc.record(
  {
    '@odata.type': fc.constantFrom('#Event.v1_7_0.Event', '#EventService.1.0.0.Event'),
    Context: fc.oneof(fc.constantFrom(...contexts), fc.jsonValue()),
    Id: fc.oneof(fc.string(), fc.integer()),
    Events: fc.array(recordArb, { maxLength: 6 }),
  },
  { requiredKeys: ['Events'] },
);

describe('parse + translate never throw and never produce a half event', () => {
  it('on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), nodeArb, (bytes, node) => void check(bytes, node)),
      { numRuns: 300 },
    );
  });

  it('on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 512 }), nodeArb, (s, node) => void check(s, node)),
      { numRuns: 300 },
    );
  });

  it('on arbitrary JSON values, also wrapped as Events', () => {
    fc.assert(
      fc.property(fc.jsonValue(), nodeArb, (v, node) => {
        check(JSON.stringify(v) ?? 'null', node);
        check(JSON.stringify({ Events: Array.isArray(v) ? v : [v] }), node);
      }),
      { numRuns: 300 },
    );
  });

  it('on Event-shaped payloads mixing real MessageIds, origins, contexts and junk; the same payload gives the same keys', () => {
    let accepted = 0;
    fc.assert(
      fc.property(eventArb, nodeArb, (ev, node) => {
        const text = JSON.stringify(ev);
        const a = check(text, node);
        const b = check(new TextEncoder().encode(text), node);
        expect(b).toEqual(a);
        accepted += a.length;
      }),
      // Seeded: the count below is of this one run (unseeded, it was seen at 49 once).
      { numRuns: 1000, seed: 20261207 },
    );
    // The generator must reach the accepting paths, or the property proves nothing about events.
    console.log(`Event-shaped payloads: ${accepted} records accepted in 1,000 runs`);
    expect(accepted).toBeGreaterThan(50);
  });
});
