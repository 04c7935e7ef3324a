// What each BMC family's payload becomes: native events (type, node, xPU, time, data) or ignored records with a reason.
import { describe, expect, it } from 'vitest';
import { nodeA, nodeCray, nodeDell, nodeFoxconn, nodeGigabyte, nodeHpe, nodeIntel, nodeZt } from '../fixtures/redfish/inventory.ts';
import { fixture, RECEIVED_AT, translateFixture, translateText } from '../fixtures/redfish/load.ts';

function only<T>(items: T[]): T {
  expect(items).toHaveLength(1);
  return items[0];
}

describe('DMTF shapes', () => {
  it('maps ResourcePoweredOff of the BlueField System to xpu.down of that xPU, at the receive time when the event has none', () => {
    const out = translateFixture('dmtf-resource-powered-off.json', nodeA);
    const ev = only(out.accepted);
    expect(ev).toMatchObject({
      type: 'xpu.down',
      node: 'node-a',
      xpu: 'dpu0',
      time: RECEIVED_AT,
      source: 'redfish',
      receivedAt: RECEIVED_AT,
    });
    expect(ev.messageId).toBe('ResourceEvent.1.4.3.ResourcePoweredOff');
    expect(ev.data).toEqual({});
    expect(out.ignored).toEqual([]);
  });

  it('takes each record of an EventGroupId batch on its own: two host signals accepted, the cable message ignored', () => {
    const out = translateFixture('dmtf-event-group.json', nodeA);
    expect(out.accepted.map((e) => [e.type, e.xpu, e.data])).toEqual([
      ['host.down', undefined, {}],
      ['host.down', undefined, { reason: 'ForceRestart' }],
    ]);
    expect(out.ignored).toEqual([
      expect.objectContaining({ index: 2, code: 'UnmappedMessageId', messageId: 'NetworkDevice.1.0.CableRemoved' }),
    ]);
  });

  it('reads an expanded OriginOfCondition with a trailing slash: a watchdog reset of the xPU is a crash', () => {
    const ev = only(translateFixture('dmtf-expanded-origin.json', nodeA).accepted);
    expect(ev).toMatchObject({ type: 'xpu.crashed', xpu: 'dpu0', time: '2025-03-02T07:15:42.123Z' });
    expect(ev.data).toEqual({ reason: 'platform reset by its watchdog timer' });
  });
});

describe('Dell iDRAC', () => {
  it('maps the bare id SYS1001 without origin to host.down and normalizes the colon-less +0300 offset', () => {
    const ev = only(translateFixture('dell-bare.json', nodeDell).accepted);
    expect(ev).toMatchObject({ type: 'host.down', node: 'node-dell', time: '2025-03-02T08:20:05.000Z', messageId: 'SYS1001' });
    expect(ev.xpu).toBeUndefined();
  });

  it('maps the prefixed IDRAC.2.9.ASR0001 the same way, with the -0500 offset', () => {
    const ev = only(translateFixture('dell-prefixed.json', nodeDell).accepted);
    expect(ev).toMatchObject({
      type: 'host.down',
      time: '2025-03-02T08:20:05.000Z',
      data: { reason: 'the watchdog timer reset the system' },
    });
  });

  it('ignores thermal, fan and power-capacity records, each with its reason', () => {
    const out = translateFixture('dell-negative-multi.json', nodeDell);
    expect(out.accepted).toEqual([]);
    expect(out.ignored.map((i) => [i.index, i.code, i.messageId])).toEqual([
      [0, 'UnmappedMessageId', 'TMP0120'],
      [1, 'UnmappedMessageId', 'FAN0001'],
      [2, 'UnmappedMessageId', 'PWR1004'],
    ]);
  });
});

describe('HPE iLO', () => {
  it('matches a plain-string origin with a trailing slash to the host', () => {
    const ev = only(translateFixture('hpe-string-origin.json', nodeHpe).accepted);
    expect(ev).toMatchObject({ type: 'host.down', node: 'node-hpe', time: '2025-03-02T09:00:01.000Z', data: {} });
  });

  it('matches an object origin, reads the per-record Context, and does not treat power-on as ready', () => {
    const out = translateFixture('hpe-object-origin.json', nodeHpe);
    expect(only(out.accepted)).toMatchObject({ type: 'host.down', time: '2025-03-02T09:10:00.000Z' });
    expect(only(out.ignored)).toMatchObject({ index: 1, code: 'IgnoredByMapping', messageId: 'iLOEvents.2.1.ServerPoweredOn' });
    expect(out.ignored[0].reason).toMatch(/power-on is not ready/);
  });
});

