// Turns a parsed Redfish Event into native events for the token's node: Context check, host/xPU attribution, mapping, dedup keys.
import { createHash } from 'node:crypto';
import { SECONDS_TEXT } from '../reboot.ts';
import type { Inventory, NativeEvent, NativeEventType, NodeDef } from '../types.ts';
import { conditionHolds, HOST_REBOOT_METHODS, rulesFor, type Mapping, type MappingRule } from './mapping.ts';
import { normalizePath, type RedfishEvent, type RedfishRecord } from './parse.ts';

export type IgnoreCode =
  | 'NoMessageId'
  | 'MalformedMessageId'
  | 'UnmappedMessageId'
  | 'ConditionNotMet'
  | 'IgnoredByMapping'
  | 'OriginNotOfNode'
  | 'AmbiguousOrigin'
  | 'NoOrigin'
  | 'NoXpu'
  | 'AmbiguousXpu'
  | 'NotForTarget';

export interface IgnoredRecord {
  index: number;
  code: IgnoreCode;
  reason: string;
  messageId?: string;
}

export type TranslateResult = { kind: 'forbidden'; message: string } | { kind: 'ok'; accepted: NativeEvent[]; ignored: IgnoredRecord[] };

export interface TranslateOptions {
  /** The node the bearer token belongs to. */
  node: NodeDef;
  inventory: Inventory;
  mapping: Mapping;
  /** ISO time the API accepted the request. */
  receivedAt: string;
}

export class InvalidReceivedAt extends Error {
  override readonly name = 'InvalidReceivedAt';
}

const MAX_REASON = 1024;

type Resolved = { kind: 'host' } | { kind: 'xpu'; xpu: string };

export function translateRedfishEvent(event: RedfishEvent, opts: TranslateOptions): TranslateResult {
  const { node, inventory, mapping } = opts;
  const receivedMs = Date.parse(opts.receivedAt);
  if (Number.isNaN(receivedMs)) throw new InvalidReceivedAt(`receivedAt '${opts.receivedAt}' is not an ISO time`);
  const receivedAt = new Date(receivedMs).toISOString();

  const nodeIds = new Set(inventory.nodes.map((n) => n.id));
  for (const ctx of [event.context, ...event.records.map((r) => r.context)]) {
    const named = contextTarget(ctx, nodeIds);
    // A BMC configured for another node but posting with this node's token: refuse everything rather than misfile it.
    if (named && named.node !== node.id) {
      return { kind: 'forbidden', message: `Context '${ctx}' names node '${named.node}', but the token belongs to node '${node.id}'` };
    }
  }

  const accepted: NativeEvent[] = [];
  const ignored: IgnoredRecord[] = [];
  for (const rec of event.records) {
    const out = translateRecord(rec, event, node, nodeIds, mapping, receivedAt);
    if ('code' in out) ignored.push(out);
    else accepted.push(out);
  }
  return { kind: 'ok', accepted, ignored };
}

/**
 * What a Context names: `node-a` (the node), `node-a.dpu0` (that xPU's BMC, as in agent ids), or `node-a:anything`
 * (Cray's `<xname>:<label>` convention). Anything else (`Default Context`, `root`) names nothing.
 */
export function contextTarget(ctx: string | undefined, nodeIds: ReadonlySet<string>): { node: string; xpu?: string } | undefined {
  if (ctx === undefined) return undefined;
  const head = ctx.split(':')[0].trim();
  if (nodeIds.has(head)) return { node: head };
  const dot = head.indexOf('.');
  if (dot > 0 && nodeIds.has(head.slice(0, dot))) return { node: head.slice(0, dot), xpu: head.slice(dot + 1) };
  return undefined;
}

function ignore(rec: RedfishRecord, code: IgnoreCode, reason: string): IgnoredRecord {
  return { index: rec.index, code, reason, ...(rec.messageId !== undefined ? { messageId: rec.messageId } : {}) };
}

