// POST /v1/events/redfish through the real pipeline (HTTP → SQS → ingest → table → workflows), one fresh
// in-process stack per test: each vendor's shape, redelivery, ordering, and every way a request is refused.
import { afterEach, describe, expect, it } from 'vitest';
import type { StoredReboot } from '../../lambdas/core/reboot.ts';
import {
  agentToken,
  bmcToken,
  eventually,
  fixtureText,
  OPERATOR_TOKEN,
  startWebhookStack,
  viewOf,
  type Snapshot,
  type WebhookStack,
} from '../fixtures/redfish/webhook-stack.ts';

let h: WebhookStack | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function stackAt(at: string): Promise<WebhookStack> {
  h = await startWebhookStack({ at });
  return h;
}

const iso = (ms: number) => new Date(ms).toISOString();
/** The source's own time of the last event of `type` the webhook sent on: the parsed timestamp (it orders, never dates). */
const sentTime = (s: WebhookStack, type: string) => s.sent.filter((e) => e.type === type).at(-1)?.time;
const minus = (at: string, seconds: number) => iso(Date.parse(at) - seconds * 1000);

/** A host reboot in progress on `node`, requested at `time` (before the fixture's event, as in real life). */
async function activeHostReboot(s: WebhookStack, node: string, time: string): Promise<StoredReboot> {
  expect((await s.native({ id: `setup-host-${node}`, type: 'host.reboot.requested', node, time, data: { method: 'shell' } })).status).toBe(
    202,
  );
  await s.drain();
  const r = await s.rebootOf(node, 'host');
  expect(r.decision ?? 'allowed').toBe('allowed');
  return r;
}

async function activeXpuReboot(s: WebhookStack, node: string, xpu: string, time: string): Promise<StoredReboot> {
  expect((await s.native({ id: `setup-xpu-${node}`, type: 'xpu.reboot.pending', node, xpu, time, data: { reason: 'setup' } })).status).toBe(
    202,
  );
  await s.drain();
  return s.rebootOf(node, 'xpu');
}

async function reload(s: WebhookStack, r: StoredReboot): Promise<StoredReboot> {
  return (await s.stack.deps.store.getReboot(r.id))!;
}

/** Posts and waits until the pipeline applied everything the webhook accepted. */
async function deliver(
  s: WebhookStack,
  node: string,
  body: string | object,
  opts: { query?: Record<string, string>; token?: string | null } = {},
) {
  const res = await s.redfish(node, body, opts);
  await s.drain();
  return res;
}

async function expectUnchanged(s: WebhookStack, before: Snapshot) {
  // Anything wrongly queued would be applied within a poll: give it the time, then compare everything.
  await new Promise((r) => setTimeout(r, 300));
  await s.drain();
  expect(await s.snapshot()).toEqual(before);
}

/** The product's own registry in the shape BlueField's bmcweb pushes it. */
function xpuRebootEvent(
  records: Array<{ key: string; id: string | number; ts?: string; args?: unknown[]; origin?: string }>,
  context = 'node-a',
) {
  return {
    '@odata.type': '#Event.v1_7_0.Event',
    Id: '1',
    Name: 'Event Array',
    Context: context,
    Events: records.map((r) => ({
      EventType: 'Alert',
      EventId: r.id,
      ...(r.ts ? { EventTimestamp: r.ts } : {}),
      Severity: 'Warning',
      MessageId: `XpuReboot.1.0.${r.key}`,
      MessageArgs: r.args ?? [],
      OriginOfCondition: { '@odata.id': r.origin ?? '/redfish/v1/Systems/Bluefield' },
    })),
  };
}