describe('Cray', () => {
  it('maps ResourcePowerStateChanged with MessageArgs[1] Off on a Chassis origin to host.down', () => {
    const ev = only(translateFixture('cray-off.json', nodeCray).accepted);
    expect(ev).toMatchObject({ type: 'host.down', node: 'node-cray', time: RECEIVED_AT });
  });

  it('ignores the same message with On', () => {
    const out = translateFixture('cray-on.json', nodeCray);
    expect(out.accepted).toEqual([]);
    expect(only(out.ignored).code).toBe('IgnoredByMapping');
  });

  it('ignores an unknown power state rather than guessing', () => {
    const text = fixture('cray-off.json').replace('"Off"]', '"Unknown"]');
    const out = translateText(text, nodeCray);
    expect(out.kind === 'ok' && out.ignored[0].code).toBe('ConditionNotMet');
  });
});

describe('Intel, Gigabyte, Foxconn, ZT', () => {
  it('Intel: Alert.1.0.0.SystemPowerOff with MessageArgs [null] → host.down', () => {
    const ev = only(translateFixture('intel-system-off.json', nodeIntel).accepted);
    expect(ev).toMatchObject({ type: 'host.down', node: 'node-intel', time: '2025-03-02T10:41:17.000Z', data: {} });
  });

  it('Gigabyte: the generic EventLog Alert is ignored (it carries no state)', () => {
    const out = translateFixture('gigabyte-alert.json', nodeGigabyte);
    expect(out.accepted).toEqual([]);
    expect(only(out.ignored)).toMatchObject({ code: 'IgnoredByMapping', messageId: 'EventLog.1.0.Alert' });
  });

  it('Foxconn: four-part Alert.1.0.0.DCPowerOff with EventTimeStamp, Critical severity and no origin → host.down', () => {
    const ev = only(translateFixture('foxconn-dc-off.json', nodeFoxconn).accepted);
    expect(ev).toMatchObject({ type: 'host.down', node: 'node-foxconn', time: '2025-03-02T17:57:23.000Z' });
    expect(ev.dedupKey).toMatch(/^node-foxconn:redfish:content:[0-9a-f]{64}$/);
  });

  it('ZT: the SEL-hex Alert is ignored', () => {
    const out = translateFixture('zt-alert.json', nodeZt);
    expect(out.accepted).toEqual([]);
    expect(only(out.ignored).code).toBe('IgnoredByMapping');
  });
});

describe('BlueField / OpenBMC', () => {
  it('attributes DCPowerOff without origin to the xPU named by the per-BMC Context, and BIOSBoot on an xPU is not ready', () => {
    const out = translateFixture('bluefield-dc-off.json', nodeA);
    expect(only(out.accepted)).toMatchObject({ type: 'xpu.down', xpu: 'dpu0', time: '2025-03-02T06:25:31.000Z' });
    expect(only(out.ignored)).toMatchObject({ index: 1, code: 'NotForTarget' });
  });

  it("maps the host's BIOSBoot to host.ready", () => {
    const ev = only(translateFixture('openbmc-host-bios-boot.json', nodeA).accepted);
    expect(ev).toMatchObject({ type: 'host.ready', node: 'node-a', time: '2025-03-02T06:31:10.000Z' });
    expect(ev.xpu).toBeUndefined();
  });
});

