// Execution history, StartExecution idempotency and the listing APIs of the local engine, through the SDK.
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import {
  DescribeStateMachineCommand,
  GetExecutionHistoryCommand,
  ListExecutionsCommand,
  ListStateMachinesCommand,
  SendTaskSuccessCommand,
  StartExecutionCommand,
  UpdateStateMachineCommand,
  paginateGetExecutionHistory,
  type HistoryEvent,
} from '@aws-sdk/client-sfn';
import { ManualClock } from '../../local/sfn/clock.ts';
import { eventually, fixture, startHarness, stateEnteredCount, type Harness } from './fixtures/sfn/harness.ts';

let h: Harness;
let machineArn: string;
beforeEach(async () => {
  h = await startHarness({ clock: new ManualClock() });
  machineArn = await h.createMachine('small', 'small.asl.json');
});
afterEach(() => h.close());

async function run(input: object, name?: string) {
  const { executionArn } = await h.client.send(
    new StartExecutionCommand({ stateMachineArn: machineArn, name, input: JSON.stringify(input) }),
  );
  return { executionArn: executionArn!, done: await h.settled(executionArn!) };
}

describe('execution history', () => {
  test('has the AWS event types in order and one *StateEntered per state entered', async () => {
    const { executionArn, done } = await run({ urgent: false, node: 'node-a' });

    expect(done.status).toBe('SUCCEEDED');
    const events = await h.history(executionArn);
    expect(events.map((e) => e.type)).toEqual([
      'ExecutionStarted',
      'PassStateEntered',
      'PassStateExited',
      'ChoiceStateEntered',
      'ChoiceStateExited',
      'TaskStateEntered',
      'LambdaFunctionScheduled',
      'LambdaFunctionStarted',
      'LambdaFunctionSucceeded',
      'TaskStateExited',
      'TaskStateEntered',
      'TaskScheduled',
      'TaskStarted',
      'TaskSucceeded',
      'TaskStateExited',
      'SucceedStateEntered',
      'SucceedStateExited',
      'ExecutionSucceeded',
    ]);
    expect(stateEnteredCount(events)).toBe(5);
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    expect(events.every((e) => e.previousEventId === e.id! - 1 && e.timestamp instanceof Date)).toBe(true);
    expect(events[1].stateEnteredEventDetails).toMatchObject({ name: 'Classify', input: '{"urgent":false,"node":"node-a"}' });
    expect(JSON.parse(events[2].stateExitedEventDetails!.output!)).toEqual({ urgent: false, node: 'node-a' });
    expect(JSON.parse(events[11].taskScheduledEventDetails!.parameters!)).toMatchObject({ FunctionName: 'record' });
  });

  test('a Fail state ends with FailStateEntered and ExecutionFailed carrying its Error and Cause', async () => {
    const { executionArn, done } = await run({ urgent: true, node: 'node-a' });

    expect(done).toMatchObject({ status: 'FAILED', error: 'Urgent', cause: 'urgent events are not handled here' });
    const events = await h.history(executionArn);
    expect(events.slice(-2).map((e) => e.type)).toEqual(['FailStateEntered', 'ExecutionFailed']);
    expect(events.at(-1)?.executionFailedEventDetails).toEqual({
      error: 'Urgent',
      cause: 'urgent events are not handled here',
    });
    expect(stateEnteredCount(events)).toBe(3);
  });

  test('pages with maxResults/nextToken and reverses with reverseOrder', async () => {
    const { executionArn } = await run({ urgent: false, node: 'n' });

    const pages: HistoryEvent[][] = [];
    for await (const page of paginateGetExecutionHistory({ client: h.client, pageSize: 5 }, { executionArn })) {
      pages.push(page.events ?? []);
    }
    const reversed = await h.client.send(new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 3 }));

    expect(pages.map((p) => p.length)).toEqual([5, 5, 5, 3]);
    expect(reversed.events!.map((e) => e.type)).toEqual(['ExecutionSucceeded', 'SucceedStateExited', 'SucceedStateEntered']);
    expect(reversed.nextToken).toBeDefined();
  });

  test('nested Parallel states appear after their Parallel entry, with Task events after their own entry', async () => {
    const definition = JSON.stringify({
      StartAt: 'Both',
      States: {
        Both: {
          Type: 'Parallel',
          Branches: [
            {
              StartAt: 'Left',
              States: {
                Left: { Type: 'Task', Resource: 'arn:aws:states:::lambda:invoke', Parameters: { FunctionName: 'left' }, End: true },
              },
            },
            { StartAt: 'Right', States: { Right: { Type: 'Pass', End: true } } },
          ],
          End: true,
        },
      },
    });
    const { stateMachineArn } = await h.engine.createStateMachine({ name: 'parallel', definition });
    const { executionArn } = h.engine.startExecution({ stateMachineArn });
    await eventually('the execution to succeed', () => h.engine.describeExecution({ executionArn }).status === 'SUCCEEDED');

    const types = h.engine.getExecutionHistory({ executionArn }).events.map((e) => e.type);

    expect(types.indexOf('ParallelStateEntered')).toBe(1);
    expect(types.indexOf('TaskScheduled')).toBeGreaterThan(types.indexOf('TaskStateEntered'));
    expect(types.indexOf('TaskStateExited')).toBeGreaterThan(types.indexOf('TaskSucceeded'));
    expect(types.at(-2)).toBe('ParallelStateExited');
    expect(types.filter((t) => t.endsWith('StateEntered'))).toHaveLength(3);
  });
});

