// Time in the local engine under a ManualClock: Task timeouts and heartbeats from *Path fields, Wait states, retries.
import { afterEach, describe, expect, test } from 'vitest';
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { ManualClock } from '../../local/sfn/clock.ts';
import { eventually, ROLE_ARN, startHarness, type Harness } from './fixtures/sfn/harness.ts';

let h: Harness;
afterEach(() => h?.close());

async function status(executionArn: string) {
  return h.client.send(new DescribeExecutionCommand({ executionArn }));
}

describe('callback Task timeouts from TimeoutSecondsPath and HeartbeatSecondsPath', () => {
  async function parkedExecution(clock: ManualClock, input: object) {
    h = await startHarness({ clock });
    const stateMachineArn = await h.createMachine('wait-for-host', 'timeouts.asl.json');
    const { executionArn } = await h.client.send(new StartExecutionCommand({ stateMachineArn, input: JSON.stringify(input) }));
    const call = await eventually('a call to notify-host', () => h.callsTo('notify-host')[0]);
    return { executionArn: executionArn!, token: call.payload.taskToken as string };
  }

  test('the timeout read from the state input fires States.Timeout, which States.TaskFailed does not catch', async () => {
    const clock = new ManualClock();
    const { executionArn, token } = await parkedExecution(clock, { timeoutSeconds: 300, heartbeatSeconds: 120 });

    for (let t = 0; t < 3; t++) {
      await clock.advance(99_000);
      await h.client.send(new SendTaskHeartbeatCommand({ taskToken: token }));
    }
    expect((await status(executionArn)).status).toBe('RUNNING'); // 297 s in
    await clock.advance(3_000);

    const done = await h.settled(executionArn);
    expect(JSON.parse(done.output!)).toMatchObject({ outcome: 'timeout', error: { Error: 'States.Timeout' } });
    expect(done.stopDate!.getTime() - done.startDate!.getTime()).toBe(300_000);
    const timedOut = (await h.history(executionArn)).find((e) => e.type === 'TaskTimedOut');
    expect(timedOut?.taskTimedOutEventDetails?.error).toBe('States.Timeout');
    await expect(h.client.send(new SendTaskSuccessCommand({ taskToken: token, output: '{}' }))).rejects.toMatchObject({
      name: 'TaskTimedOut',
    });
  });

  test('a missed heartbeat fires States.HeartbeatTimeout, and SendTaskHeartbeat pushes the deadline', async () => {
    const clock = new ManualClock();
    const { executionArn, token } = await parkedExecution(clock, { timeoutSeconds: 3600, heartbeatSeconds: 60 });

    await clock.advance(59_000);
    await h.client.send(new SendTaskHeartbeatCommand({ taskToken: token }));
    await clock.advance(59_000); // 118 s: alive only thanks to the heartbeat at 59 s
    expect((await status(executionArn)).status).toBe('RUNNING');
    await clock.advance(1_000); // 119 s = 59 s + 60 s

    const done = await h.settled(executionArn);
    expect(JSON.parse(done.output!)).toMatchObject({ outcome: 'heartbeat', error: { Error: 'States.HeartbeatTimeout' } });
    expect(done.stopDate!.getTime() - done.startDate!.getTime()).toBe(119_000);
  });

  test('SendTaskSuccess before the deadline wins and cancels both timers', async () => {
    const clock = new ManualClock();
    const { executionArn, token } = await parkedExecution(clock, { timeoutSeconds: 300, heartbeatSeconds: 60 });

    await clock.advance(30_000);
    await h.client.send(new SendTaskSuccessCommand({ taskToken: token, output: '{"up":true}' }));

    const done = await h.settled(executionArn);
    expect(JSON.parse(done.output!).host).toEqual({ up: true });
    expect(clock.pending()).toBe(0);
  });

  test('a TimeoutSecondsPath that selects nothing fails the execution with States.Runtime', async () => {
    const clock = new ManualClock();
    h = await startHarness({ clock });
    const stateMachineArn = await h.createMachine('wait-for-host', 'timeouts.asl.json');

    const { executionArn } = await h.client.send(new StartExecutionCommand({ stateMachineArn, input: '{"heartbeatSeconds":60}' }));

    const done = await h.settled(executionArn!);
    expect(done).toMatchObject({ status: 'FAILED', error: 'States.Runtime' });
    expect(done.cause).toContain('TimeoutSecondsPath');
  });
});