describe('the XpuReboot registry', () => {
  it('RebootPending carries noticeSeconds as a number and the reason', () => {
    const ev = only(translateFixture('xpureboot-pending.json', nodeA).accepted);
    expect(ev).toMatchObject({
      type: 'xpu.reboot.pending',
      node: 'node-a',
      xpu: 'dpu0',
      time: '2025-03-02T12:00:00.000Z',
      data: { noticeSeconds: 600, reason: 'firmware update' },
      messageId: 'XpuReboot.1.0.RebootPending',
    });
  });

  it('Crashed, Ready (four-part version), HostRebootRequested (PERST#) and a pending reboot with null args', () => {
    const out = translateFixture('xpureboot-messages.json', nodeA);
    expect(out.ignored).toEqual([]);
    expect(out.accepted.map((e) => ({ type: e.type, xpu: e.xpu, data: e.data }))).toEqual([
      { type: 'xpu.crashed', xpu: 'dpu0', data: { reason: 'kernel panic' } },
      { type: 'xpu.ready', xpu: 'dpu0', data: {} },
      { type: 'host.reboot.requested', xpu: undefined, data: { method: 'perst' } },
      { type: 'xpu.reboot.pending', xpu: 'dpu0', data: { reason: 'The xPU will reboot soon.' } },
    ]);
  });

  it('without an origin, a node with two xPUs cannot tell which one: ignored', () => {
    const out = translateFixture('xpureboot-messages.json', nodeHpe);
    expect(out.ignored.map((i) => [i.index, i.code])).toEqual([
      [0, 'AmbiguousXpu'],
      [1, 'AmbiguousXpu'],
      [2, 'OriginNotOfNode'],
      [3, 'OriginNotOfNode'],
    ]);
    expect(out.accepted).toEqual([]);
  });

  it('drops noticeSeconds that are not a finite positive number, and unknown methods', () => {
    const bad = (notice: unknown, method: unknown) =>
      JSON.stringify({
        Context: 'node-a',
        Events: [
          {
            EventId: '1',
            MessageId: 'XpuReboot.1.0.RebootPending',
            MessageArgs: [notice, 'r'],
            OriginOfCondition: '/redfish/v1/Systems/Bluefield',
          },
          { EventId: '2', MessageId: 'XpuReboot.1.0.HostRebootRequested', MessageArgs: [method] },
        ],
      });
    for (const [notice, method] of [
      ['-5', 'reboot'],
      ['0', 42],
      ['1e309', null],
      ['abc', ''],
      [Number.MAX_VALUE * 0, 'IPMIX'],
    ] as const) {
      const out = translateText(bad(notice, method), nodeA);
      if (out.kind !== 'ok') throw new Error('forbidden');
      expect(out.accepted[0].data).toEqual({ reason: 'r' });
      expect(out.accepted[1].data).toEqual({});
    }
    const ok = translateText(bad(' 120 ', 'IPMI'), nodeA);
    expect(ok.kind === 'ok' && ok.accepted.map((e) => e.data)).toEqual([{ noticeSeconds: 120, reason: 'r' }, { method: 'ipmi' }]);
  });
});

describe('attribution', () => {
  it('ignores an origin under /Systems/ that is none of the node’s Systems', () => {
    const text = fixture('dmtf-resource-powered-off.json').replace('"node-a"', '"Default Context"');
    const out = translateText(text, nodeHpe);
    expect(out.kind === 'ok' && out.ignored[0]).toMatchObject({
      code: 'OriginNotOfNode',
      reason: expect.stringContaining('/redfish/v1/Systems/Bluefield'),
    });
  });

  it('matches sub-resources by path prefix but not a sibling whose id merely starts the same', () => {
    const mk = (origin: string) =>
      JSON.stringify({
        Events: [{ EventId: 'x', MessageId: 'ResourceEvent.1.4.3.ResourcePoweredOff', OriginOfCondition: { '@odata.id': origin } }],
      });
    const sub = translateText(mk('/redfish/v1/Systems/1/Memory/DIMM3'), nodeHpe);
    expect(sub.kind === 'ok' && sub.accepted[0].type).toBe('host.down');
    const sibling = translateText(mk('/redfish/v1/Systems/10'), nodeHpe);
    expect(sibling.kind === 'ok' && sibling.ignored[0].code).toBe('OriginNotOfNode');
    const card2 = translateText(mk('https://10.1.2.3/redfish/v1/Systems/Card2-SoC?$expand=.'), nodeHpe);
    expect(card2.kind === 'ok' && card2.accepted[0]).toMatchObject({ type: 'xpu.down', xpu: 'dpu1' });
  });

  it('at a path host and xPU share, gives the product’s own xPU messages to the xPU; vendor messages stay ambiguous', () => {
    const shared = { ...nodeA, xpus: [{ ...nodeA.xpus[0], redfishSystem: '/redfish/v1/Systems/system' }] };
    const mk = (messageId: string, args: string[] = []) =>
      JSON.stringify({
        Events: [{ EventId: messageId, MessageId: messageId, MessageArgs: args, OriginOfCondition: '/redfish/v1/Systems/system/' }],
      });
    const pendingOut = translateText(mk('XpuReboot.1.0.RebootPending', ['60', 'fw']), shared);
    expect(pendingOut.kind === 'ok' && pendingOut.accepted[0]).toMatchObject({ type: 'xpu.reboot.pending', xpu: 'dpu0' });
    const ready = translateText(mk('XpuReboot.1.0.Ready'), shared);
    expect(ready.kind === 'ok' && ready.accepted[0]).toMatchObject({ type: 'xpu.ready', xpu: 'dpu0' });
    // The xPU's own BMC logs BIOSBoot too, and a host BMC may send OperatingSystemCrash: no guess.
    for (const id of ['OpenBMC.0.1.BIOSBoot', 'OpenBMC.0.1.DCPowerOff', 'Platform.1.3.2.OperatingSystemCrash']) {
      const out = translateText(mk(id), shared);
      expect(out.kind === 'ok' && out.ignored[0]?.code, id).toBe('AmbiguousOrigin');
    }
  });

  it('uses the resource URI in MessageArgs when ResourceEvent comes without OriginOfCondition', () => {
    const text = JSON.stringify({
      Events: [{ EventId: 'y', MessageId: 'ResourceEvent.1.2.1.ResourcePoweringOff', MessageArgs: ['/redfish/v1/Systems/Card1-SoC'] }],
    });
    const out = translateText(text, nodeHpe);
    expect(out.kind === 'ok' && out.accepted[0]).toMatchObject({ type: 'xpu.down', xpu: 'dpu0' });
  });

  it('does not guess an xPU for a vendor crash message without origin', () => {
    const text = JSON.stringify({ Events: [{ EventId: 'z', MessageId: 'Platform.1.3.2.OperatingSystemCrash' }] });
    const out = translateText(text, nodeA);
    expect(out.kind === 'ok' && out.ignored[0].code).toBe('NoOrigin');
  });
});