describe('each vendor shape through the pipeline', () => {
  it('XpuReboot.RebootPending starts an xPU reboot whose deadline comes from its noticeSeconds argument', async () => {
    const s = await stackAt('2025-03-02T12:00:30Z');
    const res = await deliver(s, 'node-a', fixtureText('xpureboot-pending.json'));
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ accepted: 1, ignored: 0 });
    const r = await s.rebootOf('node-a', 'xpu');
    // Notice counts from the receipt (12:00:30, contract 7.1: the coordinator's clock; the BMC's
    // EventTimestamp 12:00:00 only orders its own events): 600 s, under the policy's 900 s cap.
    expect(r).toMatchObject({
      kind: 'xpu',
      xpu: 'dpu0',
      mode: 'planned',
      reason: 'firmware update',
      notifiedAt: '2025-03-02T12:00:30.000Z',
      deadline: '2025-03-02T12:10:30.000Z',
      noticeSeconds: 600,
    });
    expect(s.sent).toEqual([
      expect.objectContaining({
        type: 'xpu.reboot.pending',
        node: 'node-a',
        xpu: 'dpu0',
        source: 'redfish',
        time: '2025-03-02T12:00:00.000Z',
        data: { noticeSeconds: 600, reason: 'firmware update' },
      }),
    ]);
    // The workflow runs: the host is asked to prepare before the deadline.
    await eventually(
      'the host agent to get its prepare commands',
      async () => (await s.stack.deps.store.openCommands('node-a')).length > 0,
    );
    const reply = await s.get(`/v1/reboots/${r.id}`, agentToken('node-a'));
    expect(reply.json).toMatchObject({ id: r.id, node: 'node-a', xpu: 'dpu0', deadline: '2025-03-02T12:10:30.000Z' });
  });

  it('DMTF ResourcePoweredOff of the BlueField System (no timestamp) is xpu.down on the active reboot', async () => {
    const s = await stackAt('2025-03-02T23:59:00Z');
    const r = await activeXpuReboot(s, 'node-a', 'dpu0', '2025-03-02T23:58:00Z');
    const res = await deliver(s, 'node-a', fixtureText('dmtf-resource-powered-off.json'));
    expect(res.json).toEqual({ accepted: 1, ignored: 0 });
    const after = await reload(s, r);
    expect(after.downAt).toBe('2025-03-02T23:59:00.000Z');
    expect(after.history.filter((x) => x.phase === 'xpu-down')).toHaveLength(1);
  });

  it('BlueField LogEntry-shaped records (Created, Context node-a.dpu0): DCPowerOff is xpu.down, BIOSBoot of an xPU is ignored', async () => {
    const s = await stackAt('2025-03-02T06:27:30Z');
    const r = await activeXpuReboot(s, 'node-a', 'dpu0', '2025-03-02T06:24:00Z');
    const res = await deliver(s, 'node-a', fixtureText('bluefield-dc-off.json'));
    expect(res.json).toEqual({ accepted: 1, ignored: 1 });
    expect((await reload(s, r)).downAt).toBe('2025-03-02T06:27:30.000Z'); // received; the record's Created:
    expect(sentTime(s, 'xpu.down')).toBe('2025-03-02T06:25:31.000Z');
    expect((await s.reboots('node-a')).map((x) => x.kind)).toEqual(['xpu']);
  });

  it('DMTF EventGroupId batch: both host records reach the host reboot once, the cable record is ignored', async () => {
    const s = await stackAt('2025-03-02T23:59:00Z');
    const r = await activeHostReboot(s, 'node-a', '2025-03-02T23:58:00Z');
    const res = await deliver(s, 'node-a', fixtureText('dmtf-event-group.json'));
    expect(res.json).toEqual({ accepted: 2, ignored: 1 });
    const after = await reload(s, r);
    expect(after.hostDownAt).toBe('2025-03-02T23:59:00.000Z');
    expect(after.history.filter((x) => x.phase === 'host-down')).toHaveLength(1);
  });

  it('DMTF expanded OriginOfCondition: a watchdog reset of the xPU starts a crash reboot', async () => {
    const s = await stackAt('2025-03-02T07:16:00Z');
    const res = await deliver(s, 'node-a', fixtureText('dmtf-expanded-origin.json'));
    expect(res.json).toEqual({ accepted: 1, ignored: 0 });
    const r = await s.rebootOf('node-a', 'xpu');
    expect(r).toMatchObject({
      xpu: 'dpu0',
      mode: 'crash',
      reason: 'platform reset by its watchdog timer',
      notifiedAt: '2025-03-02T07:16:00.000Z',
    });
    expect(sentTime(s, 'xpu.crashed')).toBe('2025-03-02T07:15:42.123Z');
  });

  it.each([
    ['dell-bare.json', 'SYS1001, bare MessageId, +0300 offset'],
    ['dell-prefixed.json', 'IDRAC.2.9.ASR0001, -0500 offset, Oem.Dell'],
  ])('Dell iDRAC %s (%s) is host.down on the active host reboot', async (file) => {
    const s = await stackAt('2025-03-02T08:20:35Z');
    const r = await activeHostReboot(s, 'node-dell', '2025-03-02T08:19:00Z');
    const res = await deliver(s, 'node-dell', fixtureText(file));
    expect(res.json).toEqual({ accepted: 1, ignored: 0 });
    expect((await reload(s, r)).hostDownAt).toBe('2025-03-02T08:20:35.000Z');
    expect(sentTime(s, 'host.down')).toBe('2025-03-02T08:20:05.000Z');
  });

  it('HPE iLO with object origins: ServerPoweredOff is host.down, ServerPoweredOn is ignored', async () => {
    const s = await stackAt('2025-03-02T09:10:30Z');
    const r = await activeHostReboot(s, 'node-hpe', '2025-03-02T09:09:00Z');
    const res = await deliver(s, 'node-hpe', fixtureText('hpe-object-origin.json'));
    expect(res.json).toEqual({ accepted: 1, ignored: 1 });
    const after = await reload(s, r);
    expect(after.hostDownAt).toBe('2025-03-02T09:10:30.000Z');
    expect(sentTime(s, 'host.down')).toBe('2025-03-02T09:10:00.000Z');
    expect(after.hostReadyAt).toBeUndefined();
  });

  it('HPE iLO with a plain-string origin and junk MessageArgs is host.down', async () => {
    const s = await stackAt('2025-03-02T09:00:31Z');
    const r = await activeHostReboot(s, 'node-hpe', '2025-03-02T08:59:00Z');
    expect((await deliver(s, 'node-hpe', fixtureText('hpe-string-origin.json'))).json).toEqual({ accepted: 1, ignored: 0 });
    expect((await reload(s, r)).hostDownAt).toBe('2025-03-02T09:00:31.000Z');
    expect(sentTime(s, 'host.down')).toBe('2025-03-02T09:00:01.000Z');
  });

  it('Intel Alert.1.0.0.SystemPowerOff (four-part version, MessageArgs [null]) is host.down', async () => {
    const s = await stackAt('2025-03-02T10:41:47Z');
    const r = await activeHostReboot(s, 'node-intel', '2025-03-02T10:40:00Z');
    expect((await deliver(s, 'node-intel', fixtureText('intel-system-off.json'))).json).toEqual({ accepted: 1, ignored: 0 });
    expect((await reload(s, r)).hostDownAt).toBe('2025-03-02T10:41:47.000Z');
    expect(sentTime(s, 'host.down')).toBe('2025-03-02T10:41:17.000Z');
  });

  it('Cray ResourcePowerStateChanged Off on a Chassis origin is host.down', async () => {
    const s = await stackAt('2025-03-02T15:00:00Z');
    const r = await activeHostReboot(s, 'node-cray', '2025-03-02T14:59:00Z');
    expect((await deliver(s, 'node-cray', fixtureText('cray-off.json'))).json).toEqual({ accepted: 1, ignored: 0 });
    expect((await reload(s, r)).hostDownAt).toBe('2025-03-02T15:00:00.000Z');
  });

  // Release 2 (docs/reboot-model.md): a signal before its reboot is kept for it, no longer dropped.
  it('Foxconn DCPowerOff (EventTimeStamp, Critical) with no host reboot in progress is kept for its reboot, not applied', async () => {
    const s = await stackAt('2025-03-02T17:57:53Z');
    const res = await deliver(s, 'node-foxconn', fixtureText('foxconn-dc-off.json'));
    expect(res.json).toEqual({ accepted: 1, ignored: 0 });
    expect(await s.reboots()).toEqual([]);
    expect(await s.dropped()).toEqual([]);
    expect(await s.stack.deps.store.keptSignals('node-foxconn')).toEqual([
      expect.objectContaining({ type: 'host.down', node: 'node-foxconn', time: '2025-03-02T17:57:23.000Z' }),
    ]);
  });

  it('OpenBMC BIOSBoot of the host is host.ready; the missing host.down is noted, not awaited', async () => {
    const s = await stackAt('2025-03-02T06:31:40Z');
    const r = await activeHostReboot(s, 'node-a', '2025-03-02T06:30:00Z');
    expect((await deliver(s, 'node-a', fixtureText('openbmc-host-bios-boot.json'))).json).toEqual({ accepted: 1, ignored: 0 });
    const after = await reload(s, r);
    expect(after.hostReadyAt).toBe('2025-03-02T06:31:40.000Z');
    expect(sentTime(s, 'host.ready')).toBe('2025-03-02T06:31:10.000Z');
    expect(after.history.map((x) => x.detail)).toContain('host.down was never received');
  });

  it('the XpuReboot registry in one POST: crash, ready, host reboot request (denied while the xPU reboots), pending (joins)', async () => {
    const s = await stackAt('2025-03-02T12:05:30Z');
    const res = await deliver(s, 'node-a', fixtureText('xpureboot-messages.json'));
    expect(res.json).toEqual({ accepted: 4, ignored: 0 });
    const all = await s.reboots('node-a');
    const xpu = all.find((r) => r.kind === 'xpu' && r.mode === 'crash')!;
    // Release 2: a time ahead of its receipt is dated at the receipt (the coordinator's clock), and
    // xpu.ready ends the core-dump hold at once, so the crash reboot may be recovering (its xPU
    // free) before the later records: the host request and the pending are then no longer denied
    // or joined to the crash, but each is still accounted for.
    expect(xpu).toMatchObject({ reason: 'kernel panic', notifiedAt: '2025-03-02T12:05:30.000Z', readyAt: '2025-03-02T12:05:30.000Z' });
    expect(sentTime(s, 'xpu.crashed')).toBe('2025-03-02T12:05:00.000Z');
    const host = all.find((r) => r.kind === 'host')!;
    expect(host).toBeDefined();
    const pendingLanded =
      xpu.history.some((x) => x.phase === 'joined') ||
      host.history.some((x) => x.phase === 'xpu-reboot-joined') ||
      all.some((r) => r.kind === 'xpu' && r.mode === 'planned');
    expect(pendingLanded).toBe(true);
    if (host.decision === 'denied') expect(host.denyReason).toMatch(/xpu-rebooting/);
    expect(await s.dropped()).toEqual([]);
  });

  it.each([
    ['dell-negative-multi.json', 'node-dell', 3],
    ['cray-on.json', 'node-cray', 1],
    ['gigabyte-alert.json', 'node-gigabyte', 1],
    ['zt-alert.json', 'node-zt', 1],
  ])('%s: records that map to no reboot signal are counted as ignored and change nothing', async (file, node, ignored) => {
    const s = await stackAt('2025-03-02T23:00:00Z');
    const before = await s.snapshot();
    const res = await deliver(s, node, fixtureText(file));
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ accepted: 0, ignored });
    await expectUnchanged(s, before);
  });
});

