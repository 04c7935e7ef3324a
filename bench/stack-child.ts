// The local stack exactly as `npm start` builds it (startStack), in its own process, plus what the bench counts:
// HTTP requests of every embedded server, DynamoDB and SQS commands with their read/write units, and a few
// timestamps on the event → first command path. Counting is a map increment per call; nothing is slowed on purpose.
import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { GSI1_ATTRIBUTES, GSI2_ATTRIBUTES } from '../lambdas/adapters/table-schema.ts';
import { parseConfig } from '../local/config.ts';
import { jsonLogger } from '../local/logger.ts';
import { startStack, type Stack } from '../local/stack.ts';
import { serviceMemoryUsage } from '../local/service-process.ts';
import { serveIpc } from './lib.ts';

for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];

const now = () => performance.timeOrigin + performance.now();
const REGION_ACCOUNT = 'us-east-1:000000000000';
const inc = (m: Map<string, number>, k: string, v = 1) => m.set(k, (m.get(k) ?? 0) + v);

// ---- Diagnostics: with BENCH_CALL_LOG=FILE, each DynamoDB call (epoch ms sent, round trip, command), to lay the
// slowest samples (BENCH_SAMPLES_OUT in run.ts) beside them; bench/pause-log.mjs logs each process's GC pauses and stalls.
const callLog: string[] | undefined = process.env.BENCH_CALL_LOG ? [] : undefined;
if (callLog)
  setInterval(() => callLog.length && appendFileSync(process.env.BENCH_CALL_LOG!, `${callLog.splice(0).join('\n')}\n`), 1000).unref();

// ---- HTTP: every request to every server of this process (API, fauxqs, dynalite, Step Functions) ----------------

interface RequestScope {
  /** DynamoDB units spent while serving this API request (AsyncLocalStorage follows its awaits). */
  rru: number;
  wru: number;
  ddbOps: number;
  /** The same units by command and item kind (see `ddbBy`), kept only if the request was not an idle poll. */
  by: Map<string, DdbPart>;
}
interface DdbPart {
  ops: number;
  rru: number;
  wru: number;
}
const scope = new AsyncLocalStorage<RequestScope>();

const httpCounts = new Map<string, number>();
/** Per API route class: count and summed duration (ms) of the requests that were not idle long polls. */
const apiTime = new Map<string, { n: number; ms: number }>();
const idle = { polls: 0, ms: 0, rru: 0, wru: 0, ddbOps: 0 };
const rebootDdb = { rru: 0, wru: 0, ops: 0 };
/** `rebootDdb` split by `<command> <item kind>` (kind: the pk prefix, e.g. R = reboot, A = command; `+gsiN`: the index copies). */
const ddbBy = new Map<string, DdbPart>();
function addPart(m: Map<string, DdbPart>, label: string, p: DdbPart) {
  const t = m.get(label) ?? { ops: 0, rru: 0, wru: 0 };
  t.ops += p.ops;
  t.rru += p.rru;
  t.wru += p.wru;
  m.set(label, t);
}
const pollsInflight = new Map<string, number>();
/** agent → first time a long poll answered it with commands (latency marks). */
const firstDelivery = new Map<string, number>();
/** agent → latest notify; a poll that was open at a notify but answered much later missed its wake-up. */
const lastNotify = new Map<string, number>();
const missedWakeups = { count: 0, delaysMs: [] as number[] };

function apiRoute(method: string, url: string): { route: string; agent?: string; wait?: number } {
  const [path, query = ''] = url.split('?');
  let m = /^\/v1\/agents\/([^/]+)\/commands$/.exec(path);
  if (m) {
    const wait = Number(new URLSearchParams(query).get('wait') ?? 0);
    return {
      route: method === 'GET' ? (wait > 0 ? 'GET poll' : 'GET poll wait=0') : `${method} commands`,
      agent: decodeURIComponent(m[1]),
      wait,
    };
  }
  m = /^\/v1\/agents\/([^/]+)\/commands\/[^/]+$/.exec(path);
  if (m) return { route: `${method} command result`, agent: decodeURIComponent(m[1]) };
  if (path.startsWith('/v1/reboots/') && path.endsWith('/extensions')) return { route: `${method} extension` };
  if (path.startsWith('/v1/reboots/')) return { route: `${method} reboot` };
  return { route: `${method} ${path}` };
}

