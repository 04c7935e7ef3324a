// Issue s8 (AWS audit): what dynalite, fauxqs and the local engine do not show. Each test pins one
// AWS behaviour the adapters must cope with (eventually consistent reads, 1 MB pages, byte limits),
// against fake clients that behave as the AWS service does where the local emulators do not.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateStateMachineCommand, SendTaskSuccessCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it, vi } from 'vitest';
import { DynamoInventory, nodeItemKey } from '../../lambdas/adapters/dynamo-inventory.ts';
import { InventoryIndex, parseInventory } from '../../lambdas/core/inventory.ts';
import { type Rollout, TICKS_PER_EXECUTION } from '../../lambdas/core/rollout.ts';
import { newXpuReboot } from '../../lambdas/core/reboot.ts';
import { queueRecheckAt } from '../../lambdas/core/budgets.ts';
import { createRolloutTasks, type RolloutDeps } from '../../lambdas/handlers/rollout.ts';
import { substitute } from '../../local/sfn/substitute.ts';
import { ROLE_ARN as SFN_ROLE_ARN, startHarness as startSfnHarness } from './fixtures/sfn/harness.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
import { MAX_MESSAGE_BYTES, SqsEventQueue } from '../../lambdas/adapters/sqs-queue.ts';
import { SfnWorkflows } from '../../lambdas/adapters/sfn-workflows.ts';
import { DynamoRebootStore } from '../../lambdas/adapters/dynamo-store.ts';
import { withIotWakeups } from '../../lambdas/adapters/iot-wake.ts';
import { PollingCommandSignal } from '../../lambdas/adapters/polling-signal.ts';
import type { StoredCommand } from '../../lambdas/ports/index.ts';
import { fitLambdaResponse, LAMBDA_RESPONSE_MAX_BYTES } from '../../lambdas/entry/response-limit.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';

type Handler = (command: string, input: any) => unknown;

/**
 * A DynamoDB client whose every call is answered by `handle` (document form: the DocumentClient's
 * marshalling runs after this middleware, so inputs and outputs are plain objects).
 */
function fakeDynamo(handle: Handler): DynamoDBClient {
  const client = new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'k', secretAccessKey: 's' } });
  client.middlewareStack.add(
    (_next, context) => async (args: any) => ({
      output: { $metadata: {}, ...((await handle(String((context as { commandName?: string }).commandName), args.input)) as object) },
      response: {},
    }),
    { step: 'initialize', priority: 'high', name: 'fakeDynamo' },
  );
  return client;
}

function fakeSqs(handle: Handler): SQSClient {
  const client = new SQSClient({ region: 'us-east-1', credentials: { accessKeyId: 'k', secretAccessKey: 's' } });
  client.middlewareStack.add(
    (_next, context) => async (args: any) => ({
      output: { $metadata: {}, ...((await handle(String((context as { commandName?: string }).commandName), args.input)) as object) },
      response: {},
    }),
    { step: 'initialize', priority: 'high', name: 'fakeSqs' },
  );
  return client;
}

const keyOf = (it: { pk: unknown; sk: unknown }) => `${it.pk}|${it.sk}`;

