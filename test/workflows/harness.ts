// Workflow-test harness: the whole local stack in-process on one ManualClock, with agents and events over HTTP.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { parseConfig } from '../../local/config.ts';
import { ManualClock } from '../../local/sfn/clock.ts';
import { startStack, type Stack } from '../../local/stack.ts';
import type { HistoryEvent } from '../../local/sfn/engine.ts';
import { createIngestHandler } from '../../lambdas/handlers/ingest.ts';
import type { Deps, Logger } from '../../lambdas/handlers/deps.ts';
import type { StoredReboot } from '../../lambdas/core/reboot.ts';
import type { Command, NativeEvent, RebootStatus } from '../../lambdas/core/types.ts';
import { waitFor } from '../support/stack.ts';

const ROOT = resolve(import.meta.dirname, '../..');
export const OPERATOR_TOKEN = 'operator-token-for-workflow-tests';
export const T0 = Date.parse('2030-01-01T00:00:00.000Z');

/**
 * Short, distinct bounds so a test can tell which timer fired: notice 300 s, heartbeat 60 s,
 * recovery 900 s, host return 1800 s. Nodes:
 * - solo: 1 non-persistent xPU, trusted;  duo: dpu0 persistent + dpu1 non-persistent, trusted, tenant t2
 * - wary: 1 persistent xPU, untrusted;    cycler: 1 xPU, afterReady reboot-host
 * - strict: 1 persistent xPU, hostReboot.denyWhile [xpu-rebooting, reprovisioning]
 * - lax: 1 xPU, hostReboot.denyWhile [] (the host may reboot while its xPU does)
 */
export const INVENTORY = `
policy:
  xpuReboot:
    noticeSeconds: 300
    maxExtensionSeconds: 600
    maxExtensions: 2
    recoverySeconds: 900
    coredumpSeconds: 120
    heartbeatSeconds: 60
    commandSeconds: 120
  hostReboot:
    denyWhile: [xpu-rebooting]
    returnSeconds: 1800
    commandSeconds: 120
    heartbeatSeconds: 60
nodes:
  - id: solo
    tenant: t1
    trusted: true
    bmcToken: bmc-token-solo
    agentToken: agent-token-solo
    xpus:
      - id: dpu0
        persistentPower: false
  - id: duo
    tenant: t2
    trusted: true
    bmcToken: bmc-token-duo
    agentToken: agent-token-duo
    xpus:
      - id: dpu0
        persistentPower: true
      - id: dpu1
        persistentPower: false
  - id: wary
    tenant: t3
    trusted: false
    agentToken: agent-token-wary
    xpus:
      - id: dpu0
        persistentPower: true
  - id: cycler
    tenant: t4
    trusted: true
    agentToken: agent-token-cycler
    policy:
      xpuReboot:
        afterReady: reboot-host
    xpus:
      - id: dpu0
  - id: strict
    tenant: t6
    trusted: true
    agentToken: agent-token-strict
    policy:
      hostReboot:
        denyWhile: [xpu-rebooting, reprovisioning]
    xpus:
      - id: dpu0
        persistentPower: true
  - id: lax
    tenant: t5
    trusted: true
    agentToken: agent-token-lax
    policy:
      hostReboot:
        denyWhile: []
    xpus:
      - id: dpu0
`;

/** The policy of the model tests (short windows) over nodes with one xPU each, named as given. */
export function oneXpuInventory(nodes: readonly string[]): string {
  return `
policy:
  xpuReboot: { noticeSeconds: 300, maxExtensionSeconds: 600, maxExtensions: 2, recoverySeconds: 900, coredumpSeconds: 120, heartbeatSeconds: 60, commandSeconds: 120 }
  hostReboot: { denyWhile: [xpu-rebooting], returnSeconds: 1800, commandSeconds: 120, heartbeatSeconds: 60 }
nodes:
${nodes.map((n) => `  - { id: ${n}, rack: r1, zone: z1, tenant: t1, trusted: true, bmcToken: bmc-token-${n}, agentToken: agent-token-${n}, xpus: [{ id: dpu0, persistentPower: false }] }`).join('\n')}
`;
}

export const tokenOf = (node: string) => `agent-token-${node}`;

const quiet: Logger = { info: () => {}, warn: () => {}, error: () => {} };

export interface Reply {
  status: number;
  json: any;
}

