// A dependency that does not answer (an emulator restarting, a throttled table, a queue away) makes the
// API answer 503 Unavailable with Retry-After, not 500; an error of the coordinator's own stays a 500.
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it } from 'vitest';
import { hashToken, InventoryIndex, parseInventory } from '../../lambdas/core/inventory.ts';
import { createApiApp, type ApiDeps } from '../../lambdas/handlers/api.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { isDependencyDown, UNAVAILABLE_RETRY_AFTER_SECONDS } from '../../lambdas/handlers/unavailable.ts';
import { loadMapping } from '../../lambdas/core/redfish/mapping.ts';

/** An error as the AWS SDK v3 throws it: a service exception with its name and metadata. */
function awsError(name: string, status: number, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: status }, ...extra });
}

describe('isDependencyDown', () => {
  it('is true for a dependency that refused for load, failed on its side, or could not be reached', () => {
    for (const err of [
      awsError('ProvisionedThroughputExceededException', 400),
      awsError('ThrottlingException', 400),
      awsError('RequestLimitExceeded', 400),
      awsError('InternalServerError', 500),
      awsError('SomethingNew', 503),
      awsError('SomethingRetryable', 400, { $retryable: { throttling: true } }),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8000'), { code: 'ECONNREFUSED' }),
      new Error('request failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) }),
      Object.assign(new Error('timed out'), { name: 'TimeoutError' }),
    ])
      expect(isDependencyDown(err), `${err.name}: ${err.message}`).toBe(true);
  });

  it("is false for the coordinator's own errors and for answers that say the request was wrong", () => {
    for (const err of [
      new Error('a bug'),
      new TypeError('x is undefined'),
      awsError('ConditionalCheckFailedException', 400),
      awsError('ValidationException', 400),
      awsError('ResourceNotFoundException', 400),
      Object.assign(new Error('no such file'), { code: 'ENOENT' }),
      'a string',
      undefined,
    ])
      expect(isDependencyDown(err), String(err)).toBe(false);
  });

  it('recognises what the SDK throws when DynamoDB is not there at all (after its own retries)', async () => {
    const client = new DynamoDBClient({
      endpoint: 'http://127.0.0.1:1',
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      maxAttempts: 1,
    });
    const err = await client.send(new GetItemCommand({ TableName: 't', Key: { id: { S: 'a' } } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(isDependencyDown(err)).toBe(true);
  });
});

describe('the API when a dependency does not answer', () => {
  const OPERATOR = 'operator-token-unavailable';
  const index = new InventoryIndex(
    parseInventory(`
nodes:
  - id: n1
    agentToken: agent-token-n1
    xpus:
      - id: dpu0
`),
  );
  const down = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8000'), { code: 'ECONNREFUSED', $metadata: { attempts: 4 } });
  let failWith: unknown = down;
  const fail = async () => {
    throw failWith;
  };
  const app = createApiApp({
    mapping: { rules: [] },
    operatorTokenHash: hashToken(OPERATOR),
    inventory: async () => index,
    logger: silentLogger,
    clock: { now: () => new Date('2030-01-01T00:00:00.000Z') },
    store: { getReboot: fail, listReboots: fail },
    queue: { send: fail },
  } as unknown as ApiDeps);
  const auth = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });

  it.each([
    ['a read of a reboot (store away)', () => app.request('/v1/reboots/xr-1', { headers: auth(OPERATOR) })],
    ['a list (store away)', () => app.request('/v1/reboots', { headers: auth(OPERATOR) })],
    [
      'an event (queue away): not accepted, so its sender sends it again',
      () =>
        app.request('/v1/events', {
          method: 'POST',
          headers: auth('agent-token-n1'),
          body: JSON.stringify({ id: 'e1', type: 'xpu.ready', node: 'n1', xpu: 'dpu0' }),
        }),
    ],
  ])('%s is answered 503 Unavailable with Retry-After', async (_, send) => {
    failWith = down;
    const res = await send();
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe(String(UNAVAILABLE_RETRY_AFTER_SECONDS));
    expect(await res.json()).toEqual({ error: 'Unavailable', message: expect.stringMatching(/did not answer.*send the request again/) });
  });

  it('a throttled table is a 503 too; a bug of its own is still a 500', async () => {
    failWith = awsError('ProvisionedThroughputExceededException', 400);
    expect((await app.request('/v1/reboots/xr-1', { headers: auth(OPERATOR) })).status).toBe(503);
    failWith = new TypeError('cannot read properties of undefined');
    const res = await app.request('/v1/reboots/xr-1', { headers: auth(OPERATOR) });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: string }).error).toBe('InternalError');
  });
});

describe('the Redfish webhook when the table does not answer', () => {
  it('answers 503 before anything was queued, so the BMC retry is the only delivery', async () => {
    const index = new InventoryIndex(parseInventory('nodes:\n  - { id: n1, bmcToken: bmc-token-n1, xpus: [{ id: dpu0 }] }\n'));
    const queued: unknown[] = [];
    const app = createApiApp({
      mapping: loadMapping(null),
      inventory: async () => index,
      logger: silentLogger,
      clock: { now: () => new Date('2030-01-01T00:00:00.000Z') },
      store: {
        touchBmc: async () => {
          throw awsError('ProvisionedThroughputExceededException', 400);
        },
      },
      queue: { send: async (evs: unknown[]) => void queued.push(...evs) },
      metrics: { count: () => {} },
    } as unknown as ApiDeps);
    const res = await app.request('/v1/events/redfish', {
      method: 'POST',
      headers: { authorization: 'Bearer bmc-token-n1', 'content-type': 'application/json' },
      body: JSON.stringify({ Events: [{ EventId: '1', MessageId: 'XpuReboot.1.0.RebootPending', MessageArgs: ['60', 'fw'] }] }),
    });
    expect(res.status).toBe(503);
    expect(queued).toEqual([]);
  });
});