describe('Context', () => {
  it('is forbidden when the root Context names another node of the inventory', () => {
    const out = translateText(fixture('dell-bare.json'), nodeA);
    expect(out).toEqual({ kind: 'forbidden', message: expect.stringContaining("names node 'node-dell'") });
  });

  it('is forbidden when only a record Context names another node (Cray-style node:label)', () => {
    const out = translateText(fixture('hpe-object-origin.json'), nodeA);
    expect(out.kind).toBe('forbidden');
  });

  it('is forbidden when it names an xPU of another node', () => {
    const out = translateText(fixture('bluefield-dc-off.json').replace('"node-a.dpu0"', '"node-b.dpu0"'), nodeA);
    expect(out.kind).toBe('forbidden');
  });

  it('ignores any other Context (Default Context, root, free text)', () => {
    for (const ctx of ['Default Context', 'root', 'any string is valid', 'x1000c0b0:PowerState_tests', '']) {
      const out = translateText(fixture('dell-bare.json').replaceAll('"node-dell"', JSON.stringify(ctx)), nodeDell);
      expect(out.kind === 'ok' && out.accepted[0].type).toBe('host.down');
    }
  });
});

describe('time', () => {
  it('keeps the BMC clock however wrong (epoch, years ahead): it orders that BMC’s events, the receipt dates them', () => {
    const mk = (ts: string) => JSON.stringify({ Events: [{ MessageId: 'OpenBMC.0.1.DCPowerOff', EventTimestamp: ts }] });
    const at = (ts: string) => {
      const out = translateText(mk(ts), nodeFoxconn);
      return out.kind === 'ok' ? [out.accepted[0].time, out.accepted[0].receivedAt] : undefined;
    };
    expect(at('1970-01-01T00:00:07+00:00')).toEqual(['1970-01-01T00:00:07.000Z', RECEIVED_AT]);
    expect(at('2031-01-01T00:00:00Z')).toEqual(['2031-01-01T00:00:00.000Z', RECEIVED_AT]);
    // No usable time: the receipt.
    for (const ts of ['yesterday', '2025-02-30T10:00:00Z', '0099-01-01T00:00:00Z']) expect(at(ts)).toEqual([RECEIVED_AT, RECEIVED_AT]);
    expect(at('2025-03-02T10:00:00')?.[0]).toBe('2025-03-02T10:00:00.000Z');
  });
});