function translateRecord(
  rec: RedfishRecord,
  event: RedfishEvent,
  node: NodeDef,
  nodeIds: ReadonlySet<string>,
  mapping: Mapping,
  receivedAt: string,
): NativeEvent | IgnoredRecord {
  if (rec.messageId === undefined) return ignore(rec, 'NoMessageId', 'the record has no MessageId');
  if (rec.key === undefined || rec.registry === undefined)
    return ignore(rec, 'MalformedMessageId', `MessageId '${clip(rec.messageId)}' is not Prefix.Version.Key nor a bare key`);
  const rules = rulesFor(mapping, rec.registry, rec.key);
  if (rules.length === 0) return ignore(rec, 'UnmappedMessageId', `no mapping rule for ${rec.registry ?? '(bare)'} ${rec.key}`);
  const rule = rules.find((r) => r.when.every((c) => conditionHolds(c, rec.messageArgs)));
  if (!rule)
    return ignore(
      rec,
      'ConditionNotMet',
      `the MessageArgs of ${rec.key} meet no rule's condition (${rules.map((r) => r.source).join(', ')})`,
    );
  if (rule.ignore !== undefined) return ignore(rec, 'IgnoredByMapping', `${rule.ignore} (${rule.source})`);

  const ctx = contextTarget(rec.context ?? event.context, nodeIds);
  const scopedXpu = ctx?.node === node.id && ctx.xpu !== undefined && node.xpus.some((x) => x.id === ctx.xpu) ? ctx.xpu : undefined;
  const target = resolveTarget(rec, rule, node, scopedXpu);
  if ('code' in target) return target;
  const type: NativeEventType | undefined = rule.types[target.kind];
  if (!type) {
    const who = target.kind === 'host' ? 'the host' : `xPU '${target.xpu}'`;
    return ignore(rec, 'NotForTarget', `${rec.key} about ${who} maps to nothing (${rule.source})`);
  }

  const dedupKey = dedupKeyOf(node.id, rec, event.context);
  const native: NativeEvent = {
    id: `rf-${sha256(dedupKey).slice(0, 32)}`,
    type,
    node: node.id,
    ...(type.startsWith('xpu.') && target.kind === 'xpu' ? { xpu: target.xpu } : {}),
    // The BMC's own time, however wrong its clock (1970 before NTP, years ahead): it only orders this BMC's
    // events among themselves (contract 7.1; the coordinator dates everything by the receipt). Replaced by the
    // receipt, a record this BMC sent before its ready but delivered after it would look sent after it.
    time: rec.timestamp ?? receivedAt,
    ...(rec.timestamp === undefined ? { timeIsReceipt: true as const } : {}),
    data: dataOf(rule, type, rec),
    source: 'redfish',
    dedupKey,
    receivedAt,
    messageId: rec.messageId,
  };
  return native;
}

const SYSTEM_RE = /^\/redfish\/v1\/Systems\/[^/]+/i;

/**
 * Host or which xPU. An origin under /Systems/ must match a System of this node by path prefix (it points at
 * sub-resources such as `/Systems/1/Memory`). Anything else (no origin, a Chassis, a Manager) cannot be matched
 * against the inventory, so the per-BMC Context decides (`node-a.dpu0`), else the rule's `withoutOrigin`: the
 * host, the node's only xPU (the product's XpuReboot messages), or nothing.
 */
function resolveTarget(rec: RedfishRecord, rule: MappingRule, node: NodeDef, scopedXpu: string | undefined): Resolved | IgnoredRecord {
  let origin = rec.origin;
  if (origin === undefined && rule.originFromArg !== undefined) {
    const arg = rec.messageArgs[rule.originFromArg];
    if (typeof arg === 'string') origin = normalizePath(arg);
  }
  if (origin !== undefined && SYSTEM_RE.test(origin)) {
    const o = origin.toLowerCase();
    const candidates: Array<{ target: Resolved; len: number }> = [];
    const consider = (sys: string | undefined, target: Resolved) => {
      const p = sys === undefined ? undefined : normalizePath(sys)?.toLowerCase();
      if (p && (o === p || o.startsWith(p + '/'))) candidates.push({ target, len: p.length });
    };
    consider(node.redfishSystem, { kind: 'host' });
    for (const x of node.xpus) consider(x.redfishSystem, { kind: 'xpu', xpu: x.id });
    if (candidates.length === 0) {
      return ignore(rec, 'OriginNotOfNode', `origin ${clip(origin)} is no System of node '${node.id}' (inventory redfishSystem paths)`);
    }
    const best = Math.max(...candidates.map((c) => c.len));
    const top = candidates.filter((c) => c.len === best);
    if (top.length === 1) return top[0].target;
    const byContext = top.find((c) => c.target.kind === 'xpu' && c.target.xpu === scopedXpu);
    if (byContext) return byContext.target;
    // Host and xPU at one path (two OpenBMCs both serving /Systems/system): a rule that names the xPU when
    // nothing else does (the product's own XpuReboot messages: only an xPU sends them) names it here too. A
    // vendor message stays ambiguous: the xPU's BMC sends BIOSBoot too, a host's BMC OperatingSystemCrash.
    const xpus = top.filter((c) => c.target.kind === 'xpu');
    if (rule.withoutOrigin === 'xpu' && xpus.length === 1) return xpus[0].target;
    return ignore(
      rec,
      'AmbiguousOrigin',
      `origin ${clip(origin)} matches several Systems of node '${node.id}'; give each BMC its own Context (node.xpu)`,
    );
  }
  if (scopedXpu !== undefined) return { kind: 'xpu', xpu: scopedXpu };
  if (rule.withoutOrigin === 'host') return { kind: 'host' };
  if (rule.withoutOrigin === 'ignore')
    return ignore(rec, 'NoOrigin', `${rec.key} names no System of node '${node.id}' and its rule (${rule.source}) does not guess one`);
  if (node.xpus.length === 1) return { kind: 'xpu', xpu: node.xpus[0].id };
  if (node.xpus.length === 0) return ignore(rec, 'NoXpu', `${rec.key} is about an xPU, but node '${node.id}' has none`);
  return ignore(
    rec,
    'AmbiguousXpu',
    `${rec.key} has no origin and node '${node.id}' has several xPUs; subscribe each xPU's BMC with Context '${node.id}.<xpu>'`,
  );
}