function onRequest(req: http.IncomingMessage, res: http.ServerResponse): RequestScope | undefined {
  const target = req.headers['x-amz-target'];
  if (typeof target === 'string') {
    // AWS JSON protocols: DynamoDB_20120810.GetItem, AmazonSQS.SendMessageBatch, AWSStepFunctions.StartExecution
    inc(httpCounts, target);
    return undefined;
  }
  const started = now();
  const { route, agent, wait } = apiRoute(req.method ?? 'GET', req.url ?? '/');
  inc(httpCounts, `API ${route}`);
  const s: RequestScope = { rru: 0, wru: 0, ddbOps: 0, by: new Map() };
  let bodyBytes = 0;
  if (route === 'GET poll' && agent) {
    inc(pollsInflight, agent);
    // Headers given to writeHead are not readable back: count the body bytes to tell "[]" from commands.
    const count = (chunk: unknown) => {
      if (typeof chunk === 'string') bodyBytes += Buffer.byteLength(chunk);
      else if (chunk instanceof Uint8Array) bodyBytes += chunk.byteLength;
    };
    const write = res.write;
    const end = res.end;
    res.write = function (this: http.ServerResponse, chunk: unknown, ...rest: unknown[]) {
      count(chunk);
      return (write as any).call(this, chunk, ...rest);
    } as typeof res.write;
    res.end = function (this: http.ServerResponse, chunk?: unknown, ...rest: unknown[]) {
      if (typeof chunk !== 'function') count(chunk);
      return (end as any).call(this, chunk, ...rest);
    } as typeof res.end;
  }
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    const ms = now() - started;
    if (route === 'GET poll' && agent) {
      inc(pollsInflight, agent, -1);
      const empty = bodyBytes === 2;
      if (empty && res.statusCode === 200) {
        // An idle long poll: a cost of keeping agents connected, not of any reboot.
        idle.polls++;
        idle.ms += ms;
        idle.rru += s.rru;
        idle.wru += s.wru;
        idle.ddbOps += s.ddbOps;
        return;
      }
      if (res.statusCode === 200 && !firstDelivery.has(agent)) firstDelivery.set(agent, now());
      const n = lastNotify.get(agent);
      if (res.statusCode === 200 && n !== undefined && n > started && now() - n > 1000) {
        missedWakeups.count++;
        if (missedWakeups.delaysMs.length < 1000) missedWakeups.delaysMs.push(Math.round(now() - n));
      }
    }
    const t = apiTime.get(route) ?? { n: 0, ms: 0 };
    t.n++;
    // A long poll that delivered waited idle first: bill it like a wait=0 poll (see README, cost model).
    t.ms += route === 'GET poll' && (wait ?? 0) > 0 ? 0 : ms;
    apiTime.set(route, t);
    rebootDdb.rru += s.rru;
    rebootDdb.wru += s.wru;
    rebootDdb.ops += s.ddbOps;
    for (const [k, p] of s.by) addPart(ddbBy, k, p);
  };
  res.once('finish', finish);
  res.once('close', finish);
  return s;
}

const COUNT = !process.env.BENCH_NO_COUNTERS; // BENCH_NO_COUNTERS=1: measure the counters' own overhead
const origEmit = http.Server.prototype.emit as (this: http.Server, event: string, ...args: unknown[]) => boolean;
if (COUNT)
  http.Server.prototype.emit = function (this: http.Server, event: string, ...args: unknown[]): boolean {
    if (event === 'request') {
      const s = onRequest(args[0] as http.IncomingMessage, args[1] as http.ServerResponse);
      if (s) return scope.run(s, () => origEmit.call(this, event, ...args));
    }
    return origEmit.call(this, event, ...args);
  } as typeof http.Server.prototype.emit;