describe('dedupKey', () => {
  it('is the same for a redelivered record (BlueField retries 3x) and prefixed with the node', () => {
    for (const [name, node] of [
      ['xpureboot-pending.json', nodeA],
      ['foxconn-dc-off.json', nodeFoxconn],
      ['dell-bare.json', nodeDell],
    ] as const) {
      const a = translateFixture(name, node).accepted[0];
      const b = translateFixture(name, node, { receivedAt: '2025-03-03T00:00:30.000Z' }).accepted[0];
      expect(b.dedupKey).toBe(a.dedupKey);
      expect(b.id).toBe(a.id);
      expect(a.dedupKey.startsWith(`${node.id}:`)).toBe(true);
    }
  });

  it('is the same for a record with the same EventId and origin that its sender stamped anew (CONTRACT 4)', () => {
    const record = (ts: string) =>
      JSON.stringify({
        Events: [
          {
            EventId: 'bf-77',
            EventTimestamp: ts,
            MessageId: 'XpuReboot.1.0.Ready',
            OriginOfCondition: '/redfish/v1/Systems/Bluefield',
          },
        ],
      });
    const a = translateText(record('2025-03-02T09:10:00Z'), nodeA);
    const b = translateText(record('2025-03-02T09:10:30Z'), nodeA);
    expect(a.kind === 'ok' && b.kind === 'ok' && a.accepted[0].dedupKey === b.accepted[0].dedupKey).toBe(true);
    const another = translateText(record('2025-03-02T09:10:00Z').replace('bf-77', 'bf-78'), nodeA);
    expect(another.kind === 'ok' && a.kind === 'ok' && another.accepted.length === 1).toBe(true);
    expect(another.kind === 'ok' && a.kind === 'ok' && another.accepted[0].dedupKey !== a.accepted[0].dedupKey).toBe(true);
  });

  it('does not depend on the key order a BMC serializes a record without ids in', () => {
    const a = JSON.stringify({
      Events: [{ MessageId: 'Alert.1.0.0.DCPowerOff', EventTimeStamp: '2025-03-02T17:57:23+00:00', MessageSeverity: 'Critical' }],
    });
    const b = JSON.stringify({
      Events: [{ MessageSeverity: 'Critical', EventTimeStamp: '2025-03-02T17:57:23+00:00', MessageId: 'Alert.1.0.0.DCPowerOff' }],
    });
    const ka = translateText(a, nodeFoxconn);
    const kb = translateText(b, nodeFoxconn);
    expect(ka.kind === 'ok' && kb.kind === 'ok' && ka.accepted[0].dedupKey === kb.accepted[0].dedupKey).toBe(true);
  });

  it('differs between records that share Dell’s class EventId, HPE’s EventId, or (without an id) only a timestamp', () => {
    const keys = (text: string, node = nodeDell) => {
      const out = translateText(text, node);
      if (out.kind !== 'ok') throw new Error('forbidden');
      return out.accepted.map((e) => e.dedupKey);
    };
    const dell = fixture('dell-bare.json');
    const k1 = keys(dell);
    const k2 = keys(dell.replace('"731002"', '"731003"'));
    expect(k1[0]).not.toBe(k2[0]);
    const fox = fixture('foxconn-dc-off.json');
    expect(keys(fox, nodeFoxconn)[0]).not.toBe(keys(fox.replace('17:57:23', '17:57:24'), nodeFoxconn)[0]);
    const hpe = JSON.stringify({
      Events: [
        {
          EventId: 'g',
          MemberId: '0',
          EventTimestamp: '2025-03-02T09:10:00Z',
          MessageId: 'iLOEvents.2.1.ServerPoweredOff',
          OriginOfCondition: '/redfish/v1/Systems/1',
        },
        {
          EventId: 'g',
          MemberId: '0',
          EventTimestamp: '2025-03-02T09:10:00Z',
          MessageId: 'OpenBMC.0.1.DCPowerOff',
          OriginOfCondition: '/redfish/v1/Systems/1',
        },
      ],
    });
    const [h1, h2] = keys(hpe, nodeHpe);
    expect(h1).not.toBe(h2);
    // No EventId: a MemberId is no instance id (HPE sends "0" on every record); the content decides (CONTRACT 4).
    const member = (ts: string) =>
      JSON.stringify({
        Events: [
          { MemberId: '0', EventTimestamp: ts, MessageId: 'iLOEvents.2.1.ServerPoweredOff', OriginOfCondition: '/redfish/v1/Systems/1' },
        ],
      });
    expect(keys(member('2025-03-02T09:10:00Z'), nodeHpe)[0]).not.toBe(keys(member('2025-03-03T09:10:00Z'), nodeHpe)[0]);
    expect(keys(member('2025-03-02T09:10:00Z'), nodeHpe)[0]).toBe(keys(member('2025-03-02T09:10:00Z'), nodeHpe)[0]);
  });

  it('differs between nodes for the same record', () => {
    const fox = fixture('foxconn-dc-off.json').replace('"node-foxconn"', '"Default Context"');
    const a = translateText(fox, nodeFoxconn);
    const b = translateText(fox, nodeA);
    expect(a.kind === 'ok' && b.kind === 'ok' && a.accepted[0].dedupKey !== b.accepted[0].dedupKey).toBe(true);
  });
});
