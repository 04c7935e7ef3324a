// `npm start` prints the embedded DynamoDB, SQS and Step Functions endpoints after its ready line,
// takes their ports from DYNAMODB_PORT, SQS_PORT and SFN_PORT, and they answer what the README's
// "Look inside with the AWS CLI" runs (here through the SDK: the CLI need not be installed).
import { Agent, get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetExecutionHistoryCommand, ListExecutionsCommand, ListStateMachinesCommand, SFNClient } from '@aws-sdk/client-sfn';
import { ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startStackProcess, tempDir, waitFor, writeInventory, type RunningStack } from '../support/stack.ts';

// What the README tells people to use: any key works, the region is the one the ARNs name.
const aws = { region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };

/** A port free right now (asked of the OS, not chosen by us). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

let stack: RunningStack;
let ports: { dynamodb: number; sqs: number; stepfunctions: number };

beforeAll(async () => {
  const dir = tempDir('local-endpoints');
  const nodesFile = writeInventory(
    dir,
    'nodes:\n  - id: n1\n    trusted: true\n    agentToken: agent-token-n1\n    xpus:\n      - id: dpu0\n',
  );
  ports = { dynamodb: await freePort(), sqs: await freePort(), stepfunctions: await freePort() };
  stack = await startStackProcess({
    dataDir: dir,
    nodesFile,
    env: { DYNAMODB_PORT: String(ports.dynamodb), SQS_PORT: String(ports.sqs), SFN_PORT: String(ports.stepfunctions) },
  });
  await waitFor('the endpoint lines after the ready line', async () => stack.output().includes('stepfunctions endpoint'), 10_000);
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

/** The endpoint lines, in order, right after the ready line. */
function endpoints(): { name: string; url: string; rest: string }[] {
  const lines = stack.output().split('\n');
  const ready = lines.findIndex((l) => l.startsWith('xpu-reboot-coordinator ready at '));
  expect(ready, stack.output()).toBeGreaterThanOrEqual(0);
  return lines.slice(ready + 1, ready + 4).map((l) => {
    const m = /^(\w+) endpoint (http:\/\/127\.0\.0\.1:\d+) \((.*)\)$/.exec(l);
    expect(m, `an endpoint line: ${JSON.stringify(l)}`).not.toBeNull();
    return { name: m![1], url: m![2], rest: m![3] };
  });
}

describe('the local stack shows its AWS endpoints', () => {
  it('prints one line per endpoint after the ready line, on the ports asked for', () => {
    expect(endpoints()).toEqual([
      { name: 'dynamodb', url: `http://127.0.0.1:${ports.dynamodb}`, rest: 'table xpu-reboot-coordinator' },
      { name: 'sqs', url: `http://127.0.0.1:${ports.sqs}`, rest: 'queues xpu-reboot-ingest, xpu-reboot-ingest-dlq' },
      { name: 'stepfunctions', url: `http://127.0.0.1:${ports.stepfunctions}`, rest: 'state machines host-reboot, rollout, xpu-reboot' },
    ]);
  });

  it('answers list-executions, get-execution-history, scan and list-queues about a reboot', async () => {
    const [dynamodb, sqs, sfn] = endpoints().map((e) => e.url);
    const posted = await api(stack.url, '/v1/events', {
      token: 'agent-token-n1',
      body: { id: 'e-1', type: 'xpu.reboot.pending', node: 'n1', xpu: 'dpu0', data: { reason: 'firmware' } },
    });
    expect(posted.status).toBe(202);
    const reboot = await waitFor(
      'the reboot of n1.dpu0 to be listed',
      async () => (await api(stack.url, '/v1/reboots?node=n1', { token: 'agent-token-n1' })).json?.items?.[0],
    );

    const sfnClient = new SFNClient({ endpoint: sfn, ...aws });
    const sqsClient = new SQSClient({ endpoint: sqs, ...aws });
    const dynamoClient = new DynamoDBClient({ endpoint: dynamodb, ...aws });
    try {
      const machines = await sfnClient.send(new ListStateMachinesCommand({}));
      const xpuReboot = machines.stateMachines!.find((m) => m.name === 'xpu-reboot')!;
      expect(xpuReboot.stateMachineArn).toBe('arn:aws:states:us-east-1:000000000000:stateMachine:xpu-reboot');
      // The execution is named after the reboot (what the README says to look for).
      const execution = await waitFor(`an execution named ${reboot.id}`, async () =>
        (await sfnClient.send(new ListExecutionsCommand({ stateMachineArn: xpuReboot.stateMachineArn }))).executions!.find(
          (e) => e.name === reboot.id,
        ),
      );
      expect(execution.status).toBe('RUNNING');
      const history = await sfnClient.send(new GetExecutionHistoryCommand({ executionArn: execution.executionArn }));
      expect(history.events![0].type).toBe('ExecutionStarted');
      expect(history.events!.length).toBeGreaterThan(1);

      const items = (await dynamoClient.send(new ScanCommand({ TableName: 'xpu-reboot-coordinator' }))).Items!;
      expect(items.map((i) => `${i.pk.S} ${i.sk.S}`)).toContain(`R#${reboot.id} R`);

      const queues = await sqsClient.send(new ListQueuesCommand({}));
      expect(queues.QueueUrls!.sort()).toEqual([`${sqs}/000000000000/xpu-reboot-ingest`, `${sqs}/000000000000/xpu-reboot-ingest-dlq`]);
    } finally {
      sfnClient.destroy();
      sqsClient.destroy();
      dynamoClient.destroy();
    }
  }, 60_000);
});

describe('the API and idle keep-alive connections', () => {
  /** One GET over `agent`: its keep-alive header and whether it went over a socket used before. */
  function get(agent: Agent, path: string): Promise<{ keepAlive: string | undefined; reused: boolean; status: number }> {
    return new Promise((resolve, reject) => {
      const req = httpGet(`${stack.url}${path}`, { agent }, (res) => {
        res.resume();
        res.on('end', () =>
          resolve({ keepAlive: res.headers['keep-alive'] as string | undefined, reused: req.reusedSocket, status: res.statusCode ?? 0 }),
        );
      });
      req.on('error', reject);
    });
  }

  it("keeps an idle connection past Node's 5 s default, so a client reusing it after a pause is not reset", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await get(agent, '/healthz');
      expect(first.status).toBe(200);
      expect(first.keepAlive).toBe('timeout=65');
      await new Promise((r) => setTimeout(r, 6_000));
      const second = await get(agent, '/healthz');
      expect(second).toEqual({ keepAlive: 'timeout=65', reused: true, status: 200 });
    } finally {
      agent.destroy();
    }
  }, 30_000);
});
