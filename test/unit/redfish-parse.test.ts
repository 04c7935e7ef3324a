// The webhook body parser: strict on size, encoding and shape; tolerant of vendor quirks inside records.
import { describe, expect, it } from 'vitest';
import { normalizeTimestamp, parseRedfishPayload, splitMessageId } from '../../lambdas/core/redfish/parse.ts';
import { fixture } from '../fixtures/redfish/load.ts';

describe('parseRedfishPayload rejects', () => {
  it('a body over 256 KiB with 413 PayloadTooLarge, as text or bytes', () => {
    const big = JSON.stringify({ Events: [{ MessageId: 'X', Message: 'a'.repeat(256 * 1024) }] });
    expect(parseRedfishPayload(big)).toMatchObject({ ok: false, status: 413, error: 'PayloadTooLarge' });
    expect(parseRedfishPayload(new TextEncoder().encode(big))).toMatchObject({ ok: false, status: 413, error: 'PayloadTooLarge' });
    expect(parseRedfishPayload('{"Events":[]}', { maxBytes: 5 })).toMatchObject({ status: 413 });
  });

  it('counts bytes, not characters', () => {
    const text = JSON.stringify({ Events: [], Name: 'é'.repeat(600) });
    expect(text.length).toBeLessThan(1000);
    expect(parseRedfishPayload(text, { maxBytes: 1000 })).toMatchObject({ ok: false, status: 413 });
  });

  it('bytes that are not UTF-8 with 400 InvalidEncoding', () => {
    expect(parseRedfishPayload(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))).toMatchObject({
      ok: false,
      status: 400,
      error: 'InvalidEncoding',
    });
  });

  it('the openbmc SSE framing and truncated JSON with 400 MalformedJson', () => {
    const sse = sseExample();
    expect(parseRedfishPayload(sse)).toMatchObject({ ok: false, status: 400, error: 'MalformedJson' });
    expect(parseRedfishPayload('{"Events": [')).toMatchObject({ status: 400, error: 'MalformedJson' });
    expect(parseRedfishPayload('')).toMatchObject({ status: 400, error: 'MalformedJson' });
  });

  it('JSON that is not an Event with 400 NotAnEvent: arrays, scalars, a bare SubmitTestEvent record, Events not an array', () => {
    for (const body of [
      '[]',
      'null',
      '42',
      '"Events"',
      '{"EventId":"5","MessageId":"Event.1.0.FanWayTooSlow"}',
      '{"Events":{}}',
      '{"Events":null}',
    ]) {
      expect(parseRedfishPayload(body)).toMatchObject({ ok: false, status: 400, error: 'NotAnEvent' });
    }
  });

  it('records that are not objects with 400 MalformedRecord', () => {
    for (const body of ['{"Events":[1]}', '{"Events":[{},null]}', '{"Events":[[]]}', '{"Events":["OpenBMC.0.1.DCPowerOff"]}']) {
      expect(parseRedfishPayload(body)).toMatchObject({ ok: false, status: 400, error: 'MalformedRecord' });
    }
  });

  it('absurd nesting with 400 TooDeeplyNested instead of overflowing the stack later', () => {
    const deep = `{"Events":[{"Oem":${'['.repeat(5000)}${']'.repeat(5000)}}]}`;
    expect(parseRedfishPayload(deep)).toMatchObject({ ok: false, status: 400, error: 'TooDeeplyNested' });
  });
});

function sseExample(): string {
  return [
    'id: 1',
    'data:{',
    'data: "Id": "1",',
    'data: "Events": [ { "MessageId": "OpenBMC.0.1.InventoryAdded", "Severity": "OK"',
    'data:  "Context": "ABCDEFGH" } ]',
    'data:}',
  ].join('\n');
}