export interface TestAgent {
  id: string;
  /** One poll with `wait` seconds (0: answer at once). */
  poll(wait?: number): Promise<Command[]>;
  post(cmdId: string, status: 'succeeded' | 'failed' | 'running' | 'skipped', output?: string): Promise<Reply>;
  /** Polls and answers every command it gets with `status`; returns the commands. */
  answerAll(status?: 'succeeded' | 'failed' | 'skipped'): Promise<Command[]>;
}

export interface Harness {
  stack: Stack;
  clock: ManualClock;
  url: string;
  dataDir: string;
  /** Manual time as a Date. */
  now(): Date;
  /** Advances the shared clock, firing every engine timer that falls due on the way. */
  advance(ms: number): Promise<void>;
  /** Advances to an absolute time (ISO string or ms). */
  advanceTo(at: string | number): Promise<void>;
  request(path: string, opts?: { method?: string; token?: string; body?: unknown }): Promise<Reply>;
  /** Posts a native event (operator token unless given) and returns the reply; ids are generated when absent. */
  event(
    node: string,
    type: NativeEvent['type'],
    opts?: { id?: string; xpu?: string; time?: string; data?: Record<string, unknown>; token?: string },
  ): Promise<Reply & { id: string }>;
  agent(id: string): TestAgent;
  /** Waits until the ingest queue holds no message, visible or in flight. */
  drain(): Promise<void>;
  reboot(id: string): Promise<StoredReboot>;
  /** The reboots of a node, newest first (from the store). */
  reboots(node: string): Promise<StoredReboot[]>;
  /** The one active (or newest) reboot of a node and kind, once it exists. */
  rebootOf(node: string, kind: 'xpu' | 'host', xpu?: string): Promise<StoredReboot>;
  waitForStatus(id: string, status: RebootStatus | RebootStatus[]): Promise<StoredReboot>;
  /** Waits until the execution sits in `state`; for a callback Task, until its Lambda registered the waiter. */
  waitForState(id: string, state: string): Promise<void>;
  /** Waits until the execution has ended; returns its status. */
  waitForEnd(id: string): Promise<string>;
  history(id: string): Promise<HistoryEvent[]>;
  /** Names of the states entered, in order. */
  statesEntered(id: string): Promise<string[]>;
  executionStatus(id: string): Promise<string>;
  /**
   * Applies an event straight through an ingest handler (bypassing the queue) for race tests.
   * `delays` hold that handler's store calls back by method, to force an interleaving: a number of
   * ms, or a gate (a promise to wait for, e.g. the other side's call having returned, which holds
   * on a loaded machine where a fixed delay does not); `returned` is told each call that returned.
   */
  ingestDirect(
    ev: Omit<NativeEvent, 'source' | 'dedupKey' | 'receivedAt' | 'time'> & { time?: string },
    opts?: {
      delays?: Record<string, number | (() => Promise<unknown>)>;
      returned?: (method: string) => void;
      /** Ports of that handler's own (e.g. workflows that hold its wake-ups back). */
      deps?: Partial<Deps>;
      /** When the API received it (default now): an event the queue delivers long after its receipt. */
      receivedAt?: string;
    },
  ): Promise<unknown>;
  close(): Promise<void>;
}

let counter = 0;
const CALLBACK_STEPS: Record<string, string> = {
  PrepareHost: 'prepare',
  WaitForHostOrDeadline: 'prepare',
  ProtectPcieAndTakeCoreDump: 'crash',
  WaitForXpuReady: 'reboot',
  RestorePcie: 'recover',
  ResumeWorkloads: 'resume',
  WaitForXpuDown: 'down',
  FreeHostContext: 'free',
  WaitForHostBack: 'reboot',
  WaitForXpusBack: 'xpus',
  ReprovisionXpus: 'reprovision',
};

// 30 s, as test/support/stack.ts waits: every wait here goes through the queue, the engine and dynalite,
// which on the shared 2-core CI machine (load 20 beside another run) take seconds a step; a wait never
// asserts how long anything took, so a longer one fails the same way, only later.
export function eventually<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<NonNullable<T>> {
  return waitFor(what, fn, timeoutMs, 15);
}