describe('Map states', () => {
  test('run their iterator per item with the Lambda overrides and log one iteration event per item', async () => {
    const definition = JSON.stringify({
      StartAt: 'EachXpu',
      States: {
        EachXpu: {
          Type: 'Map',
          ItemsPath: '$.xpus',
          ItemProcessor: {
            StartAt: 'Check',
            States: {
              Check: {
                Type: 'Task',
                Resource: 'arn:aws:states:::lambda:invoke',
                Parameters: { FunctionName: 'check', 'Payload.$': '$' },
                OutputPath: '$.Payload',
                End: true,
              },
            },
          },
          End: true,
        },
      },
    });
    const { stateMachineArn } = h.engine.createStateMachine({ name: 'map', definition });
    const { executionArn } = h.engine.startExecution({ stateMachineArn, input: '{"xpus":["dpu0","dpu1","dpu2"]}' });
    await eventually('the execution to succeed', () => h.engine.describeExecution({ executionArn }).status === 'SUCCEEDED');

    const types = h.engine.getExecutionHistory({ executionArn }).events.map((e) => e.type);

    expect(JSON.parse(h.engine.describeExecution({ executionArn }).output!)).toHaveLength(3);
    expect(
      h
        .callsTo('check')
        .map((c) => c.payload)
        .sort(),
    ).toEqual(['dpu0', 'dpu1', 'dpu2']);
    expect(types.filter((t) => t === 'MapIterationStarted')).toHaveLength(3);
    expect(types.filter((t) => t === 'MapIterationSucceeded')).toHaveLength(3);
    expect(types.filter((t) => t === 'TaskStateEntered')).toHaveLength(3);
    expect(types.filter((t) => t === 'TaskSucceeded')).toHaveLength(3);
  });
});

describe('StartExecution idempotency', () => {
  test('the same name and input while running returns the running execution', async () => {
    const callback = await h.createMachine('approval', 'callback.asl.json', { ApproverFunction: 'approver' });
    const start = () => h.client.send(new StartExecutionCommand({ stateMachineArn: callback, name: 'reboot-1', input: '{"request":"x"}' }));

    const first = await start();
    const second = await start();

    expect(second.executionArn).toBe(first.executionArn);
    expect(second.startDate).toEqual(first.startDate);
    const listed = await h.client.send(new ListExecutionsCommand({ stateMachineArn: callback }));
    expect(listed.executions).toHaveLength(1);
    expect(h.callsTo('approver')).toHaveLength(1);
  });

  test('the same name with other input, or after the first ended, is ExecutionAlreadyExists', async () => {
    const callback = await h.createMachine('approval', 'callback.asl.json', { ApproverFunction: 'approver' });
    const start = (input: string) => h.client.send(new StartExecutionCommand({ stateMachineArn: callback, name: 'reboot-2', input }));
    const { executionArn } = await start('{"request":"x"}');

    await expect(start('{"request":"y"}')).rejects.toMatchObject({ name: 'ExecutionAlreadyExists' });

    const token = (await eventually('a call to approver', () => h.callsTo('approver')[0])).payload.taskToken;
    await h.client.send(new SendTaskSuccessCommand({ taskToken: token, output: '{}' }));
    await h.settled(executionArn!);
    await expect(start('{"request":"x"}')).rejects.toMatchObject({ name: 'ExecutionAlreadyExists' });
  });

  test('unknown machines and executions, and input that is not JSON, are refused with AWS error names', async () => {
    const missing = machineArn.replace(':small', ':nope');

    await expect(h.client.send(new StartExecutionCommand({ stateMachineArn: missing }))).rejects.toMatchObject({
      name: 'StateMachineDoesNotExist',
    });
    await expect(h.client.send(new StartExecutionCommand({ stateMachineArn: machineArn, input: '{nope' }))).rejects.toMatchObject({
      name: 'InvalidExecutionInput',
    });
    await expect(
      h.client.send(new GetExecutionHistoryCommand({ executionArn: machineArn.replace('stateMachine', 'execution') + ':x' })),
    ).rejects.toMatchObject({ name: 'ExecutionDoesNotExist' });
  });
});

describe('machines and listings', () => {
  test('ListExecutions filters by status; machines can be described, listed and updated', async () => {
    await run({ urgent: false, node: 'a' }, 'ok-1');
    await run({ urgent: true, node: 'b' }, 'failed-1');

    const failed = await h.client.send(new ListExecutionsCommand({ stateMachineArn: machineArn, statusFilter: 'FAILED' }));
    const machines = await h.client.send(new ListStateMachinesCommand({}));
    const updated = fixture('small.asl.json').replaceAll('Classify', 'Sort');
    await h.client.send(new UpdateStateMachineCommand({ stateMachineArn: machineArn, definition: updated }));
    const described = await h.client.send(new DescribeStateMachineCommand({ stateMachineArn: machineArn }));

    expect(failed.executions!.map((e) => e.name)).toEqual(['failed-1']);
    expect(machines.stateMachines!.map((m) => m.name)).toEqual(['small']);
    expect(described).toMatchObject({ name: 'small', status: 'ACTIVE', type: 'STANDARD' });
    expect(JSON.parse(described.definition!).StartAt).toBe('Sort');
  });
});
