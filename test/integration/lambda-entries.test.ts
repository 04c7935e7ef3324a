// The same handlers in both wirings: local HTTP and the AWS Lambda entries (SDK clients via AWS_ENDPOINT_URL_*).
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { startStack, type Stack } from '../../local/stack.ts';
import { parseConfig } from '../../local/config.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { hashToken, loadInventoryFile, withHashedTokens } from '../../lambdas/core/inventory.ts';
import { DynamoInventory } from '../../lambdas/adapters/dynamo-inventory.ts';
import { api, tempDir, waitFor } from '../support/stack.ts';

const OPERATOR = 'operator-token-entries';
const INVENTORY = `
nodes:
  - id: node-a
    trusted: true
    bmcToken: bmc-token-node-a
    agentToken: agent-token-node-a
    xpus: [{ id: dpu0 }]
  - id: node-b
    trusted: true
    bmcToken: bmc-token-node-b
    agentToken: agent-token-node-b
    xpus: [{ id: dpu0 }]
`;

let stack: Stack;
let entries: {
  api: (event: unknown, ctx: unknown) => Promise<{ statusCode: number; body: string }>;
  ingest: (event: unknown, ctx: unknown) => Promise<{ batchItemFailures: Array<{ itemIdentifier: string }> }>;
  authorizer: (event: unknown) => Promise<{ isAuthorized: boolean; context?: Record<string, string> }>;
};

function httpEvent(method: string, path: string, token: string, body?: unknown, query = '') {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: query,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', host: 'api.example.com' },
    queryStringParameters: query ? Object.fromEntries(new URLSearchParams(query)) : undefined,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: 'r',
      routeKey: '$default',
      stage: '$default',
      time: '',
      timeEpoch: Date.now(),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    isBase64Encoded: false,
  };
}

beforeAll(async () => {
  const dir = tempDir('entries');
  const nodesFile = join(dir, 'nodes.yaml');
  writeFileSync(nodesFile, INVENTORY);
  stack = await startStack({
    config: parseConfig({ PORT: '0', DATA_DIR: join(dir, 'data'), NODES_FILE: nodesFile, OPERATOR_TOKEN: OPERATOR }),
    logger: silentLogger,
  });
  // What `rebootctl inventory push` stores in AWS: the inventory with hashed tokens.
  await new DynamoInventory(stack.dynamo.client, stack.dynamo.table).push({
    ...withHashedTokens(loadInventoryFile(nodesFile)),
    operatorTokenHash: hashToken(OPERATOR),
  });
  await stack.dynamo.client.send(
    new CreateTableCommand({
      TableName: 'idempotency',
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
    }),
  );
  Object.assign(process.env, {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_ENDPOINT_URL_DYNAMODB: stack.dynamo.url,
    AWS_ENDPOINT_URL_SQS: stack.sqs.url,
    AWS_ENDPOINT_URL_SFN: stack.sfnUrl,
    TABLE_NAME: stack.dynamo.table,
    IDEMPOTENCY_TABLE_NAME: 'idempotency',
    QUEUE_URL: stack.sqs.ingestQueueUrl,
    XPU_WORKFLOW_ARN: stack.workflowArns['xpu-reboot'],
    HOST_WORKFLOW_ARN: stack.workflowArns['host-reboot'],
    POWERTOOLS_METRICS_NAMESPACE: 'XpuRebootCoordinatorTest',
    POWERTOOLS_LOG_LEVEL: 'ERROR',
  });
  entries = {
    api: (await import('../../lambdas/entry/api.ts')).handler as never,
    ingest: (await import('../../lambdas/entry/ingest.ts')).handler as never,
    authorizer: (await import('../../lambdas/entry/authorizer.ts')).handler as never,
  };
});

afterAll(async () => {
  await stack?.close();
});

const lambdaCtx = { functionName: 'api', awsRequestId: 'req', getRemainingTimeInMillis: () => 30_000 };

async function rebootsOf(node: string) {
  return (await api(stack.url, `/v1/reboots?node=${node}`, { token: OPERATOR })).json.items as Array<Record<string, any>>;
}

