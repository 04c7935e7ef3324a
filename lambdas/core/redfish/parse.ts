// Parses a Redfish Event body as BMCs push it: strict on size and shape, tolerant of every vendor quirk inside a record.

export const DEFAULT_MAX_BYTES = 256 * 1024;
/** Real events nest about 7 levels (an expanded OriginOfCondition); anything far deeper is an attack, not a BMC. */
export const MAX_DEPTH = 64;

export type RedfishParseErrorCode =
  | 'PayloadTooLarge'
  | 'InvalidEncoding'
  | 'MalformedJson'
  | 'TooDeeplyNested'
  | 'NotAnEvent'
  | 'MalformedRecord';

export interface RedfishParseError {
  ok: false;
  status: 400 | 413;
  error: RedfishParseErrorCode;
  message: string;
}

/** One record of `Events[]`, with the fields that vary between vendors already normalized. */
export interface RedfishRecord {
  index: number;
  /** The MessageId as sent (trimmed), when it is a non-empty string. */
  messageId?: string;
  /** Registry prefix (`ResourceEvent`, `IDRAC`, ...) or null for bare ids such as Dell's `TMP0120`; undefined when there is no usable MessageId. */
  registry?: string | null;
  /** The last dot segment of the MessageId: `Alert.1.0.0.DCPowerOn` → `DCPowerOn`. */
  key?: string;
  /** EventId / MemberId as strings (some BMCs send numbers). */
  eventId?: string;
  memberId?: string;
  /** The timestamp string as sent, whichever key carried it. */
  timestampRaw?: string;
  /** That timestamp as ISO 8601 UTC, when it parses. */
  timestamp?: string;
  /** OriginOfCondition reduced to a path (`/redfish/v1/Systems/1/Memory`), whatever shape it came in. */
  origin?: string;
  /** The record's own Context (deprecated since Event v1_1_0, still sent by Dell, Gigabyte, HPE). */
  context?: string;
  messageArgs: readonly unknown[];
  message?: string;
  /** The record as received, for content hashing. */
  raw: Readonly<Record<string, unknown>>;
}

export interface RedfishEvent {
  /** Root Context: the subscription's Context. */
  context?: string;
  records: RedfishRecord[];
}

export type RedfishParseResult = { ok: true; event: RedfishEvent } | RedfishParseError;

function fail(status: 400 | 413, error: RedfishParseErrorCode, message: string): RedfishParseError {
  return { ok: false, status, error, message };
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

export function parseRedfishPayload(raw: string | Uint8Array, opts: { maxBytes?: number } = {}): RedfishParseResult {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  let text: string;
  if (typeof raw === 'string') {
    if (Buffer.byteLength(raw, 'utf8') > maxBytes) return fail(413, 'PayloadTooLarge', `the event is larger than ${maxBytes} bytes`);
    text = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
  } else {
    if (raw.byteLength > maxBytes) return fail(413, 'PayloadTooLarge', `the event is larger than ${maxBytes} bytes`);
    try {
      text = decoder.decode(raw); // drops a leading BOM
    } catch {
      return fail(400, 'InvalidEncoding', 'the body is not valid UTF-8');
    }
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return fail(400, 'MalformedJson', `the body is not JSON: ${(err as Error).message}`);
  }
  if (depthExceeds(doc, MAX_DEPTH)) return fail(400, 'TooDeeplyNested', `the JSON nests deeper than ${MAX_DEPTH} levels`);
  if (!isObject(doc)) return fail(400, 'NotAnEvent', 'a Redfish Event is a JSON object with an Events array');
  const events = doc.Events;
  if (!Array.isArray(events)) return fail(400, 'NotAnEvent', 'a Redfish Event needs an Events array');
  const records: RedfishRecord[] = [];
  for (let i = 0; i < events.length; i++) {
    const rec = events[i];
    if (!isObject(rec)) return fail(400, 'MalformedRecord', `Events[${i}] is not an object`);
    records.push(normalizeRecord(rec, i));
  }
  return { ok: true, event: { context: contextOf(doc.Context), records } };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Iterative, because JSON.parse accepts nesting that would overflow a recursive walk later on. */
function depthExceeds(root: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, d + 1]);
    }
  }
  return false;
}

