// Black-box acceptance audit of Redfish ingestion (CONTRACT 3, 4 and 7.1) through one real local stack: the
// webhook route over HTTP, payloads written here after the quirks of /work/shared/redfish/README.md, fake
// agents that answer over the real routes, state read back through the API. Only what redfish-webhook,
// redfish-property and the contract audits do not already check.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../local/config.ts';
import { startStack, type Stack } from '../../local/stack.ts';
import type { Logger } from '../../lambdas/handlers/deps.ts';
import { OPERATOR_TOKEN, ROOT, api, waitFor, waitForReboot } from '../support/stack.ts';

const HOST = '/redfish/v1/Systems/system';
const DPU = '/redfish/v1/Systems/Bluefield';
const NOTICE = 120;
/** A BMC clock at the epoch runs from 1970-01-01T01:00Z at this instant. */
const EPOCH_BASE = Date.now();

/** One node per case, so each case reads its own reboots; tw* have two xPUs, bare has no redfishSystem. */
const SINGLE = [
  'obj',
  'str',
  'exp',
  'sub',
  'url',
  'none',
  'hsub',
  'alien',
  'nomsg',
  'crash',
  'multi',
  'ph',
  'tnz',
  'tcl',
  'toff',
  'thrs',
  'tyrs',
  'tepo',
  'tfut',
  'dup',
  'rst',
  'f5a',
  'f5b',
  'many',
  'auth',
  'unk',
  'ver',
  'mix',
  'late',
  'ooo',
  'mem',
  'hr',
  'g1',
  'g2',
  'late2',
  'big',
  'mixc',
  'crash2',
  'f5c',
  'opm',
  'lateN',
  'nextN',
  'late3',
  'num',
];
const INVENTORY = `
policy:
  xpuReboot:
    noticeSeconds: ${NOTICE}
    maxExtensionSeconds: 600
    recoverySeconds: 30
    commandSeconds: 20
nodes:
${SINGLE.map(
  (id) =>
    `  - { id: ${id}, trusted: true, redfishSystem: ${HOST}, bmcToken: bmc-${id}, agentToken: agent-${id}, xpus: [{ id: dpu0, redfishSystem: ${DPU} }] }`,
).join('\n')}
  - { id: tw, trusted: true, redfishSystem: /redfish/v1/Systems/1, bmcToken: bmc-tw, agentToken: agent-tw,
      xpus: [{ id: dpu0, redfishSystem: /redfish/v1/Systems/Card1-SoC }, { id: dpu1, redfishSystem: /redfish/v1/Systems/Card2-SoC }] }
  - { id: tw2, trusted: true, redfishSystem: /redfish/v1/Systems/1, bmcToken: bmc-tw2, agentToken: agent-tw2,
      xpus: [{ id: dpu0, redfishSystem: /redfish/v1/Systems/Card1-SoC }, { id: dpu1, redfishSystem: /redfish/v1/Systems/Card2-SoC }] }
  - { id: same, trusted: true, redfishSystem: ${HOST}, bmcToken: bmc-same, agentToken: agent-same, xpus: [{ id: dpu0, redfishSystem: ${HOST} }] }
  - { id: other, trusted: true, redfishSystem: ${HOST}, bmcToken: bmc-other, agentToken: agent-other, xpus: [{ id: dpu0, redfishSystem: ${DPU} }] }
`;
/** An operator's own mapping (CONTRACT 4: extended in a file without code changes): a vendor's own notice message. */
const OPERATOR_MAPPING = `
version: 1
rules:
  - registry: AcmeDpu
    message: RestartScheduled
    withoutOrigin: xpu
    type: xpu.reboot.pending
    args: { noticeSeconds: 1, reason: 0 }
`;
const AGENTS = [...[...SINGLE, 'same'].flatMap((n) => [n, `${n}.dpu0`]), 'tw', 'tw.dpu0', 'tw.dpu1', 'tw2', 'tw2.dpu0', 'tw2.dpu1'];

let stack: Stack;
let url: string;
let stopped = false;
const seen = new Map<string, Array<{ id: string; type: string }>>();
const errors: string[] = [];

/** An agent that answers `succeeded` to every command it takes (each command once). */
async function fakeAgent(agent: string) {
  while (!stopped) {
    const res = await api(url, `/v1/agents/${agent}/commands?wait=1`, { token: OPERATOR_TOKEN }).catch(() => undefined);
    if (res?.status !== 200) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    for (const cmd of res.json) {
      const list = seen.get(agent) ?? [];
      if (!list.some((c) => c.id === cmd.id)) list.push(cmd);
      seen.set(agent, list);
      await api(url, `/v1/agents/${agent}/commands/${cmd.id}`, { token: OPERATOR_TOKEN, body: { status: 'succeeded' } }).catch(() => {});
    }
  }
}

beforeAll(async () => {
  const base = join(ROOT, '.test-tmp');
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'redfish-audit-s8-'));
  const nodesFile = join(dir, 'nodes.yaml');
  writeFileSync(nodesFile, INVENTORY);
  const mappingFile = join(dir, 'mapping.yaml');
  writeFileSync(mappingFile, OPERATOR_MAPPING);
  const config = parseConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    MQTT_PORT: '-1',
    DATA_DIR: join(dir, 'data'),
    NODES_FILE: nodesFile,
    OPERATOR_TOKEN,
    REDFISH_MAPPING_FILE: mappingFile,
    INGEST_VISIBILITY_SECONDS: '1',
    INGEST_CONCURRENCY: '2',
  });
  const logger: Logger = { info: () => {}, warn: () => {}, error: (msg, extra) => void errors.push(`${msg} ${JSON.stringify(extra)}`) };
  stack = await startStack({ config, logger });
  url = stack.url;
  for (const a of AGENTS) void fakeAgent(a);
}, 60_000);

afterAll(async () => {
  stopped = true;
  await stack?.close();
});

// --- payloads, written after the shapes BMCs send (README "Quirks seen in real payloads") -------------------

type Rec = Record<string, unknown>;

/** A pushed Event as bmcweb (BlueField) sends it: root Context, Event Array, records as given. */
function event(records: Rec[], extra: Rec = {}): Rec {
  return { '@odata.type': '#Event.v1_7_0.Event', Id: '1', Name: 'Event Array', Context: 'Default Context', Events: records, ...extra };
}