describe('parseRedfishPayload accepts', () => {
  it('an empty Events array (0 records) and a UTF-8 BOM', () => {
    expect(parseRedfishPayload('{"Events":[]}')).toEqual({ ok: true, event: { records: [] } });
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('{"Events":[],"Context":"c"}')]);
    expect(parseRedfishPayload(bom)).toMatchObject({ ok: true, event: { context: 'c', records: [] } });
  });

  it('numeric ids, missing EventType/Message/MemberId, root and record Context, Oem sections', () => {
    const p = parseRedfishPayload(fixture('xpureboot-messages.json'));
    if (!p.ok) throw new Error(p.message);
    expect(p.event.context).toBe('Default Context');
    expect(p.event.records[0]).toMatchObject({
      index: 0,
      eventId: '4411',
      registry: 'XpuReboot',
      key: 'Crashed',
      messageArgs: ['kernel panic'],
    });
    expect(p.event.records[0].memberId).toBeUndefined();
    const dell = parseRedfishPayload(fixture('dell-prefixed.json'));
    expect(dell.ok && dell.event.records[0]).toMatchObject({
      registry: 'IDRAC',
      key: 'ASR0001',
      context: 'any string is valid',
      memberId: '412',
    });
  });

  it('the four shapes of OriginOfCondition', () => {
    const origin = (name: string, i = 0) => {
      const p = parseRedfishPayload(fixture(name));
      return p.ok ? p.event.records[i].origin : 'parse failed';
    };
    expect(origin('intel-system-off.json')).toBe('/redfish/v1/Systems/QSBP82704274');
    expect(origin('hpe-string-origin.json')).toBe('/redfish/v1/Systems/1');
    expect(origin('dmtf-expanded-origin.json')).toBe('/redfish/v1/Systems/Bluefield');
    expect(origin('foxconn-dc-off.json')).toBeUndefined();
  });

  it('EventTimestamp, Foxconn EventTimeStamp and LogEntry Created', () => {
    const ts = (name: string) => {
      const p = parseRedfishPayload(fixture(name));
      return p.ok ? p.event.records[0].timestamp : 'parse failed';
    };
    expect(ts('foxconn-dc-off.json')).toBe('2025-03-02T17:57:23.000Z');
    expect(ts('bluefield-dc-off.json')).toBe('2025-03-02T06:25:31.000Z');
    expect(ts('gigabyte-alert.json')).toBe('2025-03-02T22:57:33.000Z');
  });
});

describe('splitMessageId', () => {
  it('takes the key as the last dot segment and ignores the version', () => {
    expect(splitMessageId('Alert.1.0.0.DCPowerOn')).toEqual({ registry: 'Alert', key: 'DCPowerOn' });
    expect(splitMessageId('IDRAC.2.8.TMP0110')).toEqual({ registry: 'IDRAC', key: 'TMP0110' });
    expect(splitMessageId('TMP0120')).toEqual({ registry: null, key: 'TMP0120' });
    expect(splitMessageId('ZT_Event_Service_Log.1.0.Alert')).toEqual({ registry: 'ZT_Event_Service_Log', key: 'Alert' });
    expect(splitMessageId('OpenBMC.0.1.')).toBeNull();
    expect(splitMessageId('%REGISTRY_ID%Alert')).toBeNull();
  });
});

describe('normalizeTimestamp', () => {
  it('reads the offsets BMCs send', () => {
    expect(normalizeTimestamp('2021-07-13T15:09:55+0300')).toBe('2021-07-13T12:09:55.000Z');
    expect(normalizeTimestamp('2023-02-16T15:50:29-0500')).toBe('2023-02-16T20:50:29.000Z');
    expect(normalizeTimestamp('2024-05-20T17:57:23+00:00')).toBe('2024-05-20T17:57:23.000Z');
    expect(normalizeTimestamp('2021-04-13T03:29:51Z')).toBe('2021-04-13T03:29:51.000Z');
    expect(normalizeTimestamp('2023-12-13T21:05:04.000000+05:30')).toBe('2023-12-13T15:35:04.000Z');
    expect(normalizeTimestamp('2024-06-30T23:59:60Z')).toBe('2024-06-30T23:59:59.000Z');
  });

  it('refuses what is not a time', () => {
    for (const v of [
      '',
      'now',
      '2021-13-01T00:00:00Z',
      '2021-02-29T00:00:00Z',
      '2021-01-01T25:00:00Z',
      '2021-01-01T00:00:00+2500',
      '0099-01-01T00:00:00Z',
    ]) {
      expect(normalizeTimestamp(v)).toBeUndefined();
    }
  });
});
