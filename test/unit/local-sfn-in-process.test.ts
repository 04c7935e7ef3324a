// The stack's own Step Functions client answers in process (local/sfn/server.ts inProcessSfnHandler): the same
// SDK client must see exactly what it sees over HTTP, results, timestamps and error names alike, since the
// handlers (lambdas/adapters/sfn-workflows.ts) branch on them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DescribeExecutionCommand,
  SFNClient,
  SendTaskSuccessCommand,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { inProcessSfnHandler } from '../../local/sfn/server.ts';
import { startHarness, type Harness } from './fixtures/sfn/harness.ts';

let h: Harness;
let local: SFNClient;
let arn: string;

beforeAll(async () => {
  h = await startHarness();
  local = new SFNClient({
    endpoint: h.server.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
    requestHandler: inProcessSfnHandler(h.engine),
  });
  arn = await h.createMachine('in-process', 'callback.asl.json', { ApproverFunction: 'approver' });
});
afterAll(async () => {
  local.destroy();
  await h.close();
});

/** What a call gave: its output (without request metadata) or its error's name and HTTP status. */
async function outcome(client: SFNClient, command: object): Promise<unknown> {
  try {
    const { $metadata: _m, ...out } = (await client.send(command as never)) as unknown as Record<string, unknown>;
    return { ok: out };
  } catch (err) {
    const e = err as Error & { $metadata?: { httpStatusCode?: number } };
    return { error: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
}

describe('the in-process transport', () => {
  it('starts an execution, with the same dates and names as over HTTP', async () => {
    const out = (await local.send(new StartExecutionCommand({ stateMachineArn: arn, name: 'in-proc-1', input: '{"a":1}' }))) as {
      executionArn?: string;
      startDate?: Date;
    };
    expect(out.executionArn).toContain(':in-proc-1');
    expect(out.startDate).toBeInstanceOf(Date);
    const viaLocal = await outcome(local, new DescribeExecutionCommand({ executionArn: out.executionArn }));
    const viaHttp = await outcome(h.client, new DescribeExecutionCommand({ executionArn: out.executionArn }));
    expect(viaLocal).toEqual(viaHttp);
    expect((viaLocal as { ok: { input: string } }).ok.input).toBe('{"a":1}');
  });

  it('maps every error as the HTTP server does', async () => {
    await local.send(new StartExecutionCommand({ stateMachineArn: arn, name: 'in-proc-2', input: '{}' }));
    const cases: object[] = [
      // Same name, other input: the adapter tells a replay from a clash by this name.
      new StartExecutionCommand({ stateMachineArn: arn, name: 'in-proc-2', input: '{"other":true}' }),
      new DescribeExecutionCommand({ executionArn: `${arn.replace(':stateMachine:', ':execution:')}:nope` }),
      new SendTaskSuccessCommand({ taskToken: 'not-a-token', output: '{}' }),
      new StopExecutionCommand({ executionArn: 'garbage' }),
    ];
    for (const c of cases) {
      const viaLocal = (await outcome(local, c)) as { error?: string; status?: number };
      const viaHttp = await outcome(h.client, c);
      expect(viaLocal.error, JSON.stringify(viaLocal)).toBeDefined();
      expect(viaLocal.status).toBe(400);
      expect(viaLocal).toEqual(viaHttp);
    }
    const clash = (await outcome(local, cases[0])) as { error: string };
    expect(clash.error).toBe('ExecutionAlreadyExists');
  });
});