/** One XpuReboot record, object origin on the xPU unless told otherwise. */
function xr(key: string, id: string, o: { args?: unknown[]; ts?: string; origin?: unknown; message?: string | null } = {}): Rec {
  return {
    EventType: 'Alert',
    EventId: id,
    ...(o.ts ? { EventTimestamp: o.ts } : {}),
    MessageSeverity: 'Warning',
    ...(o.message === null ? {} : { Message: o.message ?? `xPU message ${key}` }),
    MessageId: `XpuReboot.1.0.${key}`,
    MessageArgs: o.args ?? [],
    ...('origin' in o ? (o.origin === undefined ? {} : { OriginOfCondition: o.origin }) : { OriginOfCondition: { '@odata.id': DPU } }),
  };
}

const pending = (id: string, o: Parameters<typeof xr>[2] = {}) => xr('RebootPending', id, { args: ['60', 'firmware update'], ...o });

/** A native event from the node's agent (coordinator time unless `time` is given). */
const native = (node: string, id: string, type: string, data: Rec = {}) =>
  api(url, '/v1/events', {
    token: `agent-${node}`,
    body: { id, type, node, ...(type.startsWith('xpu.') ? { xpu: 'dpu0' } : {}), data },
  });
const powerOff = (id: string, ts: string) => ({
  EventId: id,
  EventTimestamp: ts,
  MessageId: 'ResourceEvent.1.4.3.ResourcePoweredOff',
  MessageArgs: [DPU],
  OriginOfCondition: { '@odata.id': DPU },
});
/** POST /v1/events/redfish with the node's bmcToken (or as told). */
async function post(node: string, body: unknown, o: { token?: string | null; query?: string; headers?: Record<string, string> } = {}) {
  const token = o.token === undefined ? `bmc-${node}` : o.token;
  const res = await fetch(`${url}/v1/events/redfish${o.query ?? ''}`, {
    method: 'POST',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json', ...o.headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, headers: res.headers };
}

const reboots = async (node: string) =>
  ((await api(url, `/v1/reboots?node=${node}`, { token: OPERATOR_TOKEN })).json.items as any[]).sort((a, b) => a.id.localeCompare(b.id));
const getReboot = async (id: string) => (await api(url, `/v1/reboots/${id}`, { token: OPERATOR_TOKEN })).json;
const rebootOf = (node: string, kind = 'xpu') =>
  waitFor(`a ${kind} reboot of ${node}`, async () => (await reboots(node)).find((r: any) => r.kind === kind), 15_000, 50);
const until = (id: string, ok: (r: any) => boolean, what: string) => waitForReboot(url, id, ok, what, 25_000);
const phases = (r: any) => r.history.map((h: any) => h.phase as string);

/** Waits until the ingest queue is empty (visible and in flight): whatever was accepted has been applied. */
async function drained() {
  const { GetQueueAttributesCommand } = await import('@aws-sdk/client-sqs');
  await waitFor(
    'the ingest queue to drain',
    async () => {
      const res = await stack.sqs.client.send(
        new GetQueueAttributesCommand({
          QueueUrl: stack.sqs.ingestQueueUrl,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
        }),
      );
      const a = res.Attributes ?? {};
      return Number(a.ApproximateNumberOfMessages ?? 0) + Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) === 0;
    },
    // Generous: a test that posts hundreds of records waits here, and on a loaded machine they take a while.
    45_000,
    25,
  );
}

/** Lets anything wrongly queued be applied, then returns the node's reboots. */
async function settledReboots(node: string) {
  await new Promise((r) => setTimeout(r, 300));
  await drained();
  return reboots(node);
}

/** The deadline lies `seconds` after a receipt in [before, after]: dated by the coordinator, not the BMC. */
function expectDeadline(r: any, before: number, after: number, seconds: number) {
  const d = Date.parse(r.deadline);
  expect(d).toBeGreaterThanOrEqual(before + seconds * 1000 - 1000);
  expect(d).toBeLessThanOrEqual(after + seconds * 1000 + 1000);
}

// --- 1. OriginOfCondition in every shape ---------------------------------------------------------------------

describe('quirk 1: OriginOfCondition in every shape tells the xPU from the host', () => {
  const shapes: Array<[string, string, unknown]> = [
    ['obj', 'an object {"@odata.id"}', { '@odata.id': DPU }],
    ['str', 'a plain string with a trailing slash', `${DPU}/`],
    [
      'exp',
      'the whole System expanded inline (IncludeOriginOfCondition)',
      {
        '@odata.id': DPU,
        '@odata.type': '#ComputerSystem.v1_17_0.ComputerSystem',
        Id: 'Bluefield',
        PowerState: 'On',
        Status: { State: 'Enabled', Health: 'OK' },
        Links: { Chassis: [{ '@odata.id': '/redfish/v1/Chassis/Card1' }] },
      },
    ],
    ['sub', 'a sub-resource of the System', { '@odata.id': `${DPU}/EthernetInterfaces/oob_net0` }],
    ['url', 'an absolute URL of the BMC', `https://192.0.2.10${DPU}`],
    ['none', 'missing (the node has one xPU)', undefined],
  ];
  for (const [node, what, origin] of shapes) {
    it(`${what}: RebootPending starts the xPU reboot, its deadline from the receipt`, async () => {
      const before = Date.now();
      const res = await post(node, event([pending(`${node}-1`, { origin, ts: new Date().toISOString() })]));
      const after = Date.now();
      expect(res.status).toBe(202);
      expect(res.json).toEqual({ accepted: 1, ignored: 0 });
      const r = await rebootOf(node);
      expect(r).toMatchObject({ kind: 'xpu', node, xpu: 'dpu0' });
      expectDeadline(r, before, after, 60);
      expect(await settledReboots(node)).toHaveLength(1);
    });
  }

  it("an origin below the host's System, or a System the node does not have, is ignored and starts nothing", async () => {
    const hsub = await post('hsub', event([pending('hsub-1', { origin: { '@odata.id': `${HOST}/Memory` } })]));
    expect(hsub.status).toBe(202);
    expect(hsub.json).toEqual({ accepted: 0, ignored: 1 });
    const alien = await post('alien', event([pending('alien-1', { origin: '/redfish/v1/Systems/Card9-SoC' })]));
    expect(alien.json).toEqual({ accepted: 0, ignored: 1 });
    expect(await settledReboots('hsub')).toEqual([]);
    expect(await settledReboots('alien')).toEqual([]);
  });

  it('host and xPU at one path (two OpenBMCs): the message that is only about an xPU finds it; a power-off stays ambiguous', async () => {
    const res = await post(
      'same',
      event([
        pending('same-1', { origin: `${HOST}/` }),
        { EventId: 'same-2', MessageId: 'OpenBMC.0.1.DCPowerOff', MessageArgs: [], OriginOfCondition: { '@odata.id': HOST } },
      ]),
    );
    expect(res.json).toEqual({ accepted: 1, ignored: 1 });
    expect(await rebootOf('same')).toMatchObject({ kind: 'xpu', xpu: 'dpu0' });
    expect(await settledReboots('same')).toHaveLength(1);
  });

  it('with two xPUs: the string origin picks the xPU; without origin a per-BMC Context does; without either, nothing', async () => {
    const res = await post(
      'tw',
      event([
        pending('tw-1', { origin: '/redfish/v1/Systems/Card2-SoC/' }),
        pending('tw-2', { origin: undefined }),
        { ...pending('tw-3', { origin: undefined }), Context: 'tw.dpu0' },
      ]),
    );
    expect(res.json).toEqual({ accepted: 2, ignored: 1 });
    await waitFor('two reboots of tw', async () => (await reboots('tw')).length === 2);
    expect((await settledReboots('tw')).map((r) => r.xpu).sort()).toEqual(['dpu0', 'dpu1']);
  });
});

// --- 10. Message missing; odd MessageArgs --------------------------------------------------------------------

describe('quirk 10: Message missing', () => {
  it('a RebootPending with no Message and no MessageArgs still starts the reboot, with the policy notice', async () => {
    const before = Date.now();
    const res = await post('nomsg', event([pending('nomsg-1', { message: null, args: [] })]));
    const after = Date.now();
    expect(res.json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('nomsg');
    expectDeadline(r, before, after, NOTICE);
    // The reason falls back to what was said: here only the MessageId.
    expect((await getReboot(r.id)).reason).toBe('XpuReboot.1.0.RebootPending');
  });

  it('a Crashed with no Message and MessageArgs [null] starts a crash reboot', async () => {
    const res = await post('crash', event([xr('Crashed', 'crash-1', { message: null, args: [null] })]));
    expect(res.json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('crash');
    expect(r).toMatchObject({ xpu: 'dpu0', mode: 'crash' });
  });
});

// --- 11. several records in one POST -------------------------------------------------------------------------

describe('quirk 11: several records in one POST, some relevant and some not', () => {
  it('counts each, applies the relevant ones once, and starts nothing for the others', async () => {
    const body = event([
      // Dell's bare thermal id, per-record Context and MemberId.
      { EventId: '2162', MemberId: '615703', MessageId: 'TMP0120', Message: 'temperature warning', Context: 'any string is valid' },
      pending('multi-1'),
      // A heartbeat, a record without MessageId (a BlueField log entry), a power-on (not ready).
      { EventId: 'hb-1', MessageId: 'HeartbeatEvent.1.1.1.RedfishServiceFunctional', MessageArgs: [] },
      { EventId: 'le-1', Message: 'xyz.openbmc_project.Common.Error.InternalFailure', Severity: 'OK' },
      { EventId: 'on-1', MessageId: 'ResourceEvent.1.4.3.ResourcePoweredOn', MessageArgs: [DPU], OriginOfCondition: DPU },
      // The same notice a second time in the same POST: counted, applied once.
      pending('multi-1'),
    ]);
    const res = await post('multi', body);
    expect(res.json).toEqual({ accepted: 2, ignored: 4 });
    const r = await rebootOf('multi');
    const all = await settledReboots('multi');
    expect(all.map((x) => x.id)).toEqual([r.id]);
    const full = await getReboot(r.id);
    expect(phases(full).filter((p: string) => p === 'notified')).toHaveLength(1);
    expect(phases(full)).not.toContain('joined');
  });
});

// --- hms-smd templates: placeholders left in ------------------------------------------------------------------

describe('placeholders left in a template (%XNAME%, %REDFISH_ID%, %REGISTRY_ID%)', () => {
  it('are accepted as a request and ignored as records: no 403 for the Context, nothing starts', async () => {
    const res = await post(
      'ph',
      event(
        [
          {
            Context: '%XNAME%:whatever',
            EventId: '558851bc-c386-d8d0-70a9-900e4a067d84',
            EventTimestamp: '2021-04-13T03:29:51Z',
            MemberId: '0',
            MessageId: '%REGISTRY_ID%ServerPoweredOff',
            OriginOfCondition: { '@odata.id': '/redfish/v1/Systems/%REDFISH_ID%' },
            Severity: '%SEVERITY%',
          },
          {
            EventId: 'Event4',
            MessageId: 'XpuReboot.1.0.RebootPending',
            MessageArgs: ['60', 'x'],
            OriginOfCondition: { '@odata.id': '/redfish/v1/Systems/%REDFISH_ID%' },
          },
        ],
        { Context: '%XNAME%:PowerState_tests' },
      ),
    );
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ accepted: 0, ignored: 2 });
    expect(await settledReboots('ph')).toEqual([]);
  });
});

// --- 2. timestamps: keys, zones, wrong clocks ----------------------------------------------------------------

describe('quirk 2 and 7.1: odd timestamps and BMC clocks wrong by any amount', () => {
  const now = () => Date.now();
  const stamps: Array<[string, string, (ms: number) => string]> = [
    ['tnz', 'no zone', (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, '')],
    ['tcl', 'a colon-less offset (iDRAC local time)', (ms) => localStamp(ms, 3 * 60, false)],
    ['toff', 'an offset with colon, under EventTimeStamp (Foxconn)', (ms) => localStamp(ms, -5 * 60, true)],
    ['thrs', 'a clock 7 hours behind', (ms) => new Date(ms - 7 * 3_600_000).toISOString()],
    ['tyrs', 'a clock 4 years behind', (ms) => new Date(ms - 4 * 365 * 86_400_000).toISOString()],
    ['tepo', 'a clock at the epoch (BlueField before NTP)', (ms) => new Date(ms - EPOCH_BASE + 3_600_000).toISOString()],
    ['tfut', 'a clock 3 years ahead', (ms) => new Date(ms + 3 * 365 * 86_400_000).toISOString()],
  ];
  for (const [node, what, stamp] of stamps) {
    it(`${what}: the notice is the coordinator's; the BMC's own ready ends it and its late power-off starts nothing`, async () => {
      const key = node === 'toff' ? 'EventTimeStamp' : 'EventTimestamp';
      const t0 = now();
      const rec = (r: Rec, at: number) => {
        const { EventTimestamp: _, ...rest } = r;
        return { ...rest, [key]: stamp(at) };
      };
      const before = Date.now();
      expect((await post(node, event([rec(pending(`${node}-p`), t0)]))).json).toEqual({ accepted: 1, ignored: 0 });
      const after = Date.now();
      const r = await rebootOf(node);
      expectDeadline(r, before, after, 60);
      // The BMC's ready, 90 s later by its clock (sent now, after proceed-reboot).
      await until(r.id, (x) => x.status === 'rebooting', 'rebooting');
      expect((await post(node, event([rec(xr('Ready', `${node}-r`), t0 + 90_000)]))).json).toEqual({ accepted: 1, ignored: 0 });
      const done = await until(r.id, (x) => x.status === 'completed', 'completed');
      expect(phases(done)).not.toContain('stale-event');
      // Its power-off record, sent between the two by its clock, delivered late (a BMC retry): recorded on that
      // reboot, never an unannounced reboot of its own.
      const down = {
        EventId: `${node}-d`,
        MessageId: 'ResourceEvent.1.4.3.ResourcePoweredOff',
        MessageArgs: [DPU],
        OriginOfCondition: { '@odata.id': DPU },
      };
      expect((await post(node, event([rec(down, t0 + 30_000)]))).json).toEqual({ accepted: 1, ignored: 0 });
      const all = await settledReboots(node);
      expect(all.map((x) => [x.id, x.status])).toEqual([[r.id, 'completed']]);
    }, 40_000);
  }
});

/** A local time with its UTC offset in minutes, as iDRAC (`+0300`) or OpenBMC (`-05:00`) write it. */
function localStamp(ms: number, offsetMin: number, colon: boolean): string {
  const local = new Date(ms + offsetMin * 60_000).toISOString().replace(/\.\d+Z$/, '');
  const sign = offsetMin < 0 ? '-' : '+';
  const abs = Math.abs(offsetMin);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${local}${sign}${hh}${colon ? ':' : ''}${mm}`;
}

// --- redelivery --------------------------------------------------------------------------------------------

describe('4: a redelivered record counts as accepted and starts nothing', () => {
  it('the same POST again, and the same EventId and origin stamped anew, are one reboot with one notice', async () => {
    const first = await post('dup', event([pending('dup-1', { ts: new Date().toISOString() })]));
    expect(first.json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('dup');
    expect((await post('dup', event([pending('dup-1', { ts: new Date().toISOString() })]))).json).toEqual({ accepted: 1, ignored: 0 });
    const later = new Date(Date.now() + 30_000).toISOString();
    const restamped = await post('dup', event([pending('dup-1', { ts: later })], { Id: '2' }));
    expect(restamped.json).toEqual({ accepted: 1, ignored: 0 });
    const all = await settledReboots('dup');
    expect(all.map((x) => x.id)).toEqual([r.id]);
    const full = await getReboot(r.id);
    expect(phases(full).filter((p: string) => p === 'notified')).toHaveLength(1);
    expect(phases(full)).not.toContain('joined');
    expect(full.deadline).toBe(r.deadline);
  });

  it('without EventId, only the same content is a redelivery: a MemberId "0" (HPE) on two notices a day apart is two reboots', async () => {
    const rec = (ts: string) => {
      const { EventId: _, ...r } = pending('unused', { ts });
      return { ...r, MemberId: '0' };
    };
    const sent = Date.now();
    const first = rec(new Date(sent).toISOString());
    expect((await post('mem', event([first]))).json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('mem');
    // The same content again: a redelivery.
    expect((await post('mem', event([first]))).json).toEqual({ accepted: 1, ignored: 0 });
    await until(r.id, (x) => x.status === 'rebooting', 'rebooting');
    expect(
      (
        await post(
          'mem',
          event([{ ...xr('Ready', 'x'), EventId: undefined, MemberId: '0', EventTimestamp: new Date(sent + 60_000).toISOString() }]),
        )
      ).json,
    ).toEqual({
      accepted: 1,
      ignored: 0,
    });
    await until(r.id, (x) => x.status === 'completed', 'completed');
    // The next notice, a day later by the BMC's clock, with the same MemberId: another reboot.
    expect((await post('mem', event([rec(new Date(sent + 86_400_000).toISOString())]))).json).toEqual({ accepted: 1, ignored: 0 });
    await waitFor('a second reboot of mem', async () => (await reboots('mem')).length === 2);
    const all = await settledReboots('mem');
    expect(all.map((x) => x.mode)).toEqual(['planned', 'planned']);
  }, 40_000);

  it('an EventId sent as a JSON number and again as a string (quirk 4) is one record', async () => {
    expect((await post('num', event([{ ...pending('x'), EventId: 77 }]))).json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('num');
    expect((await post('num', event([{ ...pending('x'), EventId: '77' }]))).json).toEqual({ accepted: 1, ignored: 0 });
    expect((await settledReboots('num')).map((x) => x.id)).toEqual([r.id]);
    expect(phases(await getReboot(r.id))).not.toContain('joined');
  });

  it('the same EventId from two xPU Systems is two records: nothing lost', async () => {
    const res = await post(
      'tw2',
      event([pending('1', { origin: '/redfish/v1/Systems/Card1-SoC' }), pending('1', { origin: '/redfish/v1/Systems/Card2-SoC' })]),
    );
    expect(res.json).toEqual({ accepted: 2, ignored: 0 });
    await waitFor('two reboots of tw2', async () => (await reboots('tw2')).length === 2);
    expect((await settledReboots('tw2')).map((x) => x.xpu).sort()).toEqual(['dpu0', 'dpu1']);
  });

  it('after the coordinator answered 5xx (queue down): nothing was taken; the BMC retry starts the reboot once', async () => {
    const queue = stack.deps.queue;
    const send = queue.send;
    queue.send = async () => {
      queue.send = send;
      throw Object.assign(new Error('queue unavailable'), { name: 'ServiceUnavailable' });
    };
    const body = event([pending('f5a-1', { ts: new Date().toISOString() })]);
    const failed = await post('f5a', body);
    expect(failed.status).toBe(503);
    expect(failed.json.error).toBe('Unavailable');
    expect(await settledReboots('f5a')).toEqual([]);
    const retry = await post('f5a', body);
    expect(retry.json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('f5a');
    expect((await settledReboots('f5a')).map((x) => x.id)).toEqual([r.id]);
  });

  it('after a 5xx that came when part of a POST was queued: the whole POST again counts each record once', async () => {
    const queue = stack.deps.queue;
    const send = queue.send;
    queue.send = async (events) => {
      queue.send = send;
      await send.call(queue, events.slice(0, 1));
      throw Object.assign(new Error('queue throttled'), { name: 'ThrottlingException' });
    };
    const t = (s: number) => new Date(Date.now() + s * 1000).toISOString();
    const body = event([pending('f5c-p', { ts: t(0) }), powerOff('f5c-d', t(1))]);
    expect((await post('f5c', body)).status).toBe(503);
    const r = await rebootOf('f5c');
    expect((await post('f5c', body)).json).toEqual({ accepted: 2, ignored: 0 });
    await until(r.id, (x) => x.downAt !== undefined, 'the power-off applied');
    const full = await getReboot(r.id);
    expect(phases(full).filter((p: string) => p === 'notified')).toHaveLength(1);
    expect(phases(full).filter((p: string) => p === 'xpu-down')).toHaveLength(1);
    expect((await settledReboots('f5c')).map((x) => x.id)).toEqual([r.id]);
  });

  it('after a 5xx answered once the records were queued: the retry is a redelivery, one reboot, one notice', async () => {
    const store = stack.deps.store;
    const touch = store.touchBmc;
    store.touchBmc = async () => {
      store.touchBmc = touch;
      throw Object.assign(new Error('table unavailable'), { name: 'ServiceUnavailable' });
    };
    const body = event([pending('f5b-1', { ts: new Date().toISOString() })]);
    const failed = await post('f5b', body);
    expect(failed.status).toBe(503);
    // docs/api.md: a 503 means nothing was done (the event was not accepted).
    expect(await settledReboots('f5b')).toEqual([]);
    const retry = await post('f5b', body);
    expect(retry.json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('f5b');
    const full = await getReboot(r.id);
    expect(phases(full).filter((p: string) => p === 'notified')).toHaveLength(1);
    expect((await settledReboots('f5b')).map((x) => x.id)).toEqual([r.id]);
  });
});

// --- transport and size ------------------------------------------------------------------------------------

describe('quirk 11 transport, and bodies that are no Event: a clear 4xx that changes nothing', () => {
  it('the SSE text form (id:/data: lines) is 400, also sent as text/event-stream', async () => {
    const record = JSON.stringify({ Events: [pending('sse-1')] }, null, 2);
    const sse = `id: 1\n${record
      .split('\n')
      .map((l) => `data: ${l}`)
      .join('\n')}\n\n`;
    for (const contentType of ['text/event-stream', 'application/json']) {
      const res = await post('many', sse, { headers: { 'content-type': contentType } });
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ error: 'MalformedJson' });
    }
    expect(await settledReboots('many')).toEqual([]);
  });

  it('thousands of records in one POST under 256 KiB: every one counted, the duplicates of one notice start one reboot', async () => {
    const noise = Array.from({ length: 3000 }, (_, i) => ({ EventId: `n${i}`, MessageId: 'TMP0120', MessageArgs: [] }));
    const notices = Array.from({ length: 200 }, () => pending('many-1'));
    const body = JSON.stringify(event([...noise, ...notices]));
    expect(Buffer.byteLength(body)).toBeLessThan(256 * 1024);
    const res = await post('many', body);
    expect(res.json).toEqual({ accepted: 200, ignored: 3000 });
    const r = await rebootOf('many');
    expect((await settledReboots('many')).map((x) => x.id)).toEqual([r.id]);
    expect(phases(await getReboot(r.id))).not.toContain('joined');
  });

  it('a body over 256 KiB sent chunked (no Content-Length) is 413; UTF-16, trailing junk and a gzip body are 400; nothing changes', async () => {
    const big = JSON.stringify(event([pending('big-1', { message: 'x'.repeat(256 * 1024) })]));
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big));
        c.close();
      },
    });
    const res = await fetch(`${url}/v1/events/redfish`, {
      method: 'POST',
      headers: { authorization: 'Bearer bmc-big', 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: 'PayloadTooLarge' });
    // 32 MiB streamed by a BMC gone wrong: still a clean 413 (read no further than the limit, the rest discarded).
    const chunk = new Uint8Array(64 * 1024).fill(0x20);
    let left = 512;
    const flood = new ReadableStream<Uint8Array>({
      pull(c) {
        if (left-- === 0) c.close();
        else c.enqueue(chunk);
      },
    });
    const flooded = await fetch(`${url}/v1/events/redfish`, {
      method: 'POST',
      headers: { authorization: 'Bearer bmc-big', 'content-type': 'application/json' },
      body: flood,
      duplex: 'half',
    } as RequestInit);
    expect(flooded.status).toBe(413);
    expect(((await flooded.json()) as { error: string }).error).toBe('PayloadTooLarge');
    const good = JSON.stringify(event([pending('big-2')]));
    const utf16 = new Uint8Array(Buffer.from(`\ufeff${good}`, 'utf16le'));
    const { gzipSync } = await import('node:zlib');
    for (const [body, headers] of [
      [utf16, {}],
      [`${good} trailing`, {}],
      [new Uint8Array(gzipSync(good)), { 'content-encoding': 'gzip' }],
    ] as const) {
      const bad = await fetch(`${url}/v1/events/redfish`, {
        method: 'POST',
        headers: { authorization: 'Bearer bmc-big', 'content-type': 'application/json', ...headers },
        body,
      });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: string }).error).toMatch(/^(InvalidEncoding|MalformedJson)$/);
    }
    expect(await settledReboots('big')).toEqual([]);
  });
});

// --- authentication ----------------------------------------------------------------------------------------

describe('3: who may post', () => {
  it('a missing, unknown or non-Bearer credential is 401; an agent or operator token 403; any case of "Bearer" and ?access_token= are taken', async () => {
    const body = event([pending('auth-1')]);
    const refused: Array<[number, string, Parameters<typeof post>[2]]> = [
      [401, 'Unauthorized', { token: null }],
      [401, 'Unauthorized', { token: 'bmc-nobody' }],
      [401, 'Unauthorized', { token: null, headers: { authorization: 'Basic cm9vdDowcGVuQm1j' } }],
      [403, 'Forbidden', { token: 'agent-auth' }],
      [403, 'Forbidden', { token: OPERATOR_TOKEN }],
    ];
    for (const [status, error, o] of refused) {
      const res = await post('auth', body, o);
      expect([res.status, res.json?.error]).toEqual([status, error]);
      expect(typeof res.json.message).toBe('string');
    }
    // Another node's BMC token with a Context naming this node: 403 (CONTRACT 4), nothing stored for either.
    const crossed = await post('auth', { ...body, Context: 'auth' }, { token: 'bmc-other' });
    expect([crossed.status, crossed.json?.error]).toEqual([403, 'Forbidden']);
    expect(await settledReboots('auth')).toEqual([]);
    expect(await settledReboots('other')).toEqual([]);
    const lower = await post('auth', body, { token: null, headers: { authorization: 'bearer bmc-auth' } });
    expect(lower.json).toEqual({ accepted: 1, ignored: 0 });
    // A BMC configured with user/password sends Basic; the token in the URL still names the node.
    const url2 = await post('auth', body, {
      token: null,
      query: '?access_token=bmc-auth',
      headers: { authorization: 'Basic cm9vdDowcGVuQm1j' },
    });
    expect(url2.json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('auth');
    expect((await settledReboots('auth')).map((x) => x.id)).toEqual([r.id]);
  });
});

// --- 3. MessageIds -----------------------------------------------------------------------------------------

describe('quirk 3: unknown registries and MessageIds are accepted as a request and ignored as records', () => {
  it('unknown prefix, unknown key, bare unknown id, junk ids: 202, all ignored, nothing starts', async () => {
    const res = await post(
      'unk',
      event([
        { EventId: 'u1', MessageId: 'Contoso.1.0.SledRebooting', OriginOfCondition: DPU },
        { EventId: 'u2', MessageId: 'XpuReboot.1.0.RebootScheduled', OriginOfCondition: DPU },
        { EventId: 'u3', MessageId: 'SYS9999' },
        { EventId: 'u4', MessageId: 42 },
        { EventId: 'u5', MessageId: '' },
        { EventId: 'u6', MessageId: 'XpuReboot.1.0.Reboot Pending', OriginOfCondition: DPU },
        { EventId: 'u7', MessageId: 'ZT_Event_Service_Log.1.0.Alert', Message: '0x1234' },
      ]),
    );
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ accepted: 0, ignored: 7 });
    expect(await settledReboots('unk')).toEqual([]);
  });

  it("an operator's mapping file adds a vendor message: AcmeDpu.3.1.RestartScheduled starts the xPU reboot with its notice", async () => {
    const before = Date.now();
    const res = await post(
      'opm',
      event([{ EventId: 'opm-1', MessageId: 'AcmeDpu.3.1.RestartScheduled', MessageArgs: ['bsp upgrade', '45'], OriginOfCondition: DPU }]),
    );
    expect(res.json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('opm');
    expectDeadline(r, before, Date.now(), 45);
    expect((await getReboot(r.id)).reason).toBe('bsp upgrade');
  });

  it('registry versions do not matter: XpuReboot.2.1.RebootPending and a four-part version map like 1.0', async () => {
    const res = await post('ver', event([{ ...pending('ver-1'), MessageId: 'XpuReboot.2.1.0.RebootPending' }]));
    expect(res.json).toEqual({ accepted: 1, ignored: 0 });
    await rebootOf('ver');
  });
});

// --- 7.1: BMC records and native events about the same outage ----------------------------------------------

const commandsOf = (agent: string, rebootId: string) =>
  (seen.get(agent) ?? []).filter((c: any) => c.rebootId === rebootId).map((c) => c.type);

describe('7.1: a reboot told by the BMC and by the agents at once is one reboot, nothing doubled', () => {
  it('BMC notice, agent notice, agent down, BMC power-off, BMC ready, agent ready: one reboot, restore-pcie once', async () => {
    const t = (s: number) => new Date(Date.now() + s * 1000).toISOString();
    expect((await post('mix', event([pending('mix-p', { ts: t(0) })]))).json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('mix');
    expect((await native('mix', 'mix-n1', 'xpu.reboot.pending', { reason: 'the agent says so too' })).status).toBe(202);
    await until(r.id, (x) => x.status === 'rebooting', 'rebooting');
    expect((await native('mix', 'mix-n2', 'xpu.down')).status).toBe(202);
    expect((await post('mix', event([powerOff('mix-d', t(1))]))).json).toEqual({ accepted: 1, ignored: 0 });
    expect((await post('mix', event([xr('Ready', 'mix-r', { ts: t(2) })]))).json).toEqual({ accepted: 1, ignored: 0 });
    expect((await native('mix', 'mix-n3', 'xpu.ready')).status).toBe(202);
    const done = await until(r.id, (x) => x.status === 'completed', 'completed');
    expect((await settledReboots('mix')).map((x) => x.id)).toEqual([r.id]);
    expect(phases(done).filter((p: string) => p === 'notified')).toHaveLength(1);
    expect(phases(done).filter((p: string) => p === 'xpu-ready')).toHaveLength(1);
    expect(commandsOf('mix', r.id).filter((c) => c === 'restore-pcie')).toHaveLength(1);
  }, 40_000);

  it("the BMC's ready delivered late, after the agent's ready ended the reboot: no second reboot, no second restore-pcie", async () => {
    const sent = Date.now();
    const t = (s: number) => new Date(sent + s * 1000).toISOString();
    expect((await post('late', event([pending('late-p', { ts: t(0) })]))).json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('late');
    await until(r.id, (x) => x.status === 'rebooting', 'rebooting');
    // The BMC saw the xPU go down and come back and said so at once; its POSTs failed and are retried later.
    const bmcReadyAt = t((Date.now() - sent) / 1000);
    expect((await native('late', 'late-n1', 'xpu.ready')).status).toBe(202);
    const done = await until(r.id, (x) => x.status === 'completed', 'completed');
    expect(commandsOf('late', r.id)).toContain('resume-workloads');
    // The retries: the power-off and the ready, each stamped when the BMC saw it (before the reboot ended).
    expect((await post('late', event([powerOff('late-d', bmcReadyAt)]))).json).toEqual({ accepted: 1, ignored: 0 });
    expect((await post('late', event([xr('Ready', 'late-r', { ts: bmcReadyAt })]))).json).toEqual({ accepted: 1, ignored: 0 });
    // And the notice once more (its first delivery's answer was lost): a redelivery.
    expect((await post('late', event([pending('late-p', { ts: t(0) })]))).json).toEqual({ accepted: 1, ignored: 0 });
    const all = await settledReboots('late');
    expect(all.map((x) => [x.id, x.status])).toEqual([[done.id, 'completed']]);
    expect((seen.get('late') ?? []).filter((c) => c.type === 'restore-pcie')).toHaveLength(1);
    // A power-off the BMC sends ten minutes on (by its clock) is another outage: an unannounced reboot.
    expect((await post('late', event([powerOff('late-d2', t(600))]))).json).toEqual({ accepted: 1, ignored: 0 });
    const next = await waitFor('the unannounced reboot', async () => (await reboots('late')).find((x) => x.id !== done.id));
    expect(next.mode).toBe('unannounced');
  }, 40_000);

  it("announced by the agent, the BMC's power-off applied: the BMC's ready retried after the agent's ready ended it starts nothing", async () => {
    expect((await native('late2', 'late2-n1', 'xpu.reboot.pending', { reason: 'agent', noticeSeconds: 60 })).status).toBe(202);
    const r = await rebootOf('late2');
    await until(r.id, (x) => x.status === 'rebooting', 'rebooting');
    const sent = Date.now();
    expect((await post('late2', event([powerOff('late2-d', new Date(sent).toISOString())]))).json).toEqual({ accepted: 1, ignored: 0 });
    await until(r.id, (x) => x.downAt !== undefined, 'down');
    const bmcReadyAt = new Date(Date.now()).toISOString();
    expect((await native('late2', 'late2-n2', 'xpu.ready')).status).toBe(202);
    await until(r.id, (x) => x.status === 'completed', 'completed');
    expect((await post('late2', event([xr('Ready', 'late2-r', { ts: bmcReadyAt })]))).json).toEqual({ accepted: 1, ignored: 0 });
    const all = await settledReboots('late2');
    expect(all.map((x) => [x.id, x.status])).toEqual([[r.id, 'completed']]);
  }, 40_000);

  it("announced by the agent, the BMC's power-off applied: the BMC's notice delivered 6 s after the agent's ready joins, no second reboot", async () => {
    // The BMC's clock is 3 days behind; its notice, sent 90 s before the outage, failed and is retried after it.
    const bmc = (ago = 0) => new Date(Date.now() - 3 * 86_400_000 - ago).toISOString();
    const noticeSent = bmc(90_000);
    expect((await native('late3', 'late3-n1', 'xpu.reboot.pending', { reason: 'agent', noticeSeconds: 60 })).status).toBe(202);
    const r = await rebootOf('late3');
    await until(r.id, (x) => x.status === 'rebooting', 'rebooting');
    expect((await post('late3', event([powerOff('late3-d', bmc())]))).json).toEqual({ accepted: 1, ignored: 0 });
    await until(r.id, (x) => x.downAt !== undefined, 'down');
    expect((await native('late3', 'late3-n2', 'xpu.ready')).status).toBe(202);
    await until(r.id, (x) => x.status === 'completed', 'completed');
    await new Promise((res) => setTimeout(res, 6000));
    expect((await post('late3', event([pending('late3-p', { ts: noticeSent })]))).json).toEqual({ accepted: 1, ignored: 0 });
    const all = await settledReboots('late3');
    expect(all.map((x) => [x.id, x.status])).toEqual([[r.id, 'completed']]);
    expect(phases(await getReboot(r.id))).toContain('joined');
    expect((seen.get('late3.dpu0') ?? []).filter((c) => c.type === 'proceed-reboot')).toHaveLength(1);
  }, 40_000);

  it('the BMC power-off before its notice (the BMC says the notice came first): one reboot that the notice joins', async () => {
    const t = (s: number) => new Date(Date.now() + s * 1000).toISOString();
    // Sent in this order by the BMC: notice (t0), power-off (t0+5); delivered the other way round.
    expect((await post('ooo', event([powerOff('ooo-d', t(5))]))).json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('ooo');
    expect((await post('ooo', event([pending('ooo-p', { ts: t(0) })]))).json).toEqual({ accepted: 1, ignored: 0 });
    expect((await post('ooo', event([xr('Ready', 'ooo-r', { ts: t(60) })]))).json).toEqual({ accepted: 1, ignored: 0 });
    const done = await until(r.id, (x) => x.status === 'completed', 'completed');
    expect(phases(done)).toContain('joined');
    expect((await settledReboots('ooo')).map((x) => x.id)).toEqual([r.id]);
    expect((seen.get('ooo') ?? []).filter((c) => c.type === 'restore-pcie')).toHaveLength(1);
  }, 40_000);

  it('a host reboot asked by the BMC (IPMI) and by the agent, ended by BMC records each sent twice: one host reboot, completed', async () => {
    const t = (s: number) => new Date(Date.now() + s * 1000).toISOString();
    const hostRec = (id: string, msg: string, ts: string) => ({
      EventId: id,
      EventTimestamp: ts,
      MessageId: msg,
      MessageArgs: [],
      OriginOfCondition: { '@odata.id': HOST },
    });
    const ask = event([{ ...xr('HostRebootRequested', 'hr-1', { ts: t(0), args: ['IPMI'] }), OriginOfCondition: HOST }]);
    expect((await post('hr', ask)).json).toEqual({ accepted: 1, ignored: 0 });
    const hr = await rebootOf('hr', 'host');
    expect(hr.mode).toBe('ipmi');
    expect((await native('hr', 'hr-n1', 'host.reboot.requested', { method: 'shell' })).status).toBe(202);
    const off = event([hostRec('hr-2', 'OpenBMC.0.1.DCPowerOff', t(5))]);
    const boot = event([hostRec('hr-3', 'OpenBMC.0.1.BIOSBoot', t(60))]);
    // The xPU (no persistent power) comes back too: the host reboot waits for it.
    const xpuBack = event([xr('Ready', 'hr-4', { ts: t(90) })]);
    for (const body of [off, off, boot, boot, xpuBack, xpuBack]) expect((await post('hr', body)).json).toEqual({ accepted: 1, ignored: 0 });
    const done = await until(hr.id, (x) => ['completed', 'failed', 'denied'].includes(x.status), 'ended');
    expect(done.status).toBe('completed');
    expect(phases(done).filter((p: string) => p === 'host-down')).toHaveLength(1);
    expect(phases(done).filter((p: string) => p === 'host-ready')).toHaveLength(1);
    // The power-off once more after the end (its answer was lost): nothing new.
    expect((await post('hr', off)).json).toEqual({ accepted: 1, ignored: 0 });
    const all = await settledReboots('hr');
    expect(all.map((x) => [x.kind, x.status])).toEqual([['host', 'completed']]);
  }, 40_000);

  it('a whole outage in one POST, in the order sent or reversed: one reboot, completed, restore-pcie once', async () => {
    const t = (s: number) => new Date(Date.now() - 120_000 + s * 1000).toISOString();
    const records = (node: string) => [
      pending(`${node}-p`, { ts: t(0) }),
      powerOff(`${node}-d`, t(30)),
      xr('Ready', `${node}-r`, { ts: t(60) }),
    ];
    expect((await post('g1', event(records('g1')))).json).toEqual({ accepted: 3, ignored: 0 });
    expect((await post('g2', event(records('g2').reverse()))).json).toEqual({ accepted: 3, ignored: 0 });
    for (const node of ['g1', 'g2']) {
      const r = await rebootOf(node);
      await until(r.id, (x) => x.status === 'completed', 'completed');
      expect((await settledReboots(node)).map((x) => x.id)).toEqual([r.id]);
      expect((seen.get(node) ?? []).filter((c) => c.type === 'restore-pcie')).toHaveLength(1);
    }
  }, 40_000);

  it('a notice with no timestamp (a SubmitTestEvent) and the BMC ready stamped by a clock 2 hours behind: the ready ends the reboot', async () => {
    expect((await post('mixc', event([pending('mixc-p')]))).json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('mixc');
    await until(r.id, (x) => x.status === 'rebooting', 'rebooting');
    const behind = new Date(Date.now() - 2 * 3_600_000).toISOString();
    expect((await post('mixc', event([xr('Ready', 'mixc-r', { ts: behind })]))).json).toEqual({ accepted: 1, ignored: 0 });
    const done = await until(r.id, (x) => ['completed', 'failed'].includes(x.status), 'ended');
    expect(done.status).toBe('completed');
    expect(phases(done)).not.toContain('stale-event');
  }, 40_000);

  it('a crash told twice by the BMC (XpuReboot.Crashed, Platform watchdog reset), each delivered twice, then its ready: one crash reboot, completed', async () => {
    const t = (s: number) => new Date(Date.now() + s * 1000).toISOString();
    const crashed = event([xr('Crashed', 'c2-1', { ts: t(0), args: ['kernel panic'] })]);
    const watchdog = event([
      {
        EventId: 'c2-2',
        EventTimestamp: t(1),
        MessageId: 'Platform.1.3.2.PlatformResetWatchdogTimer',
        MessageArgs: [],
        OriginOfCondition: { '@odata.id': DPU, '@odata.type': '#ComputerSystem.v1_17_0.ComputerSystem', PowerState: 'On' },
      },
    ]);
    for (const body of [crashed, watchdog, crashed, watchdog])
      expect((await post('crash2', body)).json).toEqual({ accepted: 1, ignored: 0 });
    const r = await rebootOf('crash2');
    expect(r.mode).toBe('crash');
    expect((await post('crash2', event([xr('Ready', 'c2-3', { ts: t(30) })]))).json).toEqual({ accepted: 1, ignored: 0 });
    const done = await until(r.id, (x) => x.status === 'completed', 'completed');
    // The second message about the crash is a repeat; the redeliveries leave no trace.
    expect(phases(done).filter((p: string) => p === 'crashed')).toHaveLength(1);
    expect(phases(done).filter((p: string) => p === 'repeat')).toHaveLength(1);
    expect((await settledReboots('crash2')).map((x) => x.id)).toEqual([r.id]);
    expect((seen.get('crash2') ?? []).filter((c) => c.type === 'restore-pcie')).toHaveLength(1);
  }, 40_000);

  // The BMC's clock is unknown next to the agent's (3 days behind here), but its own prompt deliveries tell where it
  // sits (core/bmc-clock.ts): a notice it stamped before the outage, delivered 6 s (more than CROSS_SOURCE_SLACK_MS)
  // after the agent's ready, is placed before that ready and joins the outage; one it stamped after the ready (a real
  // next reboot) is placed after it and still starts one.
  it("the BMC's notice delivered 6 s after the agent's ready of the outage it announced joins that outage; one sent after it starts a reboot", async () => {
    const bmcNow = (ago = 0) => new Date(Date.now() - 3 * 86_400_000 - ago).toISOString();
    // Sent 90 s before the outage ended (its delivery failed and was retried), by the BMC's clock.
    const sentAt = bmcNow(90_000);
    const first = new Map<string, any>();
    for (const node of ['lateN', 'nextN']) {
      // The agent's boot report comes first: an unannounced reboot. The BMC says ready too, promptly: a clock sample.
      expect((await native(node, `${node}-r`, 'xpu.ready')).status).toBe(202);
      const r = await rebootOf(node);
      expect(r.mode).toBe('unannounced');
      expect((await post(node, event([xr('Ready', `${node}-br`, { ts: bmcNow() })]))).json).toEqual({ accepted: 1, ignored: 0 });
      first.set(node, await until(r.id, (x) => x.status === 'completed', 'completed'));
    }
    await drained();
    await new Promise((res) => setTimeout(res, 6000));
    expect((await post('lateN', event([pending('lateN-p', { ts: sentAt })]))).json).toEqual({ accepted: 1, ignored: 0 });
    expect((await post('nextN', event([pending('nextN-p', { ts: bmcNow() })]))).json).toEqual({ accepted: 1, ignored: 0 });
    const late = await settledReboots('lateN');
    expect(late.map((x) => x.id)).toEqual([first.get('lateN').id]);
    expect(phases(await getReboot(first.get('lateN').id))).toContain('joined');
    expect((seen.get('lateN.dpu0') ?? []).filter((c) => c.type === 'proceed-reboot')).toHaveLength(0);
    const next = await settledReboots('nextN');
    expect(next).toHaveLength(2);
    expect(next.find((x) => x.id !== first.get('nextN').id)?.mode).toBe('planned');
  }, 40_000);
});