describe('redelivery and ordering', () => {
  it('the same record delivered 3 times (BlueField retries every 30 s) starts one reboot; every POST is 202 accepted', async () => {
    const s = await stackAt('2025-03-02T12:00:30Z');
    const body = fixtureText('xpureboot-pending.json');
    for (let i = 0; i < 3; i++) {
      const res = await deliver(s, 'node-a', body);
      expect(res.status).toBe(202);
      expect(res.json).toEqual({ accepted: 1, ignored: 0 });
      await s.clock.advance(30_000);
    }
    const reboots = await s.reboots();
    expect(reboots).toHaveLength(1);
    const r = reboots[0];
    expect(r.deadline).toBe('2025-03-02T12:10:30.000Z'); // from the first receipt: a retry buys no extra notice
    expect(r.history.filter((x) => x.phase === 'notified')).toHaveLength(1);
    expect(r.history.filter((x) => x.phase === 'joined')).toEqual([]);
    expect(new Set(s.sent.map((e) => e.dedupKey)).size).toBe(1);
    expect(s.stack.counters.get('DuplicatesSuppressed')).toBe(2);
    expect(await s.dropped()).toEqual([]);
    expect(await s.depth()).toEqual({ queued: 0, dlq: 0 });
  });

  it('a BMC that sends no custom headers authenticates with ?access_token= (and a redelivery that way is a duplicate too)', async () => {
    const s = await stackAt('2025-03-02T12:00:30Z');
    const body = fixtureText('xpureboot-pending.json');
    const first = await deliver(s, 'node-a', body, { token: null, query: { access_token: bmcToken('node-a') } });
    expect(first.status).toBe(202);
    expect(first.json).toEqual({ accepted: 1, ignored: 0 });
    const again = await deliver(s, 'node-a', body);
    expect(again.json).toEqual({ accepted: 1, ignored: 0 });
    expect((await s.reboots()).map((r) => [r.node, r.xpu, r.deadline])).toEqual([['node-a', 'dpu0', '2025-03-02T12:10:30.000Z']]);
  });

  // Release 2 (docs/reboot-model.md): a ready with no reboot is an unannounced reboot, recorded at once; the
  // notice the BMC sent before it (by the BMC's own clock), delivered after it, joins it.
  it('out of order: a ready before its pending is an unannounced reboot the pending joins; an older ready is stale; nothing is lost', async () => {
    const s = await stackAt('2025-03-02T12:00:30Z');
    // 1. Ready arrives first (the BMC's queue reordered it).
    const early = await deliver(s, 'node-a', xpuRebootEvent([{ key: 'Ready', id: 'r-1', ts: '2025-03-02T12:00:20Z' }]));
    expect(early.json).toEqual({ accepted: 1, ignored: 0 });
    const [u] = await s.reboots();
    expect(u).toMatchObject({ kind: 'xpu', mode: 'unannounced', readyAt: '2025-03-02T12:00:30.000Z' });

    // 2. The pending, stamped before the ready by the same BMC: it joins, no second reboot.
    await deliver(s, 'node-a', fixtureText('xpureboot-pending.json'));
    expect(await s.reboots()).toHaveLength(1);
    expect((await reload(s, u)).history.map((x) => x.phase)).toContain('joined');

    // 3. A ready stamped an hour before the first: another outage's, recorded and not applied.
    await deliver(s, 'node-a', xpuRebootEvent([{ key: 'Ready', id: 'r-0', ts: '2025-03-02T11:00:00Z' }]));
    const now = await reload(s, u);
    const staleLines = now.history.filter((x) => x.phase === 'stale-event').map((x) => x.detail);
    expect(staleLines).toEqual([expect.stringMatching(/^xpu\.ready from 2025-03-02T11:00:00\.000Z predates this reboot: not applied/)]);
    expect(now.readyAt).toBe('2025-03-02T12:00:30.000Z');
    expect(await s.dropped()).toEqual([]);
    expect(await s.depth()).toEqual({ queued: 0, dlq: 0 });
    expect(s.sent).toHaveLength(3);
  });
});