describe('the Lambda entries run the same handlers as the local stack', () => {
  it('the authorizer tells operator, BMC and agent tokens apart from the stored hashes', async () => {
    expect(await entries.authorizer({ headers: { authorization: `Bearer ${OPERATOR}` } })).toMatchObject({
      isAuthorized: true,
      context: { principal: 'operator' },
    });
    expect(await entries.authorizer({ headers: {}, queryStringParameters: { access_token: 'bmc-token-node-b' } })).toMatchObject({
      isAuthorized: true,
      context: { principal: 'bmc', node: 'node-b' },
    });
    // Let through as nobody, for the API to answer 401 in the contract's shape (API Gateway would say 403).
    expect(await entries.authorizer({ headers: { authorization: 'Bearer nope-nope-nope' } })).toEqual({
      isAuthorized: true,
      context: { principal: 'none', node: '', agent: '' },
    });
    // ...which it does, on every kind of route.
    for (const [method, path] of [
      ['GET', '/v1/reboots'],
      ['POST', '/v1/events'],
      ['GET', '/v1/agents/node-b/commands'],
    ]) {
      const res = await entries.api(httpEvent(method, path, 'nope-nope-nope', method === 'POST' ? {} : undefined), lambdaCtx);
      expect(res.statusCode, `${method} ${path}`).toBe(401);
      expect(JSON.parse(res.body)).toMatchObject({ error: 'Unauthorized', message: expect.any(String) });
    }
  });

  it('API entry answers like the local API, and its events go through the same queue', async () => {
    const viaLambda = await entries.api(
      httpEvent('POST', '/v1/events', 'agent-token-node-b', { id: 'lambda-1', type: 'xpu.reboot.pending', node: 'node-b', xpu: 'dpu0' }),
      lambdaCtx,
    );
    const viaHttp = await api(stack.url, '/v1/events', {
      token: 'agent-token-node-a',
      body: { id: 'http-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0' },
    });
    expect(viaLambda.statusCode).toBe(202);
    expect(viaHttp.status).toBe(202);
    expect(JSON.parse(viaLambda.body)).toEqual({ ...viaHttp.json, id: 'lambda-1' });

    const forbidden = await entries.api(
      httpEvent('POST', '/v1/events', 'agent-token-node-b', { id: 'x', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0' }),
      lambdaCtx,
    );
    expect(forbidden.statusCode).toBe(403);
    const badType = await entries.api(
      httpEvent('POST', '/v1/events', 'agent-token-node-b', { id: 'x', type: 'xpu.exploded', node: 'node-b' }),
      lambdaCtx,
    );
    expect(badType.statusCode).toBe(400);

    const [a, b] = await waitFor('both reboots preparing', async () => {
      const ra = (await rebootsOf('node-a'))[0];
      const rb = (await rebootsOf('node-b'))[0];
      return ra?.status === 'preparing' && rb?.status === 'preparing' ? [ra, rb] : undefined;
    });
    const shape = (r: Record<string, any>) => ({
      status: r.status,
      kind: r.kind,
      commands: Object.values(r.commands)
        .map((c: any) => c.type)
        .sort(),
      phases: r.history.map((h: any) => h.phase),
    });
    expect(shape(b)).toEqual(shape(a));

    const listed = await entries.api(httpEvent('GET', '/v1/reboots', OPERATOR, undefined, 'node=node-b'), lambdaCtx);
    expect(JSON.parse(listed.body).items[0].id).toBe(b.id);
    const polled = await entries.api(httpEvent('GET', '/v1/agents/node-b/commands', 'agent-token-node-b', undefined, 'wait=0'), lambdaCtx);
    expect(JSON.parse(polled.body).map((c: any) => c.type)).toEqual(['migrate-workloads', 'protect-pcie']);
  });

  it('ingest entry applies an SQS batch, suppresses the duplicate and reports only the poison record', async () => {
    const ev = {
      id: 'sqs-1',
      type: 'host.reboot.requested',
      node: 'node-a',
      time: new Date().toISOString(),
      data: { method: 'ipmi' },
      source: 'native',
      dedupKey: 'native:node-a:sqs-1',
      receivedAt: new Date().toISOString(),
    };
    const record = (id: string, body: string) => ({
      messageId: id,
      receiptHandle: id,
      body,
      attributes: { ApproximateReceiveCount: '1' },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn',
      awsRegion: 'us-east-1',
    });
    const res = await entries.ingest(
      { Records: [record('m1', JSON.stringify(ev)), record('m2', JSON.stringify(ev)), record('m3', '{not json')] },
      lambdaCtx,
    );
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: 'm3' }]);
    // node-a has an xPU reboot in progress, so the default policy denies the host reboot.
    const host = await waitFor('host reboot recorded', async () => (await rebootsOf('node-a')).find((r) => r.kind === 'host'));
    expect(host.status).toBe('denied');
    expect(host.denyReason).toMatch(/xpu-rebooting/);
    expect((await rebootsOf('node-a')).filter((r) => r.kind === 'host')).toHaveLength(1);
  });
});
