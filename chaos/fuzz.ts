// Fuzzing both webhooks: generated bodies, seeded from the shapes real BMCs and agents send, through the
// real API app in-process. Checks: never a 5xx, and a rejected request changes nothing (no event queued, no store
// write). Used by test/unit/webhook-fuzz.test.ts (10,000 bodies) and `npm run chaos` (100,000).
import fc from 'fast-check';
import { hashToken, InventoryIndex, parseInventory } from '../lambdas/core/inventory.ts';
import { loadMapping } from '../lambdas/core/redfish/mapping.ts';
import { createApiApp } from '../lambdas/handlers/api.ts';
import { silentLogger, type Deps } from '../lambdas/handlers/deps.ts';
import type { NativeEvent } from '../lambdas/core/types.ts';
import type { CommandSignal, EventQueue, RebootStore, Workflows } from '../lambdas/ports/index.ts';

const OPERATOR = 'operator-token-fuzz';
const AGENT = 'agent-token-fuzz-a';
const BMC = 'bmc-token-fuzz-a';

export interface FuzzResult {
  runs: number;
  seed: number;
  byStatus: Record<string, number>;
  accepted: number;
  violations: string[];
}

// ---- arbitraries: the pieces real payloads are made of, recombined and broken

const SYSTEMS = [
  '/redfish/v1/Systems/system',
  '/redfish/v1/Systems/Bluefield',
  '/redfish/v1/Systems/1',
  '/redfish/v1/Chassis/1',
  '/redfish/v1/Managers/bmc',
  '/redfish/v1/Systems/unknown',
];
const MESSAGE_IDS = [
  'XpuReboot.1.0.0.RebootPending',
  'XpuReboot.1.0.0.Ready',
  'XpuReboot.1.0.0.Crashed',
  'XpuReboot.1.0.0.HostRebootRequested',
  'ResourceEvent.1.0.ResourcePoweredOff',
  'ResourceEvent.1.4.3.ResourcePoweringOff',
  'ResourceEvent.1.0.ResourcePoweredOn',
  'ResourceEvent.1.0.ResourcePowerStateChanged',
  'Alert.1.0.0.DCPowerOff',
  'Alert.1.0.DCPowerOn',
  'OpenBMC.0.1.BIOSBoot',
  'SYS1001',
  'SYS1003',
  'iDRAC.2.8.SYS1001',
  'Base.1.8.Success',
  'HeartbeatEvent',
  '',
];
const weird = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.object({ maxDepth: 1 }),
);
const iso = fc.integer({ min: Date.parse('2000-01-01'), max: Date.parse('2100-01-01') }).map((t) => new Date(t).toISOString());
const timestamp = fc.oneof(
  iso,
  iso.map((s) => s.replace('Z', '+05:30')),
  fc.constant('not a time'),
  fc.string(),
);

const redfishRecord = fc.record(
  {
    EventType: fc.oneof(fc.constantFrom('Alert', 'StatusChange', 'ResourceUpdated', 'Other'), weird),
    EventId: fc.oneof(fc.string({ maxLength: 20 }), fc.integer()),
    EventTimestamp: timestamp,
    Severity: fc.oneof(fc.constantFrom('OK', 'Warning', 'Critical'), weird),
    Message: fc.string({ maxLength: 60 }),
    MessageId: fc.oneof(fc.constantFrom(...MESSAGE_IDS), fc.string({ maxLength: 40 }), weird),
    MessageArgs: fc.oneof(
      fc.array(
        fc.oneof(fc.constantFrom(...SYSTEMS), fc.constantFrom('On', 'Off', '300', 'firmware update'), fc.string({ maxLength: 20 })),
        { maxLength: 4 },
      ),
      weird,
    ),
    OriginOfCondition: fc.oneof(
      fc.record({ '@odata.id': fc.oneof(fc.constantFrom(...SYSTEMS), fc.string({ maxLength: 30 })) }),
      fc.constantFrom(...SYSTEMS),
      weird,
    ),
    Context: fc.oneof(fc.constantFrom('fuzz-a', 'fuzz-a.dpu0', 'fuzz-b.dpu0'), fc.string({ maxLength: 20 })),
  },
  { requiredKeys: [] },
);

const redfishBody = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .record(
        {
          '@odata.type': fc.constantFrom('#Event.v1_7_0.Event', '#Event.v1_0_0.Event'),
          Id: fc.string({ maxLength: 8 }),
          Name: fc.constant('Event Array'),
          Context: fc.string({ maxLength: 20 }),
          Events: fc.array(redfishRecord, { maxLength: 5 }),
        },
        { requiredKeys: ['Events'] },
      )
      .map((o) => JSON.stringify(o)),
  },
  { weight: 2, arbitrary: redfishRecord.map((r) => JSON.stringify(r)) },
  { weight: 1, arbitrary: fc.array(redfishRecord, { maxLength: 3 }).map((r) => JSON.stringify(r)) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.json({ maxDepth: 3 }),
      fc.constant(''),
      fc.constant('{"Events":'),
      fc.constant('\u0000\uffff'),
    ),
  },
);