describe('inventory push: the sweep of stale items reads what the push just wrote', () => {
  it('deletes no item this push wrote, although an eventually consistent Query still returns its old generation', async () => {
    const inv = parseInventory(`
nodes:
  - { id: n1, bmcToken: b1, agentToken: a1, xpus: [{ id: dpu0 }] }
  - { id: n2, bmcToken: b2, agentToken: a2, xpus: [{ id: dpu0 }] }
`);
    // The table as the previous push (generation 1) left it; a non-consistent read may still see it.
    const current = new Map<string, Record<string, unknown>>();
    const before = new Map<string, Record<string, unknown>>();
    const deleted: string[] = [];
    const client = fakeDynamo((command, input) => {
      if (command === 'BatchWriteItemCommand') {
        for (const r of Object.values(input.RequestItems)[0] as any[]) {
          if (r.PutRequest) current.set(keyOf(r.PutRequest.Item), r.PutRequest.Item);
          if (r.DeleteRequest) {
            deleted.push(keyOf(r.DeleteRequest.Key));
            current.delete(keyOf(r.DeleteRequest.Key));
          }
        }
        return { UnprocessedItems: {} };
      }
      if (command === 'QueryCommand') {
        const source = input.ConsistentRead ? current : before;
        const items = [...source.values()].filter(
          (it) => it.pk === input.ExpressionAttributeValues[':p'] && it.gen !== input.ExpressionAttributeValues[':g'],
        );
        return { Items: items.map((it) => ({ pk: it.pk, sk: it.sk })) };
      }
      if (command === 'PutItemCommand') return {};
      throw new Error(`unexpected ${command}`);
    });
    const store = new DynamoInventory(client, 't');
    await store.push(inv, { generation: 1 });
    for (const [k, v] of current) before.set(k, v);
    deleted.length = 0;

    await store.push(inv, { generation: 2 });
    expect(deleted).toEqual([]);
    expect(current.get(keyOf(nodeItemKey('n1')))?.gen).toBe(2);
  });
});

describe('SQS: SendMessageBatch is limited to 256 KiB of message bytes, not characters', () => {
  it('never sends a batch whose bodies exceed 256 KiB when the events carry multi-byte text', async () => {
    const batches: number[] = [];
    const sqs = fakeSqs((command, input) => {
      if (command !== 'SendMessageBatchCommand') throw new Error(`unexpected ${command}`);
      const bytes = (input.Entries as { MessageBody: string }[]).reduce((n, e) => n + Buffer.byteLength(e.MessageBody), 0);
      batches.push(bytes);
      // What SQS answers for a batch over the limit: the whole call fails.
      if (bytes > 256 * 1024)
        throw Object.assign(new Error('Batch requests cannot be longer than 262144 bytes'), { name: 'BatchRequestTooLong' });
      return { Successful: input.Entries.map((e: { Id: string }) => ({ Id: e.Id })), Failed: [] };
    });
    const queue = new SqsEventQueue(sqs, 'https://sqs.us-east-1.amazonaws.com/1/q');
    // 30,000 characters of three bytes each: ~88 KiB a message, ~29 KiB by String.length.
    const reason = '€'.repeat(30_000);
    const events = Array.from({ length: 6 }, (_, i) => ({
      id: `e${i}`,
      type: 'xpu.reboot.pending',
      node: 'n1',
      xpu: 'dpu0',
      data: { reason },
      dedupKey: `native:n1:e${i}`,
    })) as unknown as NativeEvent[];
    await expect(queue.send(events)).resolves.toBeUndefined();
    expect(Math.max(...batches)).toBeLessThanOrEqual(256 * 1024);
  });
});

/**
 * A Query answered as DynamoDB does once a page reaches 1 MB: `pageSize` items at most, with a
 * LastEvaluatedKey while more remain, whatever the Limit (dynalite's pages are never that small).
 */
function pagedQuery(items: (input: any) => Record<string, unknown>[], pageSize: number) {
  return (input: any) => {
    const all = items(input);
    const from = input.ExclusiveStartKey ? all.findIndex((it) => keyOf(it as never) === keyOf(input.ExclusiveStartKey)) + 1 : 0;
    const take = Math.min(pageSize, input.Limit ?? Number.POSITIVE_INFINITY);
    const page = all.slice(from, from + take);
    const more = from + page.length < all.length;
    return { Items: page, ...(more ? { LastEvaluatedKey: { pk: page[page.length - 1].pk, sk: page[page.length - 1].sk } } : {}) };
  };
}