function contextOf(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

function idOf(v: unknown): string | undefined {
  // Ids arrive as strings ("2162") or numbers (EventGroupId 77 shows BMCs do emit numbers).
  if (typeof v === 'string') return v.trim() === '' ? undefined : v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

function normalizeRecord(rec: Record<string, unknown>, index: number): RedfishRecord {
  const out: RedfishRecord = { index, messageArgs: Array.isArray(rec.MessageArgs) ? rec.MessageArgs : [], raw: rec };
  if (typeof rec.MessageId === 'string' && rec.MessageId.trim() !== '') {
    out.messageId = rec.MessageId.trim();
    const split = splitMessageId(out.messageId);
    if (split) {
      out.registry = split.registry;
      out.key = split.key;
    }
  }
  const eventId = idOf(rec.EventId);
  if (eventId !== undefined) out.eventId = eventId;
  const memberId = idOf(rec.MemberId);
  if (memberId !== undefined) out.memberId = memberId;
  // Foxconn spells it EventTimeStamp; LogEntry-shaped records (openbmc SSE, Gigabyte) carry Created.
  for (const k of ['EventTimestamp', 'EventTimeStamp', 'Created']) {
    const v = rec[k];
    if (typeof v !== 'string' || v.trim() === '') continue;
    out.timestampRaw ??= v.trim();
    const iso = normalizeTimestamp(v);
    if (iso) {
      out.timestampRaw = v.trim();
      out.timestamp = iso;
      break;
    }
  }
  const origin = originPath(rec.OriginOfCondition);
  if (origin !== undefined) out.origin = origin;
  const ctx = contextOf(rec.Context);
  if (ctx !== undefined) out.context = ctx;
  if (typeof rec.Message === 'string') out.message = rec.Message;
  return out;
}

const KEY_RE = /^[A-Za-z0-9_]+$/;

/**
 * Splits a MessageId into registry prefix and message key. The key is the last dot segment, because
 * Foxconn and Intel send four-part versions (`Alert.1.0.0.DCPowerOn`) and old iDRACs send bare keys (`TMP0120`).
 */
export function splitMessageId(messageId: string): { registry: string | null; key: string } | null {
  const parts = messageId.trim().split('.');
  const key = parts[parts.length - 1];
  if (!KEY_RE.test(key)) return null;
  if (parts.length === 1) return { registry: null, key };
  const registry = parts[0];
  if (!KEY_RE.test(registry)) return null;
  return { registry, key };
}

/**
 * OriginOfCondition comes as `{"@odata.id": ...}`, a plain string (HPE iLO, SubmitTestEvent), or the whole
 * resource expanded inline (IncludeOriginOfCondition); some carry a trailing slash or a full URL.
 */
export function originPath(v: unknown): string | undefined {
  let s: unknown = v;
  if (isObject(v)) s = v['@odata.id'];
  if (typeof s !== 'string') return undefined;
  return normalizePath(s);
}

export function normalizePath(s: string): string | undefined {
  let p = s.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(p);
  if (scheme) p = p.slice(scheme[0].length);
  p = p
    .replace(/[?#].*$/, '')
    .replace(/\/{2,}/g, '/')
    .replace(/\/+$/, '');
  return p.startsWith('/') ? p : undefined;
}

const TS_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Normalizes a BMC timestamp to ISO 8601 UTC. iDRAC sends its local time with a colon-less offset
 * (`+0300`), which strict RFC 3339 parsers reject; a missing offset is read as UTC.
 */
export function normalizeTimestamp(v: string): string | undefined {
  const m = TS_RE.exec(v.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s = '0', frac = '', off] = m;
  const year = Number(y),
    month = Number(mo),
    day = Number(d),
    hour = Number(h),
    min = Number(mi);
  let sec = Number(s);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || min > 59 || sec > 60) return undefined;
  if (day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return undefined;
  if (sec === 60) sec = 59; // a leap second: keep the event in the right minute
  const ms = Number((frac + '000').slice(0, 3));
  let offsetMin = 0;
  if (off && off !== 'Z' && off !== 'z') {
    const sign = off[0] === '-' ? -1 : 1;
    const digits = off.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (oh > 23 || om > 59) return undefined;
    offsetMin = sign * (oh * 60 + om);
  }
  const utc = Date.UTC(year, month - 1, day, hour, min, sec, ms) - offsetMin * 60_000;
  const date = new Date(utc);
  // Date.UTC maps years 0-99 onto 1900-1999: refuse them rather than move an event by centuries.
  if (Number.isNaN(date.getTime()) || year < 1000) return undefined;
  return date.toISOString();
}
