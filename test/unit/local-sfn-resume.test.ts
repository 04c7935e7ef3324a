// Resume after a crash: a new engine on the same data dir goes on from the journal, in-process and after a real kill -9.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, test } from 'vitest';
import { DescribeExecutionCommand, ListStateMachinesCommand, SendTaskSuccessCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { ManualClock } from '../../local/sfn/clock.ts';
import { LocalStepFunctions, type HistoryEvent } from '../../local/sfn/engine.ts';
import { allHistory, eventually, fixture, fixturePath, sdkClient, tempDir, type LambdaCall } from './fixtures/sfn/harness.ts';

const T0 = Date.parse('2030-06-01T00:00:00Z');
const engines: LocalStepFunctions[] = [];
afterEach(async () => {
  // Crashed engines are closed only now, after the test; close() writes nothing to the journal.
  for (const e of engines.splice(0)) await e.close();
});

function newEngine(dataDir: string, clock: ManualClock, calls: LambdaCall[], lambdas: Record<string, (p: any) => unknown> = {}) {
  const engine = new LocalStepFunctions({
    dataDir,
    clock,
    invokeLambda: async (fn, payload) => {
      calls.push({ fn, payload });
      return lambdas[fn] ? lambdas[fn](payload) : { done: fn };
    },
  });
  engines.push(engine);
  return engine;
}

const count = (calls: LambdaCall[], fn: string) => calls.filter((c) => c.fn === fn).length;
const entered = (events: HistoryEvent[]) =>
  events.filter((e) => e.type.endsWith('StateEntered')).map((e) => (e.stateEnteredEventDetails as { name: string }).name);

describe('resume in-process (an engine dropped without close)', () => {
  test('a crash in a Wait keeps its deadline; a crash while parked keeps the token and does not call the Lambda again', async () => {
    const dataDir = tempDir();
    const calls: LambdaCall[] = [];
    const clock1 = new ManualClock(T0);
    const e1 = newEngine(dataDir, clock1, calls);
    const { stateMachineArn } = e1.createStateMachine({ name: 'resume', definition: fixture('resume.asl.json') });
    const { executionArn } = e1.startExecution({
      stateMachineArn,
      name: 'reboot-1',
      input: JSON.stringify({ node: 'node-a', pauseSeconds: 600 }),
    });
    await clock1.advance(100_000); // in Pause, 500 s to go

    const clock2 = new ManualClock(clock1.now());
    const e2 = newEngine(dataDir, clock2, calls);
    expect(await e2.recover()).toEqual([executionArn]);
    await clock2.advance(499_999);
    expect(count(calls, 'send-command')).toBe(0);
    await clock2.advance(1);
    const token = (await eventually('a call to send-command', () => calls.find((c) => c.fn === 'send-command'))).payload.taskToken;

    const clock3 = new ManualClock(clock2.now() + 60_000);
    const e3 = newEngine(dataDir, clock3, calls);
    await e3.recover();
    e3.sendTaskSuccess({ taskToken: token, output: JSON.stringify({ agent: 'ok' }) });

    await eventually(
      'the execution to succeed after the second restart',
      () => e3.describeExecution({ executionArn }).status === 'SUCCEEDED',
    );
    expect([count(calls, 'prepare'), count(calls, 'send-command'), count(calls, 'record')]).toEqual([1, 1, 1]);
    const events = e3.getExecutionHistory({ executionArn, maxResults: 1000 }).events;
    expect(entered(events)).toEqual(['Prepare', 'Pause', 'AwaitAgent', 'Record']);
    expect(events.find((e) => e.type === 'WaitStateExited')?.timestamp.getTime()).toBe(T0 + 600_000);
    expect(events.filter((e) => e.type === 'TaskSubmitted')).toHaveLength(1);
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    expect(JSON.parse(e3.describeExecution({ executionArn }).output!).agent).toEqual({ agent: 'ok' });
  });

  test('a parked callback keeps its original absolute timeout across the restart', async () => {
    const dataDir = tempDir();
    const calls: LambdaCall[] = [];
    const clock1 = new ManualClock(T0);
    const e1 = newEngine(dataDir, clock1, calls);
    const { stateMachineArn } = e1.createStateMachine({ name: 'resume', definition: fixture('resume.asl.json') });
    const { executionArn } = e1.startExecution({ stateMachineArn, input: '{"node":"n","pauseSeconds":0}' });
    await eventually('one call to send-command', () => count(calls, 'send-command') === 1); // parked at T0, TimeoutSeconds 3600
    await clock1.advance(1000_000);

    const clock2 = new ManualClock(clock1.now());
    const e2 = newEngine(dataDir, clock2, calls);
    await e2.recover();
    await clock2.advance(2599_999);
    expect(e2.describeExecution({ executionArn }).status).toBe('RUNNING');
    await clock2.advance(1);

    const done = e2.describeExecution({ executionArn });
    expect(done).toMatchObject({ status: 'FAILED', error: 'States.Timeout' });
    expect(done.stopDate!.getTime()).toBe(T0 + 3600_000);
    expect(count(calls, 'send-command')).toBe(1);
  });

  test('a SendTaskSuccess journalled just before the crash is applied on resume, once', async () => {
    const dataDir = tempDir();
    const calls: LambdaCall[] = [];
    const e1 = newEngine(dataDir, new ManualClock(T0), calls);
    const { stateMachineArn } = e1.createStateMachine({ name: 'resume', definition: fixture('resume.asl.json') });
    const { executionArn } = e1.startExecution({ stateMachineArn, input: '{"node":"n","pauseSeconds":0}' });
    const token = (await eventually('a call to send-command', () => calls.find((c) => c.fn === 'send-command'))).payload.taskToken;

    e1.sendTaskSuccess({ taskToken: token, output: '{"agent":"answered"}' });
    void e1.close(); // synchronously, before the run goes on: it dies with only the result in the journal

    const e2 = newEngine(dataDir, new ManualClock(T0 + 5000), calls);
    await e2.recover();
    await eventually('the resumed execution to succeed', () => e2.describeExecution({ executionArn }).status === 'SUCCEEDED');
    const events = e2.getExecutionHistory({ executionArn, maxResults: 1000 }).events;
    expect(events.filter((e) => e.type === 'TaskSucceeded' && JSON.stringify(e).includes('answered'))).toHaveLength(1);
    expect([count(calls, 'send-command'), count(calls, 'record')]).toEqual([1, 1]);
  });

  test('a crash before the callback Lambda returned invokes it again with the same token', async () => {
    const dataDir = tempDir();
    const calls: LambdaCall[] = [];
    const e1 = newEngine(dataDir, new ManualClock(T0), calls, { 'send-command': () => new Promise(() => {}) });
    const { stateMachineArn } = e1.createStateMachine({ name: 'resume', definition: fixture('resume.asl.json') });
    const { executionArn } = e1.startExecution({ stateMachineArn, input: '{"node":"n","pauseSeconds":0}' });
    const token = (await eventually('a call to send-command', () => calls.find((c) => c.fn === 'send-command'))).payload.taskToken;

    const e2 = newEngine(dataDir, new ManualClock(T0 + 5000), calls);
    await e2.recover();
    const again = await eventually('a second call to send-command', () => calls.filter((c) => c.fn === 'send-command')[1]);
    e2.sendTaskSuccess({ taskToken: token, output: '{}' });

    expect(again.payload).toEqual({ taskToken: token, node: 'n' });
    await eventually('the resumed execution to succeed', () => e2.describeExecution({ executionArn }).status === 'SUCCEEDED');
  });

  test('finished executions stay describable after a restart, from the index', async () => {
    const dataDir = tempDir();
    const calls: LambdaCall[] = [];
    const e1 = newEngine(dataDir, new ManualClock(T0), calls);
    const { stateMachineArn } = e1.createStateMachine({ name: 'resume', definition: fixture('resume.asl.json') });
    const { executionArn } = e1.startExecution({ stateMachineArn, input: '{"node":"n","pauseSeconds":0}' });
    const token = (await eventually('a call to send-command', () => calls.find((c) => c.fn === 'send-command'))).payload.taskToken;
    e1.sendTaskSuccess({ taskToken: token, output: '{}' });
    await eventually('the execution to succeed', () => e1.describeExecution({ executionArn }).status === 'SUCCEEDED');
    await e1.close();

    const e2 = newEngine(dataDir, new ManualClock(T0 + 5000), calls);

    expect(await e2.recover()).toEqual([]);
    expect(e2.describeExecution({ executionArn })).toMatchObject({ status: 'SUCCEEDED', input: '{"node":"n","pauseSeconds":0}' });
    expect(e2.listExecutions({ stateMachineArn }).executions).toHaveLength(1);
    expect(e2.getExecutionHistory({ executionArn }).events.at(-1)?.type).toBe('ExecutionSucceeded');
  });
});

// ---- a real kill -9 of a server process

interface Child {
  proc: ChildProcess;
  url: string;
}

async function spawnServer(dataDir: string, effects: string): Promise<Child> {
  const proc = spawn(process.execPath, [fixturePath('child-server.ts'), dataDir, effects], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const lines = createInterface({ input: proc.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      try {
        resolve(JSON.parse(line).ready);
      } catch {
        // not the ready line
      }
    });
    proc.once('exit', (code) => reject(new Error(`server exited (${code}): ${stderr}`)));
  });
  return { proc, url };
}

