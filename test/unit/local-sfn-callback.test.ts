// Callback Tasks (.waitForTaskToken) through the SDK: success, failure routed by Catch, and the token lifecycle.
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { ManualClock } from '../../local/sfn/clock.ts';
import { eventually, startHarness, type Harness } from './fixtures/sfn/harness.ts';

describe('callback Task', () => {
  let h: Harness;
  let machineArn: string;

  beforeEach(async () => {
    h = await startHarness({ clock: new ManualClock() });
    machineArn = await h.createMachine('approval', 'callback.asl.json', { ApproverFunction: 'approver' });
  });
  afterEach(() => h.close());

  async function startAndGetToken(request: string) {
    const { executionArn } = await h.client.send(
      new StartExecutionCommand({ stateMachineArn: machineArn, input: JSON.stringify({ request }) }),
    );
    const call = await eventually('a call to approver with this request', () =>
      h.callsTo('approver').find((c) => c.payload.request === request),
    );
    return { executionArn: executionArn!, token: call.payload.taskToken as string };
  }

  test('SendTaskSuccess completes the Task and its output lands at ResultPath', async () => {
    const { executionArn, token } = await startAndGetToken('r1');

    await h.client.send(new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify({ granted: 300 }) }));

    const done = await h.settled(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toEqual({ request: 'r1', approval: { granted: 300 } });
    const types = (await h.history(executionArn)).map((e) => e.type);
    expect(types).toContain('TaskSubmitted');
    expect(types.filter((t) => t === 'TaskSucceeded')).toHaveLength(1);
  });

  test('SendTaskFailure with a custom error is routed by Catch on that name', async () => {
    const { executionArn, token } = await startAndGetToken('r2');

    await h.client.send(new SendTaskFailureCommand({ taskToken: token, error: 'ExtensionRefused', cause: 'cap reached' }));

    const done = await h.settled(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toEqual({
      request: 'r2',
      refusal: { Error: 'ExtensionRefused', Cause: 'cap reached' },
      outcome: 'refused',
    });
    const failed = (await h.history(executionArn)).find((e) => e.type === 'TaskFailed');
    expect(failed?.taskFailedEventDetails).toMatchObject({ error: 'ExtensionRefused', cause: 'cap reached' });
  });

  test('an error thrown by the callback Lambda fails the Task with its name', async () => {
    await h.close();
    h = await startHarness({
      clock: new ManualClock(),
      lambdas: {
        approver: () => {
          throw Object.assign(new Error('host is untrusted'), { name: 'ExtensionRefused' });
        },
      },
    });
    machineArn = await h.createMachine('approval', 'callback.asl.json', { ApproverFunction: 'approver' });
    const { executionArn } = await h.client.send(new StartExecutionCommand({ stateMachineArn: machineArn, input: '{"request":"r3"}' }));

    const done = await h.settled(executionArn!);

    expect(JSON.parse(done.output!).refusal).toEqual({ Error: 'ExtensionRefused', Cause: 'host is untrusted' });
  });

  test('an unknown or finished token answers TaskTimedOut, a malformed one InvalidToken', async () => {
    const { executionArn, token } = await startAndGetToken('r4');
    await h.client.send(new SendTaskSuccessCommand({ taskToken: token, output: '{}' }));
    await h.settled(executionArn);

    const unknown = token.slice(0, -32) + '0'.repeat(32);
    await expect(h.client.send(new SendTaskSuccessCommand({ taskToken: token, output: '{}' }))).rejects.toMatchObject({
      name: 'TaskTimedOut',
    });
    await expect(h.client.send(new SendTaskHeartbeatCommand({ taskToken: unknown }))).rejects.toMatchObject({
      name: 'TaskTimedOut',
    });
    await expect(h.client.send(new SendTaskFailureCommand({ taskToken: 'not-a-token' }))).rejects.toMatchObject({
      name: 'InvalidToken',
    });
  });

  test('SendTaskSuccess with output that is not JSON answers InvalidOutput and leaves the Task parked', async () => {
    const { executionArn, token } = await startAndGetToken('r5');

    await expect(h.client.send(new SendTaskSuccessCommand({ taskToken: token, output: '{oops' }))).rejects.toMatchObject({
      name: 'InvalidOutput',
    });

    await h.client.send(new SendTaskSuccessCommand({ taskToken: token, output: '"ok"' }));
    expect((await h.settled(executionArn)).status).toBe('SUCCEEDED');
  });

  test('StopExecution aborts a parked execution and retires its token', async () => {
    const { executionArn, token } = await startAndGetToken('r6');

    await h.client.send(new StopExecutionCommand({ executionArn, error: 'Cancelled', cause: 'operator' }));

    const done = await h.settled(executionArn);
    expect(done).toMatchObject({ status: 'ABORTED', error: 'Cancelled', cause: 'operator' });
    expect((await h.history(executionArn)).at(-1)?.type).toBe('ExecutionAborted');
    await expect(h.client.send(new SendTaskSuccessCommand({ taskToken: token, output: '{}' }))).rejects.toMatchObject({
      name: 'TaskTimedOut',
    });
  });
});