describe('Wait states on the engine Clock', () => {
  test('TimestampPath then Seconds: both end exactly on time, and history shows them as Wait states', async () => {
    const clock = new ManualClock();
    h = await startHarness({ clock });
    const stateMachineArn = await h.createMachine('waits', 'waits.asl.json');
    const start = clock.now();
    const deadline = new Date(start + 3600_000).toISOString();

    const { executionArn } = await h.client.send(new StartExecutionCommand({ stateMachineArn, input: JSON.stringify({ deadline }) }));
    await clock.advance(3599_999);
    expect((await h.history(executionArn!)).map((e) => e.type)).not.toContain('WaitStateExited');
    await clock.advance(1);
    await clock.advance(59_999);
    expect(h.callsTo('record')).toHaveLength(0);
    await clock.advance(1);

    const done = await h.settled(executionArn!);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.stopDate!.getTime()).toBe(start + 3600_000 + 60_000);
    const events = await h.history(executionArn!);
    const waits = events.filter((e) => e.type?.startsWith('WaitState'));
    expect(waits.map((e) => [e.type, e.stateEnteredEventDetails?.name ?? e.stateExitedEventDetails?.name])).toEqual([
      ['WaitStateEntered', 'WaitForDeadline'],
      ['WaitStateExited', 'WaitForDeadline'],
      ['WaitStateEntered', 'Settle'],
      ['WaitStateExited', 'Settle'],
    ]);
    expect(waits[1].timestamp!.getTime()).toBe(start + 3600_000);
    expect(events.filter((e) => e.type === 'TaskScheduled')).toHaveLength(1); // only Record
  });

  test('a Wait longer than 24.8 days does not overflow', async () => {
    const clock = new ManualClock();
    h = await startHarness({ clock });
    const stateMachineArn = await h.createMachine('waits', 'waits.asl.json');
    const deadline = new Date(clock.now() + 30 * 86400_000).toISOString();

    const { executionArn } = await h.client.send(new StartExecutionCommand({ stateMachineArn, input: JSON.stringify({ deadline }) }));
    await clock.advance(29 * 86400_000);
    expect((await status(executionArn!)).status).toBe('RUNNING');
    await clock.advance(86400_000 + 60_000);

    expect((await h.settled(executionArn!)).status).toBe('SUCCEEDED');
  });

  test('a timestamp in the past ends the wait at once', async () => {
    const clock = new ManualClock();
    h = await startHarness({ clock });
    const stateMachineArn = await h.createMachine('waits', 'waits.asl.json');

    const { executionArn } = await h.client.send(
      new StartExecutionCommand({ stateMachineArn, input: JSON.stringify({ deadline: '2001-01-01T00:00:00Z' }) }),
    );
    await eventually('the Settle state to be entered', async () =>
      (await h.history(executionArn!)).some((e) => e.stateEnteredEventDetails?.name === 'Settle'),
    );
  });
});

describe('machine-wide TimeoutSeconds and Retry backoff on the Clock', () => {
  test('TimeoutSeconds of the machine ends the execution as TIMED_OUT at the deadline', async () => {
    const clock = new ManualClock();
    h = await startHarness({ clock });
    const definition = JSON.stringify({
      TimeoutSeconds: 600,
      StartAt: 'Forever',
      States: { Forever: { Type: 'Wait', Seconds: 86400, End: true } },
    });
    const { stateMachineArn } = await h.client.send(new CreateStateMachineCommand({ name: 'bounded', definition, roleArn: ROLE_ARN }));
    const { executionArn } = await h.client.send(new StartExecutionCommand({ stateMachineArn }));

    await clock.advance(600_000);

    const done = await h.settled(executionArn!);
    expect(done).toMatchObject({ status: 'TIMED_OUT', error: 'States.Timeout' });
    expect((await h.history(executionArn!)).at(-1)?.type).toBe('ExecutionTimedOut');
    expect(clock.pending()).toBe(0);
  });

  test('Retry waits IntervalSeconds x BackoffRate on the Clock between attempts', async () => {
    const clock = new ManualClock();
    let attempts = 0;
    h = await startHarness({
      clock,
      lambdas: {
        flaky: () => {
          attempts++;
          if (attempts < 3) throw Object.assign(new Error('try later'), { name: 'Busy' });
          return 'ok';
        },
      },
    });
    const definition = JSON.stringify({
      StartAt: 'Call',
      States: {
        Call: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke',
          Parameters: { FunctionName: 'flaky' },
          Retry: [{ ErrorEquals: ['Busy'], IntervalSeconds: 10, BackoffRate: 3, MaxAttempts: 5 }],
          OutputPath: '$.Payload',
          End: true,
        },
      },
    });
    const { stateMachineArn } = await h.client.send(new CreateStateMachineCommand({ name: 'retrying', definition, roleArn: ROLE_ARN }));
    const { executionArn } = await h.client.send(new StartExecutionCommand({ stateMachineArn }));
    await eventually('one attempt', () => attempts === 1);

    await clock.advance(9_999);
    expect(attempts).toBe(1);
    await clock.advance(1); // 10 s
    expect(attempts).toBe(2);
    await clock.advance(29_999);
    expect(attempts).toBe(2);
    await clock.advance(1); // + 30 s

    const done = await h.settled(executionArn!);
    expect(done).toMatchObject({ status: 'SUCCEEDED', output: '"ok"' });
    expect((await h.history(executionArn!)).filter((e) => e.type === 'TaskScheduled')).toHaveLength(3);
  });
});