async function kill9(child: Child): Promise<void> {
  const exited = new Promise((r) => child.proc.once('exit', r));
  child.proc.kill('SIGKILL');
  await exited;
}

function sideEffects(file: string): LambdaCall[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

const children: Child[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.proc.kill('SIGKILL');
});

describe('resume after kill -9 of the server process', () => {
  test('goes on from the Wait at its deadline and completes with the old token; each Lambda ran once', async () => {
    const dataDir = tempDir();
    const effects = join(tempDir(), 'effects.jsonl');
    let child = await spawnServer(dataDir, effects);
    children.push(child);
    let client = sdkClient(child.url);
    const { executionArn } = await client.send(
      new StartExecutionCommand({
        stateMachineArn: (await client.send(new ListStateMachinesCommand({}))).stateMachines![0].stateMachineArn,
        name: 'killed',
        input: JSON.stringify({ node: 'node-a', pauseSeconds: 2 }),
      }),
    );
    const pauseEntered = await eventually('the Pause state to be entered', async () =>
      (await allHistory(client, executionArn!)).find((e) => e.type === 'WaitStateEntered'),
    );
    await new Promise((r) => setTimeout(r, 300));
    client.destroy();
    await kill9(child); // 0.3 s into a 2 s wait

    child = await spawnServer(dataDir, effects);
    const readyAt = Date.now();
    children.push(child);
    const command = await eventually('a send-command side effect', () => sideEffects(effects).find((c) => c.fn === 'send-command'), 10_000);
    client = sdkClient(child.url);
    const exited = (await allHistory(client, executionArn!)).find((e) => e.type === 'WaitStateExited')!;
    const deadline = pauseEntered.timestamp!.getTime() + 2000;
    // Not before its deadline; and at its deadline (or, if the restart took longer than the wait, at
    // once on resume), not 2 s after the resume as a wait started over would. How long the restart
    // took does not matter: readyAt is measured, not assumed. The 1 s is a timer's latency under load.
    expect(exited.timestamp!.getTime()).toBeGreaterThanOrEqual(deadline - 5);
    expect(exited.timestamp!.getTime()).toBeLessThanOrEqual(Math.max(deadline, readyAt) + 1000);
    client.destroy();
    await kill9(child); // parked in AwaitAgent

    child = await spawnServer(dataDir, effects);
    children.push(child);
    client = sdkClient(child.url);
    await client.send(new SendTaskSuccessCommand({ taskToken: command.payload.taskToken, output: '{"agent":"done"}' }));
    const done = await eventually('the execution to end', async () => {
      const d = await client.send(new DescribeExecutionCommand({ executionArn }));
      return d.status !== 'RUNNING' ? d : undefined;
    });

    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!).agent).toEqual({ agent: 'done' });
    const fns = sideEffects(effects).map((c) => c.fn);
    expect(['prepare', 'send-command', 'record'].map((fn) => fns.filter((f) => f === fn).length)).toEqual([1, 1, 1]);
    expect(entered((await allHistory(client, executionArn!)) as HistoryEvent[])).toEqual(['Prepare', 'Pause', 'AwaitAgent', 'Record']);
    client.destroy();
  });
});