// ---- DynamoDB: commands and read/write units as on-demand DynamoDB would bill them -------------------------------

/** DynamoDB item size: attribute names plus values (numbers ~ digits/2 + 1, containers 3 bytes + 1 per element). */
function valueSize(v: unknown): number {
  if (v === null || v === undefined) return 1;
  if (typeof v === 'string') return Buffer.byteLength(v);
  if (typeof v === 'number' || typeof v === 'bigint') return Math.ceil(String(v).replace(/^-/, '').replace('.', '').length / 2) + 1;
  if (typeof v === 'boolean') return 1;
  if (v instanceof Uint8Array) return v.byteLength;
  if (v instanceof Set) return [...v].reduce((a: number, x) => a + valueSize(x), 0);
  if (Array.isArray(v)) return 3 + v.reduce((a: number, x) => a + 1 + valueSize(x), 0);
  if (typeof v === 'object') return 3 + itemSize(v as Record<string, unknown>) + Object.keys(v as object).length;
  return 1;
}
function itemSize(item: Record<string, unknown> | undefined): number {
  if (!item) return 0;
  let n = 0;
  for (const [k, v] of Object.entries(item)) if (v !== undefined) n += Buffer.byteLength(k) + valueSize(v);
  return n;
}

const ddbOps = new Map<string, number>();
/** Per DynamoDB command: calls and summed round-trip time (SDK + HTTP + dynalite), ms. */
const ddbTime = new Map<string, { n: number; ms: number }>();
const ddbUnits = { rru: 0, wru: 0, gsiWru: 0, conditionFailures: 0 };

/** The table's indexes as local/dynamo.ts and cdk/constructs/tables.ts define them (INCLUDE projections). */
const INDEXES = [
  { name: 'gsi1', pk: 'gsi1pk', sk: 'gsi1sk', attrs: GSI1_ATTRIBUTES as readonly string[] },
  { name: 'gsi2', pk: 'gsi2pk', sk: 'gsi2sk', attrs: GSI2_ATTRIBUTES as readonly string[] },
];
interface IndexEntry {
  key: string;
  size: number;
  sig: string;
}
/**
 * An item's entry in each index it is in (it has that index's keys): the index keys, the table keys and the projected
 * attributes the item has. DynamoDB bills an index write by the entry's size, only when the entry changes: a put or a
 * delete when the item enters or leaves the index, both when its index key changes, one update when a projected
 * attribute changes, nothing when the write leaves the entry as it was.
 */