export async function startHarness(opts: { inventory?: string } = {}): Promise<Harness> {
  const base = join(ROOT, '.test-tmp');
  mkdirSync(base, { recursive: true });
  const dataDir = mkdtempSync(join(base, 'wf-'));
  const nodesFile = join(dataDir, 'nodes.yaml');
  writeFileSync(nodesFile, opts.inventory ?? INVENTORY);
  const clock = new ManualClock(T0);
  const config = parseConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: join(dataDir, 'data'),
    NODES_FILE: nodesFile,
    OPERATOR_TOKEN,
    INGEST_VISIBILITY_SECONDS: '2',
    // No pass every 60 s of real time: on the manual clock a reboot looks hours old after a few advances,
    // and a pass landing mid-test (whenever a loaded machine gets there) would end or wake what the test
    // holds. The pass at start still runs; a test that wants one calls stack.reconcile().
    RECONCILE_INTERVAL_SECONDS: '0',
  });
  const stack = await startStack({ config, logger: quiet, sfnClock: clock, clock: { now: () => new Date(clock.now()) } });
  const url = stack.url;
  const ingest = createIngestHandler(stack.deps);

  async function request(path: string, o: { method?: string; token?: string; body?: unknown } = {}): Promise<Reply> {
    const res = await fetch(url + path, {
      method: o.method ?? (o.body !== undefined ? 'POST' : 'GET'),
      headers: { authorization: `Bearer ${o.token ?? OPERATOR_TOKEN}`, 'content-type': 'application/json' },
      body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json };
  }

  const executionArn = (id: string) =>
    `arn:aws:states:us-east-1:000000000000:execution:${id.startsWith('hr-') ? 'host-reboot' : 'xpu-reboot'}:${id}`;

  function history(id: string): HistoryEvent[] {
    const events: HistoryEvent[] = [];
    let nextToken: string | undefined;
    do {
      const page = stack.engine.getExecutionHistory({ executionArn: executionArn(id), maxResults: 1000, nextToken });
      events.push(...page.events);
      nextToken = page.nextToken;
    } while (nextToken);
    return events;
  }
  const entered = (id: string) =>
    history(id)
      .filter((e) => e.type.endsWith('StateEntered'))
      .map((e) => (e.stateEnteredEventDetails as { name: string }).name);

  const h: Harness = {
    stack,
    clock,
    url,
    dataDir,
    now: () => new Date(clock.now()),
    advance: (ms) => clock.advance(ms),
    advanceTo: (at) => clock.advanceTo(typeof at === 'string' ? Date.parse(at) : at),
    request,
    async event(node, type, o = {}) {
      const id = o.id ?? `ev-${++counter}`;
      const body = {
        id,
        type,
        node,
        ...(o.xpu ? { xpu: o.xpu } : {}),
        ...(o.time ? { time: o.time } : {}),
        ...(o.data ? { data: o.data } : {}),
      };
      const reply = await request('/v1/events', { token: o.token, body });
      return { ...reply, id };
    },
    agent(id) {
      const node = id.split('.')[0];
      const token = tokenOf(node);
      const a: TestAgent = {
        id,
        async poll(wait = 0) {
          const r = await request(`/v1/agents/${id}/commands?wait=${wait}`, { token });
          if (r.status !== 200) throw new Error(`poll ${id}: ${r.status} ${JSON.stringify(r.json)}`);
          return r.json as Command[];
        },
        post: (cmdId, status, output = '') => request(`/v1/agents/${id}/commands/${cmdId}`, { token, body: { status, output } }),
        async answerAll(status = 'succeeded') {
          const cmds = await a.poll();
          for (const c of cmds) await a.post(c.id, status);
          return cmds;
        },
      };
      return a;
    },
    async drain() {
      await eventually('the ingest queue to drain', async () => {
        const res = await stack.sqs.client.send(
          new GetQueueAttributesCommand({
            QueueUrl: stack.sqs.ingestQueueUrl,
            AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
          }),
        );
        return res.Attributes?.ApproximateNumberOfMessages === '0' && res.Attributes?.ApproximateNumberOfMessagesNotVisible === '0';
      });
    },
    async reboot(id) {
      const r = await stack.deps.store.getReboot(id);
      if (!r) throw new Error(`no reboot ${id}`);
      return r;
    },
    async reboots(node) {
      return (await stack.deps.store.listReboots({ node, limit: 100 })).items;
    },
    async rebootOf(node, kind, xpu) {
      return eventually(`a ${kind} reboot of ${node}${xpu ? `/${xpu}` : ''}`, async () =>
        (await h.reboots(node)).find((r) => r.kind === kind && (!xpu || r.xpu === xpu)),
      );
    },
    async waitForStatus(id, status) {
      const want = Array.isArray(status) ? status : [status];
      return eventually(`reboot ${id} to be ${want.join('|')}`, async () => {
        const r = await stack.deps.store.getReboot(id);
        return r && want.includes(r.status) ? r : undefined;
      });
    },
    async waitForState(id, state) {
      const where = async () => {
        const r = await stack.deps.store.getReboot(id);
        return `${id} to sit in ${state}; states entered: ${entered(id).join(' > ')}; status ${r?.status}, waiter ${r?.waiter?.step}, commands ${JSON.stringify(Object.values(r?.commands ?? {}).map((c) => `${c.type}:${c.status}`))}`;
      };
      await eventually(`${id} to sit in ${state}`, async () => {
        const events = history(id);
        const last = events.findLastIndex((e) => e.type.endsWith('StateEntered'));
        if (last < 0 || (events[last].stateEnteredEventDetails as { name: string }).name !== state) return false;
        if (!CALLBACK_STEPS[state]) return true;
        // A callback Task is settled once its Lambda stored the waiter with this entry's token.
        const scheduled = events.slice(last).find((e) => e.type === 'TaskScheduled');
        if (!scheduled) return false;
        const params = JSON.parse((scheduled.taskScheduledEventDetails as { parameters: string }).parameters);
        const r = await stack.deps.store.getReboot(id);
        return r?.waiter?.token === params.Payload.taskToken;
      }).catch(async (err) => {
        throw new Error(`${(err as Error).message}\n  ${await where()}`);
      });
    },
    async waitForEnd(id) {
      return eventually(`${id} to end`, async () => {
        const s = stack.engine.describeExecution({ executionArn: executionArn(id) }).status;
        return s !== 'RUNNING' ? s : undefined;
      });
    },
    async history(id) {
      return history(id);
    },
    async statesEntered(id) {
      return entered(id);
    },
    async executionStatus(id) {
      return stack.engine.describeExecution({ executionArn: executionArn(id) }).status;
    },
    async ingestDirect(ev, o = {}) {
      const receivedAt = o.receivedAt ?? new Date(clock.now()).toISOString();
      const handler =
        o.delays || o.returned || o.deps
          ? createIngestHandler({ ...stack.deps, store: delayed(stack.deps.store, o.delays ?? {}, o.returned), ...o.deps })
          : ingest;
      return handler({
        ...ev,
        time: ev.time ?? receivedAt,
        source: 'native',
        dedupKey: `native:${ev.node}:${ev.id}`,
        receivedAt,
      } as NativeEvent);
    },
    async close() {
      // Let the engine's in-flight Lambdas finish first: closing dynalite under them throws
      // an uncaught 'Database is closed' (stack.close() does not wait for them), which fails the run.
      // Up to 15 s: idle at once on a quiet machine, but a Lambda woken by a test's last request
      // can take seconds to finish at load.
      await eventually(
        'the workflows to go idle',
        async () => {
          for (const kind of Object.values(stack.workflowArns)) {
            for (const e of stack.engine.listExecutions({ stateMachineArn: kind, statusFilter: 'RUNNING', maxResults: 1000 }).executions) {
              const last = stack.engine.getExecutionHistory({ executionArn: e.executionArn, reverseOrder: true, maxResults: 1 }).events[0];
              if (last?.type !== 'TaskSubmitted') return false;
            }
          }
          return true;
        },
        15_000,
      ).catch(() => {});
      await new Promise((r) => setTimeout(r, 20));
      await stack.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}

/** The same store, with some of its calls held back by a few milliseconds. */
function delayed<T extends object>(
  store: T,
  delays: Record<string, number | (() => Promise<unknown>)>,
  returned?: (method: string) => void,
): T {
  return new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const hold = delays[String(prop)];
      return async (...args: unknown[]) => {
        if (typeof hold === 'number') await new Promise((r) => setTimeout(r, hold));
        else if (hold) await hold();
        const out = await value.apply(target, args);
        returned?.(String(prop));
        return out;
      };
    },
  });
}

/** Entered-state events of a history (AWS bills roughly one state transition per entered state). */
export function countStateEntered(events: HistoryEvent[]): number {
  return events.filter((e) => e.type.endsWith('StateEntered')).length;
}

/** History phases of a reboot, in order. */
export const phases = (r: StoredReboot) => r.history.map((h) => h.phase);