const NATIVE_TYPES = [
  'xpu.reboot.pending',
  'xpu.crashed',
  'xpu.down',
  'xpu.ready',
  'host.reboot.requested',
  'host.down',
  'host.ready',
  'xpu.rebooted',
  'nonsense',
];
const nativeBody = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .record(
        {
          id: fc.oneof(fc.string({ minLength: 1, maxLength: 30 }), fc.string({ maxLength: 300 }), weird),
          type: fc.oneof(fc.constantFrom(...NATIVE_TYPES), weird),
          node: fc.oneof(fc.constantFrom('fuzz-a', 'fuzz-b', 'ghost'), weird),
          xpu: fc.oneof(fc.constantFrom('dpu0', 'dpu1', 'nic9'), fc.constant(null), weird),
          time: fc.oneof(timestamp, fc.constant(null)),
          data: fc.oneof(
            fc.record(
              {
                noticeSeconds: fc.oneof(fc.integer({ min: -10, max: 100_000 }), weird),
                reason: fc.oneof(fc.string({ maxLength: 40 }), weird),
                tenant: fc.oneof(fc.string({ maxLength: 10 }), weird),
              },
              { requiredKeys: [] },
            ),
            weird,
          ),
        },
        { requiredKeys: [] },
      )
      .map((o) => JSON.stringify(o)),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 3 }), fc.constant(''), fc.constant('[]'), fc.constant('{"id":')),
  },
);

const request = fc.oneof(
  fc.record({ path: fc.constant('/v1/events/redfish'), token: fc.constantFrom(BMC, BMC, BMC, AGENT, 'nope', ''), body: redfishBody }),
  fc.record({ path: fc.constant('/v1/events'), token: fc.constantFrom(AGENT, AGENT, OPERATOR, BMC, 'nope', ''), body: nativeBody }),
);

// ---- the app, over a recording queue and store

const INVENTORY = `
nodes:
  - id: fuzz-a
    trusted: true
    redfishSystem: /redfish/v1/Systems/system
    bmcToken: ${BMC}
    agentToken: ${AGENT}
    xpus:
      - { id: dpu0, redfishSystem: /redfish/v1/Systems/Bluefield }
      - { id: dpu1 }
  - id: fuzz-b
    trusted: false
    agentToken: agent-token-fuzz-b
    xpus: [{ id: dpu0 }]
`;

export async function runFuzz(opts: { runs: number; seed: number }): Promise<FuzzResult> {
  const index = new InventoryIndex(parseInventory(INVENTORY, 'fuzz inventory'));
  const queued: NativeEvent[] = [];
  const writes: string[] = [];
  const queue: EventQueue = {
    async send(events) {
      queued.push(...events);
    },
  };
  // Every store call is a write as far as the webhooks go (they only ever touch the BMC's last-seen time).
  const store = new Proxy({} as RebootStore, {
    get: (_t, name) => async () => {
      writes.push(String(name));
      return undefined;
    },
  });
  const unused = new Proxy({}, { get: () => async () => undefined });
  const deps: Deps = {
    store,
    queue,
    workflows: unused as Workflows,
    signal: unused as CommandSignal,
    clock: { now: () => new Date('2030-01-01T00:00:00Z') },
    inventory: async () => index,
    metrics: { count: () => {} },
    logger: silentLogger,
  };
  const app = createApiApp({ ...deps, operatorTokenHash: hashToken(OPERATOR), mapping: loadMapping(null) });

  const result: FuzzResult = { runs: 0, seed: opts.seed, byStatus: {}, accepted: 0, violations: [] };
  const check = await fc.check(
    fc.asyncProperty(request, async (req) => {
      const before = { queued: queued.length, writes: writes.length };
      const res = await app.request(req.path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(req.token ? { authorization: `Bearer ${req.token}` } : {}) },
        body: req.body,
      });
      result.runs++;
      result.byStatus[res.status] = (result.byStatus[res.status] ?? 0) + 1;
      if (res.status >= 500) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
      if (res.status === 202) {
        result.accepted++;
        return;
      }
      if (queued.length !== before.queued || writes.length !== before.writes)
        throw new Error(
          `rejected with ${res.status} but queued ${queued.length - before.queued} event(s) and made ${writes.length - before.writes} store call(s)`,
        );
      const body = (await res.json()) as { error?: unknown; message?: unknown };
      if (typeof body.error !== 'string' || typeof body.message !== 'string')
        throw new Error(`rejected with ${res.status} without the error shape: ${JSON.stringify(body)}`);
    }),
    { numRuns: opts.runs, seed: opts.seed, endOnFailure: true },
  );
  if (check.failed) {
    result.violations.push(
      `seed ${opts.seed}, path ${JSON.stringify(check.counterexamplePath)}: ${String(check.errorInstance)}; shrunk case ${fc.stringify(check.counterexample)}`,
    );
  }
  return result;
}