function dataOf(rule: MappingRule, type: NativeEventType, rec: RedfishRecord): Record<string, unknown> {
  const pick = (field: 'noticeSeconds' | 'reason' | 'method' | 'tenant'): unknown => {
    const i = rule.args[field];
    const fromArg = i === undefined ? undefined : coerce(field, rec.messageArgs[i]);
    return fromArg ?? rule.data[field];
  };
  const data: Record<string, unknown> = {};
  const reason = pick('reason');
  if (reason !== undefined) data.reason = reason;
  if (type === 'xpu.reboot.pending') {
    const notice = pick('noticeSeconds');
    if (notice !== undefined) data.noticeSeconds = notice;
    // The contract gives a pending reboot a reason; a BMC that sent none still said why in its Message.
    data.reason ??= coerce('reason', rec.message) ?? rec.messageId;
  }
  if (type === 'host.reboot.requested') {
    const method = pick('method');
    if (method !== undefined) data.method = method;
  }
  if (type === 'host.ready') {
    const tenant = pick('tenant');
    if (tenant !== undefined) data.tenant = tenant;
  }
  return data;
}

/** MessageArgs are strings by schema but arrive as numbers, nulls or junk (`["NoAMS","Busy","Cached"]`). */
function coerce(field: 'noticeSeconds' | 'reason' | 'method' | 'tenant', v: unknown): string | number | undefined {
  switch (field) {
    case 'noticeSeconds': {
      const n = typeof v === 'number' ? v : typeof v === 'string' && SECONDS_TEXT.test(v) ? Number(v) : NaN;
      return Number.isFinite(n) && n > 0 ? n : undefined;
    }
    case 'method': {
      const m = typeof v === 'string' ? v.trim().toLowerCase().replace(/#$/, '') : '';
      return (HOST_REBOOT_METHODS as readonly string[]).includes(m) ? m : undefined;
    }
    case 'reason':
    case 'tenant': {
      const s = typeof v === 'string' ? v.trim() : typeof v === 'number' && Number.isFinite(v) ? String(v) : '';
      return s === '' ? undefined : s.slice(0, field === 'reason' ? MAX_REASON : 256);
    }
  }
}

/**
 * Durable idempotency key. With an EventId, the key is EventId + MemberId + origin + MessageId (+ Context): the
 * contract's "same EventId and origin" is a redelivery, also one a sender re-stamped (its timestamp is not in
 * the key); MemberId and MessageId stay in it because Dell's EventId is a message class shared by unrelated
 * events (its MemberId is the instance), and the DMTF mockup server's top-level Id is always "1". Without an
 * EventId (Foxconn, the openbmc SSE shape), it is a hash of the record's canonical JSON, timestamp included: the
 * contract's "same content". A MemberId alone is no instance id: HPE sends "0" on every record.
 */
export function dedupKeyOf(nodeId: string, rec: RedfishRecord, rootContext: string | undefined): string {
  const context = rec.context ?? rootContext ?? null;
  if (rec.eventId !== undefined) {
    const material = JSON.stringify([rec.eventId ?? null, rec.memberId ?? null, rec.origin ?? null, rec.messageId ?? null, context]);
    return `${nodeId}:redfish:id:${sha256(material)}`;
  }
  return `${nodeId}:redfish:content:${sha256(JSON.stringify([context, canonicalJson(rec.raw)]))}`;
}

/** JSON with object keys sorted at every level, so key order chosen by a BMC's serializer does not change the hash. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const keys = Object.keys(v).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function clip(s: string): string {
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}