describe('DynamoDB Query pages end at 1 MB: every reader goes on at LastEvaluatedKey', () => {
  const ev = (i: number) => ({
    id: `s${i}`,
    type: 'host.ready',
    node: 'n1',
    dedupKey: `native:n1:s${i}`,
    receivedAt: `2026-12-07T00:00:0${i}.000Z`,
  });

  it('keptSignals returns every signal kept for the node, not the first page', async () => {
    const kept = [0, 1, 2, 3, 4].map((i) => ({ pk: 'K#n1', sk: `${ev(i).receivedAt}#${ev(i).dedupKey}`, event: ev(i) }));
    const query = pagedQuery(() => kept, 2);
    const store = new DynamoRebootStore(
      fakeDynamo((command, input) => {
        if (command === 'QueryCommand') return query(input);
        throw new Error(`unexpected ${command}`);
      }),
      't',
    );
    expect((await store.keptSignals('n1')).map((e) => e.id)).toEqual(['s0', 's1', 's2', 's3', 's4']);
  });

  it('listDropped reads a day to its end before it goes to the day before', async () => {
    const today = new Date().toISOString().slice(0, 10);
    const dropped = [3, 2, 1].map((i) => ({
      pk: `DROPPED#${today}`,
      sk: `${today}T00:00:0${i}.000Z#k${i}`,
      at: `${today}T00:00:0${i}.000Z`,
      reason: 'r',
      event: ev(i),
    }));
    const query = pagedQuery((input) => (input.ExpressionAttributeValues[':p'] === `DROPPED#${today}` ? dropped : []), 1);
    const store = new DynamoRebootStore(
      fakeDynamo((command, input) => {
        if (command === 'QueryCommand') return query(input);
        throw new Error(`unexpected ${command}`);
      }),
      't',
    );
    expect((await store.listDropped(3)).map((d) => d.event.id)).toEqual(['s3', 's2', 's1']);
  });
});