describe('refused requests store nothing', () => {
  /** A stack with something to lose: an xPU reboot of node-a and a host reboot of node-dell in progress. */
  async function stackAt(at: string): Promise<WebhookStack> {
    h = await startWebhookStack({ at });
    await deliver(h, 'node-a', fixtureText('xpureboot-pending.json'));
    await activeHostReboot(h, 'node-dell', minus(at, 60));
    expect((await h.reboots()).map((r) => r.node).sort()).toEqual(['node-a', 'node-dell']);
    return h;
  }

  async function refused(
    s: WebhookStack,
    send: () => Promise<{ status: number; json: any }>,
    status: number,
    error: string,
    message: RegExp,
  ) {
    const before = await s.snapshot();
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.json).toMatchObject({ error });
    expect(res.json.message).toMatch(message);
    await expectUnchanged(s, before);
  }

  it('malformed bodies are 400 with a clear message', async () => {
    const s = await stackAt('2025-03-02T12:00:30Z');
    const post = (body: string | Uint8Array) => () => s.redfish('node-a', body);
    await refused(s, post('{"Events": [ {"MessageId": "XpuReboot.1.0.RebootPending"'), 400, 'MalformedJson', /not JSON/);
    await refused(s, post('not json at all'), 400, 'MalformedJson', /not JSON/);
    await refused(s, post(''), 400, 'MalformedJson', /not JSON/);
    await refused(s, post(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 400, 'InvalidEncoding', /UTF-8/);
    await refused(s, post('[{"Events": []}]'), 400, 'NotAnEvent', /JSON object with an Events array/);
    await refused(s, post('{"Id": "1", "Name": "Event Array", "Context": "node-a"}'), 400, 'NotAnEvent', /needs an Events array/);
    await refused(s, post('{"Events": {"MessageId": "XpuReboot.1.0.Ready"}}'), 400, 'NotAnEvent', /needs an Events array/);
    // One bad record refuses the whole POST, even after a good one: nothing half-stored.
    const good = xpuRebootEvent([{ key: 'RebootPending', id: 'p-1', args: ['600', 'x'] }]);
    await refused(
      s,
      post(JSON.stringify({ ...good, Events: [...good.Events, 42] })),
      400,
      'MalformedRecord',
      /Events\[1\] is not an object/,
    );
    await refused(
      s,
      post(JSON.stringify({ ...good, Events: [...good.Events, null] })),
      400,
      'MalformedRecord',
      /Events\[1\] is not an object/,
    );
    await refused(s, post('{"Events":[' + '['.repeat(100) + ']'.repeat(100) + ']}'), 400, 'TooDeeplyNested', /deeper than/);
    // What a BMC sends on its SSE stream (id:/data: framing) is not a pushed Event.
    const record = { EventId: 'sse-1', MessageId: 'OpenBMC.0.1.DCPowerOff', OriginOfCondition: '/redfish/v1/Systems/system' };
    await refused(s, post(`id: 1\ndata: ${JSON.stringify({ Events: [record] })}\n\n`), 400, 'MalformedJson', /not JSON/);
    // Nor is the body of a SubmitTestEvent action (one bare record, no Events array).
    await refused(
      s,
      post(JSON.stringify({ ...record, EventType: 'Alert', Severity: 'OK', Message: 'test' })),
      400,
      'NotAnEvent',
      /Events array/,
    );
  });

  it('a body over 256 KiB is 413; one at the limit is taken', async () => {
    const s = await stackAt('2025-03-02T12:00:30Z');
    const event = xpuRebootEvent([{ key: 'RebootPending', id: 'big-1', ts: '2025-03-02T12:00:00Z', args: ['600', 'firmware'] }]);
    const padTo = (bytes: number) => {
      const bare = JSON.stringify({ ...event, Oem: { Pad: '' } });
      return JSON.stringify({ ...event, Oem: { Pad: 'x'.repeat(bytes - Buffer.byteLength(bare)) } });
    };
    const over = padTo(256 * 1024 + 1);
    expect(Buffer.byteLength(over)).toBe(256 * 1024 + 1);
    await refused(s, () => s.redfish('node-a', over), 413, 'PayloadTooLarge', /262144/);
    await refused(s, () => s.redfish('node-a', 'x'.repeat(2 * 1024 * 1024)), 413, 'PayloadTooLarge', /262144/);

    const atLimit = padTo(256 * 1024);
    expect(Buffer.byteLength(atLimit)).toBe(256 * 1024);
    const ok = await deliver(s, 'node-a', atLimit);
    expect(ok.json).toEqual({ accepted: 1, ignored: 0 });
    expect(s.sent.at(-1)).toMatchObject({ type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0' });
    // It joined the reboot already in progress.
    const r = await s.rebootOf('node-a', 'xpu');
    expect(viewOf(r).events.filter((e) => e.startsWith('joined'))).toHaveLength(1);
  });

  it('no token or an unknown token is 401', async () => {
    const s = await stackAt('2025-03-02T12:00:30Z');
    const body = fixtureText('xpureboot-pending.json');
    await refused(s, () => s.redfish('node-a', body, { token: null }), 401, 'Unauthorized', /token/);
    await refused(s, () => s.redfish('node-a', body, { token: 'bmc-token-node-zz' }), 401, 'Unauthorized', /token/);
    await refused(
      s,
      () => s.redfish('node-a', body, { token: null, query: { access_token: 'not-a-token' } }),
      401,
      'Unauthorized',
      /token/,
    );
  });

  it("a node's agent token (or the operator's) on the webhook is 403", async () => {
    const s = await stackAt('2025-03-02T12:00:30Z');
    const body = fixtureText('xpureboot-pending.json');
    await refused(s, () => s.redfish('node-a', body, { token: agentToken('node-a') }), 403, 'Forbidden', /only a BMC token/);
    await refused(s, () => s.redfish('node-a', body, { token: OPERATOR_TOKEN }), 403, 'Forbidden', /only a BMC token/);
  });

  it('a Context naming another inventory node is 403 and nothing of the POST is stored', async () => {
    const s = await stackAt('2025-03-02T12:00:30Z');
    const root = JSON.parse(fixtureText('xpureboot-pending.json'));
    root.Context = 'node-b';
    await refused(
      s,
      () => s.redfish('node-a', root),
      403,
      'Forbidden',
      /Context 'node-b' names node 'node-b', but the token belongs to node 'node-a'/,
    );
    // Per-record Context (Dell, Gigabyte): one bad record refuses the good ones with it.
    const perRecord = JSON.parse(fixtureText('dell-bare.json'));
    perRecord.Events.push({ ...perRecord.Events[0], MemberId: '731003', Context: 'node-b.dpu0' });
    await refused(s, () => s.redfish('node-dell', perRecord), 403, 'Forbidden', /names node 'node-b'/);
  });

  it('a native event for a node not in the inventory is 404, an unknown type 400, another node 403', async () => {
    const s = await stackAt('2025-03-02T12:00:30Z');
    await refused(
      s,
      () => s.native({ id: 'u-1', type: 'xpu.reboot.pending', node: 'node-zz', xpu: 'dpu0' }),
      404,
      'NotFound',
      /node-zz is not in the inventory/,
    );
    await refused(s, () => s.native({ id: 'u-2', type: 'xpu.exploded', node: 'node-a' }), 400, 'UnknownEventType', /unknown event type/);
    await refused(
      s,
      () => s.native({ id: 'u-3', type: 'host.down', node: 'node-b' }, agentToken('node-a')),
      403,
      'Forbidden',
      /may not post events for node node-b/,
    );
    await refused(
      s,
      () => s.native({ id: 'u-4', type: 'host.down', node: 'node-b' }, bmcToken('node-a')),
      403,
      'Forbidden',
      /may not post events for node node-b/,
    );
  });
});

describe('native events share the queue and the dedup', () => {
  it('POST /v1/events goes through the ingest queue; a repeated id is a duplicate; a second notice for the xPU joins', async () => {
    const s = await stackAt('2025-03-02T12:00:30Z');
    const ev = {
      id: 'n-1',
      type: 'xpu.reboot.pending',
      node: 'node-a',
      xpu: 'dpu0',
      time: '2025-03-02T12:00:10Z',
      data: { reason: 'kernel update', noticeSeconds: 300 },
    };
    const first = await s.native(ev, agentToken('node-a'));
    expect(first.status).toBe(202);
    expect(first.json).toEqual({ accepted: 1, ignored: 0, id: 'n-1' });
    await s.drain();
    const second = await s.native(ev, bmcToken('node-a'));
    expect(second.status).toBe(202);
    await s.drain();
    expect(s.sent.map((e) => [e.source, e.dedupKey])).toEqual([
      ['native', 'native:node-a:n-1'],
      ['native', 'native:node-a:n-1'],
    ]);
    expect(s.stack.counters.get('DuplicatesSuppressed')).toBe(1);

    // The same reboot announced by the BMC as well: it joins the running reboot, no second one.
    await deliver(s, 'node-a', fixtureText('xpureboot-pending.json'));
    const reboots = await s.reboots();
    expect(reboots).toHaveLength(1);
    expect(reboots[0]).toMatchObject({ reason: 'kernel update', deadline: '2025-03-02T12:05:30.000Z' });
    expect(viewOf(reboots[0]).events.filter((e) => e.startsWith('joined'))).toHaveLength(1);
    expect(await s.depth()).toEqual({ queued: 0, dlq: 0 });
  });
});
