// Issue 14: after a restart, events queued during the downtime win over timers that ran out meanwhile, and the
// coordinator's downtime never counts against a host's heartbeat.
import { afterEach, describe, expect, test } from 'vitest';
import { HoldingClock, ManualClock } from '../../local/sfn/clock.ts';
import { LocalStepFunctions } from '../../local/sfn/engine.ts';
import { eventually, fixture, tempDir, type LambdaCall } from './fixtures/sfn/harness.ts';

const T0 = Date.parse('2030-06-01T00:00:00Z');
const engines: LocalStepFunctions[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.close();
});

function newEngine(dataDir: string, clock: ManualClock | HoldingClock, calls: LambdaCall[]) {
  const engine = new LocalStepFunctions({
    dataDir,
    clock,
    invokeLambda: async (fn, payload) => {
      calls.push({ fn, payload });
      return { done: fn };
    },
  });
  engines.push(engine);
  return engine;
}

/** An execution parked on a callback with a 600 s deadline and a 60 s heartbeat, then the coordinator dies. */
async function parkedThenKilled() {
  const dataDir = tempDir();
  const calls: LambdaCall[] = [];
  const clock1 = new ManualClock(T0);
  const e1 = newEngine(dataDir, clock1, calls);
  const { stateMachineArn } = e1.createStateMachine({ name: 'timeouts', definition: fixture('timeouts.asl.json') });
  const { executionArn } = e1.startExecution({ stateMachineArn, input: JSON.stringify({ timeoutSeconds: 600, heartbeatSeconds: 60 }) });
  const token = (await eventually('a call to notify-host', () => calls.find((c) => c.fn === 'notify-host'))).payload.taskToken as string;
  await clock1.advance(30_000); // the host was silent 30 s while the coordinator was up
  return { dataDir, calls, executionArn, token, diedAt: clock1.now() };
}

const outcome = (e: LocalStepFunctions, executionArn: string) => {
  const d = e.describeExecution({ executionArn });
  return d.status === 'RUNNING' ? undefined : (JSON.parse(d.output ?? 'null')?.outcome ?? d.status);
};

describe('restart without blame', () => {
  test('an answer queued before the deadline wins over the deadline that ran out during the downtime', async () => {
    const { dataDir, calls, executionArn, token, diedAt } = await parkedThenKilled();
    // Down for 20 minutes: the 600 s deadline and the heartbeat both ran out meanwhile.
    const manual = new ManualClock(diedAt + 20 * 60_000);
    const clock = new HoldingClock(manual);
    const e2 = newEngine(dataDir, clock, calls);
    await e2.recover();
    await manual.advance(1_000);
    expect(outcome(e2, executionArn)).toBeUndefined(); // held: nothing fired yet
    // The queued answer (accepted before the deadline) is processed, then the stack lets time run.
    e2.sendTaskSuccess({ taskToken: token, output: JSON.stringify({ ok: true }) });
    clock.open();
    await manual.advance(1_000);
    await eventually('the resumed execution to end', () => e2.describeExecution({ executionArn }).status !== 'RUNNING');
    expect(e2.describeExecution({ executionArn }).status).toBe('SUCCEEDED');
    expect(outcome(e2, executionArn)).toBe('SUCCEEDED');
  });

  test('with nothing queued, the deadline that ran out fires once time runs', async () => {
    const { dataDir, calls, executionArn, diedAt } = await parkedThenKilled();
    const manual = new ManualClock(diedAt + 20 * 60_000);
    const clock = new HoldingClock(manual);
    const e2 = newEngine(dataDir, clock, calls);
    await e2.recover();
    clock.open();
    await manual.advance(1);
    expect(await eventually('the outcome of the resumed execution', () => outcome(e2, executionArn))).toBe('timeout');
  });

  test('a downtime longer than the heartbeat does not make the host silent: it gets a whole window from the restart', async () => {
    const { dataDir, calls, executionArn, diedAt } = await parkedThenKilled();
    // Down 5 minutes (heartbeat 60 s, deadline 600 s still ahead).
    const manual = new ManualClock(diedAt + 5 * 60_000);
    const clock = new HoldingClock(manual);
    const e2 = newEngine(dataDir, clock, calls);
    await e2.recover();
    clock.open();
    await manual.advance(59_000);
    expect(outcome(e2, executionArn)).toBeUndefined();
    // Silent for a whole heartbeat while the coordinator is up: now it is the host's silence.
    await manual.advance(1_000);
    expect(await eventually('the outcome of the resumed execution', () => outcome(e2, executionArn))).toBe('heartbeat');
  });
});