describe('IoT wake-ups wait until the commands show in gsi1 (a GSI is eventually consistent)', () => {
  const cmd = (id: string) => ({ id, agent: 'node-a', status: 'pending' }) as unknown as StoredCommand;

  it('publishes only once a fetch would find the commands it announces', async () => {
    const order: string[] = [];
    let looks = 0;
    vi.stubGlobal('fetch', async () => {
      order.push('publish');
      return new Response(null, { status: 200 });
    });
    try {
      const signal = withIotWakeups(new PollingCommandSignal(), {
        endpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
        region: 'eu-west-1',
        credentials: () => ({ accessKeyId: 'k', secretAccessKey: 's' }),
        onError: (_agent, err) => order.push(`error ${err}`),
        // The index shows the command on the third look, as gsi1 may a moment after the write.
        visible: async (agent, ids) => {
          order.push(`look ${agent} ${ids.join(',')}`);
          return ++looks >= 3;
        },
        lookAfterMs: () => 1,
      });
      signal.notify('node-a', [cmd('c1')]);
      await signal.flush();
      expect(order).toEqual(['look node-a c1', 'look node-a c1', 'look node-a c1', 'publish']);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('publishes all the same when the index still lags after its last look (the periodic fetch is the fallback)', async () => {
    const order: string[] = [];
    vi.stubGlobal('fetch', async () => {
      order.push('publish');
      return new Response(null, { status: 200 });
    });
    try {
      const signal = withIotWakeups(new PollingCommandSignal(), {
        endpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
        region: 'eu-west-1',
        credentials: () => ({ accessKeyId: 'k', secretAccessKey: 's' }),
        onError: () => {},
        visible: async () => {
          order.push('look');
          return false;
        },
        lookAfterMs: () => 1,
      });
      signal.notify('node-a', [cmd('c1')]);
      await signal.flush();
      expect(order.at(-1)).toBe('publish');
      expect(order.filter((o) => o === 'look').length).toBeGreaterThan(1);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe('TTL: items meant to expire carry `ttl` in epoch seconds', () => {
  it('a command gets a ttl once it is closed (its reboot expires after the retention; its commands did not)', async () => {
    const puts: Record<string, unknown>[] = [];
    const open = {
      pk: 'A#node-a',
      sk: 'C#xr-1.restore-pcie',
      id: 'xr-1.restore-pcie',
      agent: 'node-a',
      rebootId: 'xr-1',
      type: 'restore-pcie',
      status: 'delivered',
      step: 'recover',
      noticePhase: false,
      createdAt: '2026-12-07T00:00:00.000Z',
      rev: 1,
    };
    const store = new DynamoRebootStore(
      fakeDynamo((command, input) => {
        if (command === 'GetItemCommand') return { Item: open };
        if (command === 'PutItemCommand') {
          puts.push(input.Item);
          return {};
        }
        throw new Error(`unexpected ${command}`);
      }),
      't',
      { retentionDays: 30 },
    );
    const before = Math.floor(Date.now() / 1000);
    await store.updateCommand('node-a', open.id, (c) => ({ ...c, status: 'succeeded', finishedAt: new Date().toISOString() }));
    const ttl = puts[0].ttl as number;
    expect(ttl).toBeGreaterThanOrEqual(before + 30 * 86400);
    expect(ttl).toBeLessThan(before + 31 * 86400); // seconds, not milliseconds
    expect(puts[0].gsi1pk).toBeUndefined();
  });

  it('an open command has no ttl: it must not expire while its agent may still fetch it', async () => {
    const puts: Record<string, unknown>[] = [];
    const store = new DynamoRebootStore(
      fakeDynamo((command, input) => {
        if (command === 'PutItemCommand') {
          puts.push(input.Item);
          return {};
        }
        throw new Error(`unexpected ${command}`);
      }),
      't',
    );
    await store.putCommand({
      id: 'xr-1.protect-pcie',
      agent: 'node-a',
      rebootId: 'xr-1',
      type: 'protect-pcie',
      status: 'pending',
      step: 'prepare',
      noticePhase: true,
      createdAt: '2026-12-07T00:00:00.000Z',
    } as unknown as StoredCommand);
    expect(puts[0].ttl).toBeUndefined();
    expect(puts[0].gsi1pk).toBe('OPEN#node-a');
  });
});

describe('BatchGetItem: keys left unprocessed are asked again with backoff, a bounded number of times', () => {
  /** DynamoDB under a throttled partition: every key comes back unprocessed. */
  function throttled() {
    let calls = 0;
    const client = fakeDynamo((command, input) => {
      // The listing's index: one day with one reboot.
      if (command === 'QueryCommand')
        return input.ExpressionAttributeValues[':p'] === 'REBOOTDAYS'
          ? { Items: [{ pk: 'REBOOTDAYS', sk: '1970-01-01' }] }
          : { Items: [{ id: 'xr-1', gsi1sk: '1970-01-01T00:00:00.000Z#xr-1' }] };
      if (command !== 'BatchGetItemCommand') throw new Error(`unexpected ${command}`);
      if (++calls > 50) throw new Error('still asking after 50 calls');
      const [table, request] = Object.entries(input.RequestItems)[0] as [string, { Keys: unknown[] }];
      expect(request.Keys.length).toBeLessThanOrEqual(100);
      return { Responses: { [table]: [] }, UnprocessedKeys: { [table]: request } };
    });
    return { store: new DynamoRebootStore(client, 't'), calls: () => calls };
  }

  it.each([
    ['getNodeStates', (s: DynamoRebootStore) => s.getNodeStates(['n1', 'n2'])],
    ['listing reboots by id', (s: DynamoRebootStore) => s.rebootsNotifiedBetween(new Date(0), new Date(60_000))],
    ['the ingest event look-up', (s: DynamoRebootStore) => s.isEventSeen('native:n1:e1')],
  ])('%s gives up with ConcurrentUpdate (retried by the caller: SQS, the ASL Retry, a 503)', async (_what, call) => {
    const { store, calls } = throttled();
    const err = await call(store).catch((e: Error) => e);
    expect((err as Error).name).toBe('ConcurrentUpdate');
    expect(calls()).toBeLessThanOrEqual(12);
  });
});

describe('Lambda: a synchronous response is at most 6 MB', () => {
  it('turns an answer Lambda could not return into a 413 ResponseTooLarge that says how to ask for less', () => {
    const big = { statusCode: 200, headers: { 'content-type': 'text/csv' }, body: 'x'.repeat(7 * 1024 * 1024), isBase64Encoded: false };
    const fitted = fitLambdaResponse(big);
    expect(fitted.statusCode).toBe(413);
    expect(JSON.parse(fitted.body)).toMatchObject({ error: 'ResponseTooLarge', message: expect.stringMatching(/from\/to/) });
    expect(Buffer.byteLength(JSON.stringify(fitted))).toBeLessThan(LAMBDA_RESPONSE_MAX_BYTES);
  });

  it('counts bytes, escapes included, and leaves an answer that fits as it is', () => {
    const small = { statusCode: 200, body: 'x'.repeat(1024 * 1024) };
    expect(fitLambdaResponse(small)).toBe(small);
    // 2.5 M three-byte characters: 7.5 MB on the wire, although String.length is 2.5 M.
    const multiByte = { statusCode: 200, body: '€'.repeat(2_500_000) };
    expect(fitLambdaResponse(multiByte).statusCode).toBe(413);
  });
});

/** A rollout with one xPU in flight, in memory, and the ports its tick uses. */
const inventory = new InventoryIndex(
  parseInventory(`
nodes:
  - { id: n1, xpus: [{ id: dpu0 }] }
`),
);
function rolloutDeps() {
  const rollouts = new Map<string, Rollout>();
  const started: Array<{ kind: string; name: string; input: unknown }> = [];
  rollouts.set('ro-1', {
    id: 'ro-1',
    status: 'running',
    selector: {},
    maxUnavailable: 1,
    maxFailures: 1,
    reason: 'firmware',
    createdAt: '2026-12-07T00:00:00.000Z',
    // In flight for the whole test: each tick finds its reboot still running and waits again.
    items: [{ node: 'n1', xpu: 'dpu0', state: 'rebooting', rebootId: 'xr-1', sentAt: '2026-12-07T00:00:00.000Z' }],
    history: [],
    version: 1,
  });
  const deps = {
    clock: { now: () => new Date('2026-12-07T01:00:00.000Z') },
    inventory: async () => inventory,
    logger: { info() {}, warn() {}, error() {} },
    metrics: { count() {} },
    store: { getReboot: async () => ({ id: 'xr-1', status: 'rebooting' }) },
    workflows: {
      start: async (kind: string, name: string, input: unknown) => {
        started.push({ kind, name, input });
      },
    },
    rollouts: {
      getRollout: async (id: string) => structuredClone(rollouts.get(id)),
      updateRollout: async (id: string, change: (r: Rollout) => Rollout | null) => {
        const cur = rollouts.get(id)!;
        const next = change(structuredClone(cur));
        if (!next) return { rollout: cur, changed: false };
        next.version = cur.version + 1;
        rollouts.set(id, next);
        return { rollout: next, changed: true };
      },
    },
  } as unknown as RolloutDeps;
  return { deps, started, rollout: () => rollouts.get('ro-1')! };
}

describe('Step Functions: an execution ends at 25,000 history events, so a long rollout hands over to a successor', () => {
  const tick = (execution: string) => ({ action: 'rollout-tick', rolloutId: 'ro-1', execution });

  it('after its share of ticks, an execution starts the next one (named after the rollout) and ends', async () => {
    const { deps, started } = rolloutDeps();
    const tasks = createRolloutTasks(deps, { ticksPerExecution: 3 });
    expect(await tasks(tick('ro-1'))).toMatchObject({ next: 'wait-reboots' });
    expect(await tasks(tick('ro-1'))).toMatchObject({ next: 'wait-reboots' });
    expect(await tasks(tick('ro-1'))).toMatchObject({ next: 'continued' });
    expect(started).toEqual([{ kind: 'rollout', name: 'ro-1-g2', input: { rolloutId: 'ro-1' } }]);
    // The successor goes on, with a count of its own.
    expect(await tasks(tick('ro-1-g2'))).toMatchObject({ next: 'wait-reboots' });
    expect(await tasks(tick('ro-1-g2'))).toMatchObject({ next: 'wait-reboots' });
    expect(await tasks(tick('ro-1-g2'))).toMatchObject({ next: 'continued' });
    expect(started.map((s) => s.name)).toEqual(['ro-1-g2', 'ro-1-g3']);
  });

  it('a late tick of a replaced execution (a retry) only makes sure its successor runs, and ends: never two executions ticking', async () => {
    const { deps, started, rollout } = rolloutDeps();
    const tasks = createRolloutTasks(deps, { ticksPerExecution: 1 });
    expect(await tasks(tick('ro-1'))).toMatchObject({ next: 'continued' });
    const before = rollout().version;
    expect(await tasks(tick('ro-1'))).toMatchObject({ next: 'continued' });
    expect(rollout().version).toBe(before);
    // Started again under the same name: Step Functions answers ExecutionAlreadyExists, which start() absorbs.
    expect(started.map((s) => s.name)).toEqual(['ro-1-g2', 'ro-1-g2']);
  });

  it('the default share keeps an execution far from the limit: ~13 events a turn, retries aside', () => {
    expect(TICKS_PER_EXECUTION * 13).toBeLessThanOrEqual(25_000 * 0.6);
    expect(TICKS_PER_EXECUTION).toBeGreaterThanOrEqual(100);
  });
});

describe('SQS: one message is at most 256 KiB', () => {
  it('refuses (413) an event too large to queue, and queues nothing of that request', async () => {
    const calls: unknown[] = [];
    const queue = new SqsEventQueue(
      fakeSqs((command, input) => {
        calls.push(command);
        return { Successful: input.Entries.map((e: { Id: string }) => ({ Id: e.Id })), Failed: [] };
      }),
      'https://sqs.us-east-1.amazonaws.com/1/q',
    );
    const event = (id: string, data: Record<string, unknown>) =>
      ({ id, type: 'xpu.reboot.pending', node: 'n1', xpu: 'dpu0', data, dedupKey: `native:n1:${id}` }) as unknown as NativeEvent;
    // An event over the queue's limit (a Redfish record carries its whole Event's fields) is refused whole.
    const huge = event('big', { reason: 'x'.repeat(MAX_MESSAGE_BYTES) });
    const err = await queue.send([event('small', { reason: 'ok' }), huge]).catch((e: Error & { status?: number }) => e);
    expect(err).toMatchObject({ name: 'PayloadTooLarge', status: 413 });
    expect(calls).toEqual([]);
  });
});

describe('Step Functions callbacks and starts: the errors AWS answers, handled as the local engine’s', () => {
  function fakeSfn(fail: (command: string) => string | undefined) {
    const client = new SFNClient({ region: 'us-east-1', credentials: { accessKeyId: 'k', secretAccessKey: 's' } });
    const sent: Array<{ command: string; input: any }> = [];
    client.middlewareStack.add(
      (_next, context) => async (args: any) => {
        const command = String((context as { commandName?: string }).commandName);
        sent.push({ command, input: args.input });
        const name = fail(command);
        if (name) throw Object.assign(new Error(name), { name });
        return { output: { $metadata: {}, executionArn: 'arn', status: 'RUNNING' }, response: {} };
      },
      { step: 'initialize', priority: 'high', name: 'fakeSfn' },
    );
    return {
      sfn: new SfnWorkflows(client, { 'xpu-reboot': 'arn:aws:states:r:1:stateMachine:s-XpuReboot', 'host-reboot': '', rollout: '' }),
      sent,
    };
  }

  it.each(['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken'])(
    'a wake, failure or heartbeat answered %s is a late one: false, not an error',
    async (name) => {
      const { sfn } = fakeSfn(() => name);
      expect(await sfn.wake('t', {})).toBe(false);
      expect(await sfn.fail('t', 'RestorePcieNotSucceeded', 'x')).toBe(false);
      expect(await sfn.heartbeat('t')).toBe(false);
    },
  );

  it('rethrows what is not about the token (throttling: the caller retries)', async () => {
    const { sfn } = fakeSfn(() => 'ThrottlingException');
    await expect(sfn.wake('t', {})).rejects.toMatchObject({ name: 'ThrottlingException' });
  });

  it('a start under a name already used is the same reboot started again: nothing to do', async () => {
    const { sfn } = fakeSfn((c) => (c === 'StartExecutionCommand' ? 'ExecutionAlreadyExists' : undefined));
    await expect(sfn.start('xpu-reboot', 'xr-1', {})).resolves.toBeUndefined();
  });

  it('keeps a failure cause within the 32,768 characters SendTaskFailure takes', async () => {
    const { sfn, sent } = fakeSfn(() => undefined);
    await sfn.fail('t', 'RestorePcieNotSucceeded', 'x'.repeat(40_000));
    expect(sent[0].input.cause.length).toBeLessThanOrEqual(32_768);
    expect(sent[0].input.error.length).toBeLessThanOrEqual(256);
  });
});

describe('the listing days (REBOOTDAYS) expire after the reboots they list', () => {
  it('a day item carries a ttl past the retention of the reboots notified that day, in epoch seconds', async () => {
    const puts: Record<string, unknown>[] = [];
    const store = new DynamoRebootStore(
      fakeDynamo((command, input) => {
        if (command === 'PutItemCommand') {
          puts.push(input.Item);
          return {};
        }
        throw new Error(`unexpected ${command}`);
      }),
      't',
      { retentionDays: 30 },
    );
    const node = parseInventory('nodes:\n  - { id: n1, xpus: [{ id: dpu0 }] }\n').nodes[0];
    const ev = {
      id: 'e1',
      type: 'xpu.reboot.pending',
      node: 'n1',
      xpu: 'dpu0',
      time: '2026-12-07T10:00:00.000Z',
      receivedAt: '2026-12-07T10:00:00.000Z',
      data: {},
      source: 'native',
      dedupKey: 'native:n1:e1',
    } as NativeEvent;
    await store.createReboot(newXpuReboot('xr-days-1', node, 'dpu0', ev, 'planned'));
    const day = puts.find((it) => it.pk === 'REBOOTDAYS')!;
    expect(day.sk).toBe('2026-12-07');
    const dayStart = Date.parse('2026-12-07T00:00:00.000Z') / 1000;
    // Every reboot of that day has ended and expired by then (workflows end within hours).
    expect(day.ttl).toBeGreaterThanOrEqual(dayStart + 31 * 86400);
    expect(day.ttl).toBeLessThanOrEqual(dayStart + 90 * 86400);
  });
});

describe('the rollout hand-over on the local engine, with the shipped rollout.asl.json', () => {
  const STEP_ARN = 'arn:aws:lambda:us-east-1:000000000000:function:workflow-step';
  const AWAIT_ARN = 'arn:aws:lambda:us-east-1:000000000000:function:workflow-await';
  it('each execution ticks its share, starts <id>-g<n> and ends in RolloutContinued; the last one completes the rollout', async () => {
    const { deps, rollout } = rolloutDeps();
    let ticks = 0;
    // The reboot of the one in-flight item ends on the seventh tick: g1 ticks 1-3, g2 4-6, g3 completes.
    (deps.store as unknown as { getReboot: unknown }).getReboot = async () =>
      ticks >= 7 ? { id: 'xr-1', status: 'completed', endedAt: '2026-12-07T00:30:00.000Z' } : { id: 'xr-1', status: 'rebooting' };
    let tasks: (p: unknown) => Promise<unknown> = async () => {
      throw new Error('not ready');
    };
    let client: SFNClient | undefined;
    const h = await startSfnHarness({
      lambdas: {
        [STEP_ARN]: (p) => {
          ticks++;
          return tasks(p);
        },
        // The wait is woken at once, as the end of a reboot or the fallback look would wake it.
        [AWAIT_ARN]: (p) => {
          setTimeout(() => void client!.send(new SendTaskSuccessCommand({ taskToken: p.taskToken, output: '{"signal":"look-again"}' })), 5);
          return { registered: true };
        },
      },
    });
    try {
      client = h.client;
      const definition = substitute(readFileSync(join(REPO_ROOT, 'workflows', 'rollout.asl.json'), 'utf8'), {
        StepFunctionArn: STEP_ARN,
        AwaitFunctionArn: AWAIT_ARN,
      });
      const machineArn = (await h.client.send(new CreateStateMachineCommand({ name: 's8-Rollout', definition, roleArn: SFN_ROLE_ARN })))
        .stateMachineArn!;
      // The tick starts its successors on this engine.
      (deps as unknown as { workflows: unknown }).workflows = new SfnWorkflows(h.client, {
        'xpu-reboot': '',
        'host-reboot': '',
        rollout: machineArn,
      });
      tasks = createRolloutTasks(deps, { ticksPerExecution: 3 });
      const settled = (name: string) => h.settled(`${machineArn.replace(':stateMachine:', ':execution:')}:${name}`, 20_000);
      const ended = async (name: string) => {
        const done = await settled(name);
        expect(done.status, name).toBe('SUCCEEDED');
        return (await h.history(done.executionArn!))
          .filter((e) => e.type === 'SucceedStateEntered')
          .map((e) => e.stateEnteredEventDetails?.name);
      };
      await h.client.send(
        new StartExecutionCommand({ stateMachineArn: machineArn, name: 'ro-1', input: JSON.stringify({ rolloutId: 'ro-1' }) }),
      );
      expect(await ended('ro-1')).toEqual(['RolloutContinued']);
      expect(await ended('ro-1-g2')).toEqual(['RolloutContinued']);
      expect(await ended('ro-1-g3')).toEqual(['RolloutCompleted']);
      expect(rollout()).toMatchObject({ status: 'completed', generation: 3 });
    } finally {
      await h.close();
    }
  }, 60_000);
});

describe('Step Functions history: a queued reboot looks again a bounded number of times, however long its cap', () => {
  /** Timeouts of WaitForBudgetSlot from queuing to the cap (each costs ~13 events: Task 6, Recheck 5, Choice 2). */
  function looks(capSeconds: number): number {
    const t0 = Date.parse('2026-12-07T00:00:00.000Z');
    const capAt = new Date(t0 + capSeconds * 1000).toISOString();
    let now = t0;
    let n = 0;
    while (now < Date.parse(capAt)) {
      now = Date.parse(queueRecheckAt({ capAt }, [], new Date(now)));
      n++;
    }
    return n;
  }

  it('keeps the minute for the default cap (1,800 s) and stays under 1,000 looks for the largest (2,000,000 s, 23 days)', () => {
    expect(looks(1800)).toBe(30);
    expect(looks(2_000_000) * 13).toBeLessThan(25_000 * 0.6);
  });
});

describe('a rollout’s reboot-xpu wakes its agent with the command, so the wake-up waits for gsi1 like any other', () => {
  it('notifies the agent with the command it wrote', async () => {
    const { deps, rollout } = rolloutDeps();
    rollout().items = [{ node: 'n1', xpu: 'dpu0', state: 'sent', commandId: 'ro-1.0', sentAt: '2026-12-07T00:59:00.000Z' }];
    const notified: Array<{ agent: string; ids?: string[] }> = [];
    Object.assign(deps.store, {
      getNodeState: async () => ({ node: 'n1', xpus: {} }),
      getCommand: async () => undefined,
      putCommand: async () => true,
    });
    (deps as unknown as { signal: unknown }).signal = {
      notify: (agent: string, commands?: StoredCommand[]) => notified.push({ agent, ids: commands?.map((c) => c.id) }),
    };
    await createRolloutTasks(deps)({ action: 'rollout-tick', rolloutId: 'ro-1', execution: 'ro-1' });
    expect(notified).toEqual([{ agent: 'n1.dpu0', ids: ['ro-1.0'] }]);
  });
});