function indexEntries(item: Record<string, unknown> | undefined): Record<string, IndexEntry> {
  const out: Record<string, IndexEntry> = {};
  if (!item) return out;
  for (const ix of INDEXES) {
    if (item[ix.pk] === undefined || item[ix.sk] === undefined) continue;
    const entry: Record<string, unknown> = {};
    for (const a of ['pk', 'sk', ix.pk, ix.sk, ...ix.attrs]) if (item[a] !== undefined) entry[a] = item[a];
    out[ix.name] = {
      key: `${item[ix.pk]}|${item[ix.sk]}`,
      size: itemSize(entry),
      sig: JSON.stringify(entry, (_k, v) => (v instanceof Set ? [...v] : v)),
    };
  }
  return out;
}
function indexWriteUnits(before: Record<string, IndexEntry>, after: Record<string, IndexEntry>): number {
  const kb = (e: IndexEntry) => Math.max(1, Math.ceil(e.size / 1024));
  let units = 0;
  for (const ix of INDEXES) {
    const o = before[ix.name];
    const n = after[ix.name];
    if (!o && !n) continue;
    if (!o) units += kb(n!);
    else if (!n) units += kb(o);
    else if (o.key !== n.key) units += kb(o) + kb(n);
    else if (o.sig !== n.sig) units += Math.max(kb(o), kb(n));
  }
  return units;
}
/** Attribute names an update expression touches (its #names resolved). */
function updatedNames(input: { UpdateExpression?: string; ExpressionAttributeNames?: Record<string, string> }): Set<string> {
  const names = new Set<string>();
  for (const m of (input.UpdateExpression ?? '').matchAll(/#?[A-Za-z_][A-Za-z0-9_]*/g)) {
    const w = m[0];
    names.add(w.startsWith('#') ? (input.ExpressionAttributeNames?.[w] ?? w) : w);
  }
  return names;
}
/** What the table holds, as far as this process wrote or read it: size and its index entries. */
const known = new Map<string, { size: number; entries: Record<string, IndexEntry> }>();
const keyOf = (k: Record<string, unknown> | undefined) => (k ? `${k.pk}|${k.sk}` : '');

/** What kind of item a key is: its pk up to the first `#` (R reboot, A command, N node state, E event seen...). */
const kindOf = (k: Record<string, unknown> | undefined) => String(k?.pk ?? '?').split('#')[0];

function chargeRead(s: RequestScope | undefined, units: number, label: string) {
  ddbUnits.rru += units;
  addPart(s ? s.by : ddbBy, label, { ops: 1, rru: units, wru: 0 });
  if (s) {
    s.rru += units;
    s.ddbOps++;
  } else {
    rebootDdb.rru += units;
    rebootDdb.ops++;
  }
}
function chargeWrite(s: RequestScope | undefined, units: number, label: string, gsi = 0) {
  ddbUnits.wru += units + gsi;
  ddbUnits.gsiWru += gsi;
  addPart(s ? s.by : ddbBy, label, { ops: 1, rru: 0, wru: units });
  if (gsi) addPart(s ? s.by : ddbBy, `${label} +gsi`, { ops: 0, rru: 0, wru: gsi });
  if (s) {
    s.wru += units + gsi;
    s.ddbOps++;
  } else {
    rebootDdb.wru += units + gsi;
    rebootDdb.ops++;
  }
}

function installDynamoCounter(stack: Stack) {
  stack.dynamo.client.middlewareStack.add(
    (next, context) => async (args: any) => {
      const cmd = String((context as { commandName?: string }).commandName ?? 'unknown').replace(/Command$/, '');
      inc(ddbOps, cmd);
      const s = scope.getStore();
      const input = args.input ?? {};
      let out: any;
      const t0 = now();
      const timed = () => {
        const t = ddbTime.get(cmd) ?? { n: 0, ms: 0 };
        t.n++;
        t.ms += now() - t0;
        ddbTime.set(cmd, t);
        callLog?.push(JSON.stringify({ at: t0, ms: now() - t0, cmd }));
      };
      try {
        out = await next(args);
        timed();
      } catch (err) {
        timed();
        if ((err as Error).name === 'ConditionalCheckFailedException') {
          // A failed condition still costs the write (at least 1 WRU, sized by the existing item).
          ddbUnits.conditionFailures++;
          const old = known.get(keyOf(input.Item ?? input.Key));
          chargeWrite(s, Math.max(1, Math.ceil((old?.size ?? 0) / 1024)), `${cmd} ${kindOf(input.Item ?? input.Key)} failed`);
        }
        throw err;
      }
      const output = out.output ?? {};
      switch (cmd) {
        case 'GetItem': {
          const size = itemSize(output.Item);
          if (output.Item) known.set(keyOf(input.Key), { size, entries: indexEntries(output.Item) });
          chargeRead(s, Math.max(1, Math.ceil(size / 4096)) * (input.ConsistentRead ? 1 : 0.5), `${cmd} ${kindOf(input.Key)}`);
          break;
        }
        case 'BatchGetItem': {
          // Billed per item read, each rounded up to 4 KB (halved unless consistent).
          for (const [table, items] of Object.entries((output.Responses ?? {}) as Record<string, Record<string, unknown>[]>)) {
            const consistent = input.RequestItems?.[table]?.ConsistentRead;
            for (const it of items)
              chargeRead(s, Math.max(1, Math.ceil(itemSize(it) / 4096)) * (consistent ? 1 : 0.5), `${cmd} ${kindOf(it)}`);
          }
          break;
        }
        case 'Query': {
          let size = 0;
          for (const it of output.Items ?? []) size += itemSize(it);
          const p = String(Object.values(input.ExpressionAttributeValues ?? {})[0] ?? '?').split('#')[0];
          chargeRead(
            s,
            Math.max(1, Math.ceil(size / 4096)) * (input.ConsistentRead ? 1 : 0.5),
            `${cmd} ${p}${input.IndexName ? ` ${input.IndexName}` : ''}`,
          );
          break;
        }
        case 'PutItem': {
          const k = keyOf(input.Item);
          const size = itemSize(input.Item);
          // An item this process never saw is taken as new (the coordinator reads what it overwrites, or creates it).
          const old = known.get(k);
          const entries = indexEntries(input.Item);
          const gsiUnits = indexWriteUnits(old?.entries ?? {}, entries);
          chargeWrite(s, Math.max(Math.ceil(size / 1024), Math.ceil((old?.size ?? 0) / 1024), 1), `${cmd} ${kindOf(input.Item)}`, gsiUnits);
          known.set(k, { size, entries });
          break;
        }
        case 'UpdateItem': {
          const k = keyOf(input.Key);
          const old = known.get(k);
          if (input.ReturnValues === 'ALL_NEW' && output.Attributes) {
            const size = itemSize(output.Attributes);
            const entries = indexEntries(output.Attributes);
            const gsiUnits = indexWriteUnits(old?.entries ?? {}, entries);
            chargeWrite(
              s,
              Math.max(1, Math.ceil(size / 1024), Math.ceil((old?.size ?? 0) / 1024)),
              `${cmd} ${kindOf(input.Key)}`,
              gsiUnits,
            );
            known.set(k, { size, entries });
            break;
          }
          // The new item is not returned: an index entry the update may change is charged once (entries are < 1 KB).
          const touched = updatedNames(input);
          let gsiUnits = 0;
          for (const ix of INDEXES) {
            const e = old?.entries[ix.name];
            if (!e && !touched.has(ix.pk)) continue;
            if ([ix.pk, ix.sk, ...ix.attrs].some((a) => touched.has(a))) gsiUnits += e && touched.has(ix.pk) ? 2 : 1;
          }
          chargeWrite(s, Math.max(1, Math.ceil((old?.size ?? 0) / 1024)), `${cmd} ${kindOf(input.Key)}`, gsiUnits);
          break;
        }
        case 'DeleteItem': {
          const k = keyOf(input.Key);
          const old = known.get(k);
          chargeWrite(
            s,
            Math.max(1, Math.ceil((old?.size ?? 0) / 1024)),
            `${cmd} ${kindOf(input.Key)}`,
            indexWriteUnits(old?.entries ?? {}, {}),
          );
          known.delete(k);
          break;
        }
        default:
          break;
      }
      return out;
    },
    { step: 'initialize', name: 'benchDynamoCounter', priority: 'high' },
  );
}

// ---- SQS: requests, messages, and how long each ingest batch took (receive → delete) -----------------------------

const sqsOps = new Map<string, number>();
const sqsTime = new Map<string, { n: number; ms: number }>();
const sqsMsgs = { sent: 0, received: 0, deleted: 0, nonEmptyReceives: 0, emptyReceives: 0 };
const batchStart = new Map<string, number>();
const ingestBatch = { n: 0, ms: 0 };

function installSqsCounter(stack: Stack) {
  stack.sqs.client.middlewareStack.add(
    (next, context) => async (args: any) => {
      const cmd = String((context as { commandName?: string }).commandName ?? 'unknown').replace(/Command$/, '');
      inc(sqsOps, cmd);
      const input = args.input ?? {};
      if (cmd === 'DeleteMessageBatch') {
        let start = Infinity;
        for (const e of input.Entries ?? []) {
          const t = batchStart.get(e.ReceiptHandle);
          if (t !== undefined) start = Math.min(start, t);
          batchStart.delete(e.ReceiptHandle);
        }
        if (start !== Infinity) {
          ingestBatch.n++;
          ingestBatch.ms += now() - start;
        }
      }
      const t0 = now();
      const out: any = await next(args);
      if (cmd !== 'ReceiveMessage') {
        const t = sqsTime.get(cmd) ?? { n: 0, ms: 0 };
        t.n++;
        t.ms += now() - t0;
        sqsTime.set(cmd, t);
      }
      const output = out.output ?? {};
      if (cmd === 'SendMessageBatch') sqsMsgs.sent += (output.Successful ?? []).length;
      if (cmd === 'ReceiveMessage') {
        const n = (output.Messages ?? []).length;
        sqsMsgs.received += n;
        if (n > 0) {
          sqsMsgs.nonEmptyReceives++;
          const t = now();
          for (const m of output.Messages) batchStart.set(m.ReceiptHandle, t);
        } else sqsMsgs.emptyReceives++;
      }
      if (cmd === 'DeleteMessageBatch') sqsMsgs.deleted += (output.Successful ?? []).length;
      return out;
    },
    { step: 'initialize', name: 'benchSqsCounter', priority: 'high' },
  );
}

// ---- marks on the event → first command path (instance methods wrapped, the classes untouched) -------------------

const marks = {
  /** dedupKey → when the API handed the event to the queue, and when the queue had stored it. */
  sendStart: new Map<string, number>(),
  sendEnd: new Map<string, number>(),
  /** dedupKey → when the ingest handler first looked at the event. */
  ingestStart: new Map<string, number>(),
  /** rebootId → StartExecution call and return, and its node. */
  wfCall: new Map<string, number>(),
  wfDone: new Map<string, number>(),
  wfNode: new Map<string, string>(),
  /** rebootId → when its first command was about to be written. */
  firstPut: new Map<string, number>(),
  /** agent → first notify (commands written, long poll woken). */
  notify: new Map<string, number>(),
};
const FIRST_COMMANDS = new Set(['migrate-workloads', 'protect-pcie', 'allow-coredump', 'free-host-context', 'deny-host-reboot']);
let rebootsCreated = 0;
/** Event key → the reboot id it was mapped to (ULIDs: the bench cannot derive them). */
const eventReboots = new Map<string, string>();
let lastFirstCommandAt = 0;

function wrap<T extends object>(obj: T, name: string, fn: (orig: (...a: any[]) => Promise<any>, ...a: any[]) => Promise<any>) {
  const o = obj as Record<string, any>;
  const orig = o[name].bind(obj);
  o[name] = (...a: any[]) => fn(orig, ...a);
}

function installMarks(stack: Stack) {
  const { store, workflows, queue, signal } = stack.deps;
  wrap(queue, 'send', async (orig, events: Array<{ dedupKey: string }>) => {
    const t = now();
    const r = await orig(events);
    const t2 = now();
    for (const ev of events) {
      if (!marks.sendStart.has(ev.dedupKey)) {
        marks.sendStart.set(ev.dedupKey, t);
        marks.sendEnd.set(ev.dedupKey, t2);
      }
    }
    return r;
  });
  // The ingest's first store call: lookUpEvent for a start, isEventSeen for the other events.
  wrap(store, 'isEventSeen', async (orig, key: string) => {
    if (!marks.ingestStart.has(key)) marks.ingestStart.set(key, now());
    return orig(key);
  });
  wrap(store, 'lookUpEvent', async (orig, key: string, legacy: string) => {
    if (!marks.ingestStart.has(key)) marks.ingestStart.set(key, now());
    return orig(key, legacy);
  });
  wrap(store, 'mapEventToReboot', async (orig, key: string, id: string, ttl: number) => {
    const got = await orig(key, id, ttl);
    eventReboots.set(key, got);
    return got;
  });
  // A start maps its key with this one (beside its look-up); false: mapped before, by the call recorded then.
  wrap(store, 'tryMapEventToReboot', async (orig, key: string, id: string, ttl: number) => {
    const put = await orig(key, id, ttl);
    if (put && !eventReboots.has(key)) eventReboots.set(key, id);
    return put;
  });
  wrap(store, 'createReboot', async (orig, r: unknown) => {
    const ok = await orig(r);
    if (ok) rebootsCreated++;
    return ok;
  });
  wrap(store, 'putCommand', async (orig, cmd: { rebootId: string; type: string }) => {
    const t = now();
    const ok = await orig(cmd);
    if (ok && FIRST_COMMANDS.has(cmd.type) && !marks.firstPut.has(cmd.rebootId)) {
      marks.firstPut.set(cmd.rebootId, t);
      lastFirstCommandAt = now();
    }
    return ok;
  });
  wrap(workflows, 'start', async (orig, kind: string, id: string, input: { node: string }) => {
    const t = now();
    const r = await orig(kind, id, input);
    if (!marks.wfCall.has(id)) {
      marks.wfCall.set(id, t);
      marks.wfDone.set(id, now());
      marks.wfNode.set(id, input.node);
    }
    return r;
  });
  const origNotify = signal.notify.bind(signal);
  signal.notify = (agent: string, commands?: Parameters<typeof origNotify>[1]) => {
    const t = now();
    if (!marks.notify.has(agent)) marks.notify.set(agent, t);
    lastNotify.set(agent, t);
    origNotify(agent, commands);
  };
  // A claimed poll is handed its commands instead of notified (lambdas/handlers/command-delivery.ts): same mark.
  const origClaim = signal.claim?.bind(signal);
  if (origClaim) {
    signal.claim = (agent: string) => {
      const claim = origClaim(agent);
      if (!claim) return claim;
      return {
        get live() {
          return claim.live;
        },
        hand: (commands) => {
          const t = now();
          if (!marks.notify.has(agent)) marks.notify.set(agent, t);
          lastNotify.set(agent, t);
          return claim.hand(commands);
        },
        release: () => claim.release(),
      };
    };
  }
}

// ---- the stack ---------------------------------------------------------------------------------------------------

const config = parseConfig(process.env);
const logger = jsonLogger(config.LOG_LEVEL);
const stack = await startStack({ config, logger });
if (COUNT) {
  installDynamoCounter(stack);
  installSqsCounter(stack);
  // The local SQS client caches its resolved middleware per command class (local/sdk-clients.ts): drop what
  // the start-up calls cached, so every later call goes through the counter just added.
  delete (stack.sqs.client as unknown as { handlers?: unknown }).handlers;
}
installMarks(stack);

const arn = (machine: string, name: string) => `arn:aws:states:${REGION_ACCOUNT}:execution:${machine}:${name}`;
const machineArn = (machine: string) => `arn:aws:states:${REGION_ACCOUNT}:stateMachine:${machine}`;

function allExecutions(machine: string) {
  const out: Array<{ name: string; status: string }> = [];
  let nextToken: string | undefined;
  do {
    const page = stack.engine.listExecutions({ stateMachineArn: machineArn(machine), maxResults: 1000, nextToken });
    for (const e of page.executions) out.push({ name: e.name, status: e.status });
    nextToken = page.nextToken;
  } while (nextToken);
  return out;
}

serveIpc({
  stats: () => ({
    at: now(),
    http: Object.fromEntries(httpCounts),
    apiTime: Object.fromEntries(apiTime),
    idle: { ...idle },
    rebootDdb: { ...rebootDdb },
    ddbBy: Object.fromEntries([...ddbBy].map(([k, p]) => [k, { ...p }])),
    ddbOps: Object.fromEntries(ddbOps),
    ddbTime: Object.fromEntries(ddbTime),
    sqsTime: Object.fromEntries(sqsTime),
    ddbUnits: { ...ddbUnits },
    sqsOps: Object.fromEntries(sqsOps),
    sqsMsgs: { ...sqsMsgs },
    ingestBatch: { ...ingestBatch },
    metrics: Object.fromEntries(stack.counters),
    rebootsCreated,
    firstCommands: marks.firstPut.size,
    lastFirstCommandAt,
    executionsStarted: marks.wfCall.size,
    missedWakeups: { count: missedWakeups.count, delaysMs: missedWakeups.delaysMs.slice(0, 20) },
  }),
  /** The reboot ids these event keys were mapped to (null: not yet). */
  rebootIds: ({ keys }: { keys: string[] }) => keys.map((k) => eventReboots.get(k) ?? null),
  /** How many of these agents have a long poll open right now. */
  polling: ({ agents }: { agents: string[] }) => agents.filter((a) => (pollsInflight.get(a) ?? 0) > 0).length,
  /** Which of these reboots have no first command yet. */
  missingFirstCommand: ({ ids }: { ids: string[] }) => ids.filter((id) => !marks.firstPut.has(id)),
  executionStatuses: ({ machine }: { machine: string }) => {
    const counts: Record<string, number> = {};
    for (const e of allExecutions(machine)) counts[e.status] = (counts[e.status] ?? 0) + 1;
    return counts;
  },
  executionStatus: ({ machine, names }: { machine: string; names: string[] }) =>
    names.map((n) => {
      try {
        return stack.engine.describeExecution({ executionArn: arn(machine, n) }).status;
      } catch {
        return 'MISSING';
      }
    }),
  /** Event types and times of executions' histories. */
  histories: ({ machine, names }: { machine: string; names: string[] }) =>
    names.map((n) => {
      const events: Array<{ type: string; ts: number; name?: string }> = [];
      let nextToken: string | undefined;
      do {
        const page = stack.engine.getExecutionHistory({ executionArn: arn(machine, n), maxResults: 1000, nextToken });
        for (const e of page.events) {
          const d = (e as Record<string, any>).stateEnteredEventDetails;
          events.push({ type: e.type, ts: e.timestamp.getTime(), ...(d?.name ? { name: d.name } : {}) });
        }
        nextToken = page.nextToken;
      } while (nextToken);
      return { name: n, events };
    }),
  /** Timestamps on the event → first command path for these events (dedupKey) and reboots. */
  marks: ({ items }: { items: Array<{ dedupKey: string; rebootId: string; agent: string }> }) =>
    items.map(({ dedupKey, rebootId, agent }) => {
      let enteredPrepare: number | undefined;
      let taskScheduled: number | undefined;
      let executionStarted: number | undefined;
      try {
        const h = stack.engine.getExecutionHistory({ executionArn: arn('xpu-reboot', rebootId), maxResults: 100 });
        for (const e of h.events) {
          const t = e.timestamp.getTime();
          if (e.type === 'ExecutionStarted') executionStarted ??= t;
          if (e.type === 'TaskStateEntered') enteredPrepare ??= t;
          if (e.type === 'TaskScheduled') taskScheduled ??= t;
        }
      } catch {
        // no execution: reported as missing marks
      }
      return {
        sendStart: marks.sendStart.get(dedupKey),
        sendEnd: marks.sendEnd.get(dedupKey),
        ingestStart: marks.ingestStart.get(dedupKey),
        wfCall: marks.wfCall.get(rebootId),
        wfDone: marks.wfDone.get(rebootId),
        executionStarted,
        enteredPrepare,
        taskScheduled,
        firstPut: marks.firstPut.get(rebootId),
        notify: marks.notify.get(agent),
        delivered: firstDelivery.get(agent),
      };
    }),
  // This process's and each emulator child's V8 heap vs the rest (the bench's memory breakdown).
  memory: async () => ({ ...process.memoryUsage(), children: await serviceMemoryUsage() }),
});

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  const force = setTimeout(() => process.exit(1), 20_000);
  force.unref();
  await stack.close();
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.on('disconnect', () => void stop());
process.send!({ event: 'ready', url: stack.url, operatorToken: stack.operatorToken });
