// Issue 14: a torn journal tail is cut at open, so the next record is not glued to it and lost; a journal torn at
// its start record does not leave an execution RUNNING for ever.
import { appendFileSync, readdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ManualClock } from '../../local/sfn/clock.ts';
import { LocalStepFunctions } from '../../local/sfn/engine.ts';
import { repairTail, SPARE_FILES } from '../../local/sfn/journal.ts';
import { eventually, fixture, tempDir, type LambdaCall } from './fixtures/sfn/harness.ts';

const T0 = Date.parse('2030-06-01T00:00:00Z');
const engines: LocalStepFunctions[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.close();
});

function newEngine(dataDir: string, calls: LambdaCall[] = []) {
  const engine = new LocalStepFunctions({
    dataDir,
    clock: new ManualClock(T0),
    invokeLambda: async (fn, payload) => {
      calls.push({ fn, payload });
      return { done: fn };
    },
  });
  engines.push(engine);
  return engine;
}

const journalOf = (dataDir: string, name: string) => join(dataDir, 'executions', 'timeouts', `${name}.jsonl`);

describe('torn journal tails', () => {
  test('repairTail cuts only an unterminated last line', () => {
    const file = join(tempDir(), 'x.jsonl');
    writeFileSync(file, '{"a":1}\n{"b":2}\n');
    expect(repairTail(file)).toBe(false);
    appendFileSync(file, '{"c":');
    expect(repairTail(file)).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe('{"a":1}\n{"b":2}\n');
  });

  test('a record appended after a torn tail survives the next load', async () => {
    const dataDir = tempDir();
    const calls: LambdaCall[] = [];
    const e1 = newEngine(dataDir, calls);
    const { stateMachineArn } = e1.createStateMachine({ name: 'timeouts', definition: fixture('timeouts.asl.json') });
    const { executionArn } = e1.startExecution({
      stateMachineArn,
      name: 'torn-tail',
      input: JSON.stringify({ timeoutSeconds: 600, heartbeatSeconds: 300 }),
    });
    const token = (await eventually('a call to notify-host', () => calls.find((c) => c.fn === 'notify-host'))).payload.taskToken as string;
    // Killed in the middle of an append.
    appendFileSync(journalOf(dataDir, 'torn-tail'), '{"t":"ev","id":99,"ts":1,"ty');
    appendFileSync(join(dataDir, 'index.jsonl'), '{"k":"s","a":"arn:aws:states:us-ea');

    const e2 = newEngine(dataDir, calls);
    await e2.recover();
    e2.sendTaskSuccess({ taskToken: token, output: JSON.stringify({ ok: true }) });
    await eventually('the resumed execution to succeed', () => e2.describeExecution({ executionArn }).status === 'SUCCEEDED');
    const other = e2.startExecution({
      stateMachineArn,
      name: 'after-torn-index',
      input: JSON.stringify({ timeoutSeconds: 600 }),
    }).executionArn;

    // Without the repair, the end record would be glued to the torn line, and this load would see RUNNING.
    const e3 = newEngine(dataDir, calls);
    expect(e3.describeExecution({ executionArn }).status).toBe('SUCCEEDED');
    expect(e3.describeExecution({ executionArn: other }).status).toBe('RUNNING');
    expect(readFileSync(journalOf(dataDir, 'torn-tail'), 'utf8').endsWith('\n')).toBe(true);
  });

  test('an execution whose start record was torn ends FAILED at recovery instead of staying RUNNING', async () => {
    const dataDir = tempDir();
    const e1 = newEngine(dataDir);
    const { stateMachineArn } = e1.createStateMachine({ name: 'timeouts', definition: fixture('timeouts.asl.json') });
    const { executionArn } = e1.startExecution({ stateMachineArn, name: 'torn-start', input: JSON.stringify({ timeoutSeconds: 600 }) });
    // Power loss: the index line reached the disk, the journal's start record only in part.
    const file = journalOf(dataDir, 'torn-start');
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 40));

    const e2 = newEngine(dataDir);
    await e2.recover();
    const d = e2.describeExecution({ executionArn });
    expect(d.status).toBe('FAILED');
    expect(d.cause).toMatch(/no start record/);
    expect(newEngine(dataDir).describeExecution({ executionArn }).status).toBe('FAILED');
  });
});

// Journals are spare empty files made ahead off the event loop, renamed into place, then written (journal.ts createJournal).
describe('spare journal files', () => {
  const spares = (dataDir: string) => readdirSync(join(dataDir, 'spare')).filter((f) => f.endsWith('.spare'));

  test('executions take spare files, which are made again; every journal holds its start record', async () => {
    const dataDir = tempDir();
    const e1 = newEngine(dataDir);
    const { stateMachineArn } = e1.createStateMachine({ name: 'timeouts', definition: fixture('timeouts.asl.json') });
    e1.startExecution({ stateMachineArn, name: 'first', input: JSON.stringify({ timeoutSeconds: 600 }) });
    // All of them: below the cap one may be in the making on the thread pool while the starts below count.
    await eventually('spare files made', () => spares(dataDir).length >= SPARE_FILES);
    const before = spares(dataDir).length;
    for (let i = 0; i < 10; i++) e1.startExecution({ stateMachineArn, name: `s-${i}`, input: JSON.stringify({ timeoutSeconds: 600 }) });
    expect(spares(dataDir).length).toBe(before - 10);
    for (let i = 0; i < 10; i++) expect(JSON.parse(readFileSync(journalOf(dataDir, `s-${i}`), 'utf8').split('\n')[0]).name).toBe(`s-${i}`);
    // A later process takes the spares this one left.
    await e1.close();
    const left = spares(dataDir).length;
    const e2 = newEngine(dataDir);
    e2.startExecution({ stateMachineArn, name: 'second', input: JSON.stringify({ timeoutSeconds: 600 }) });
    expect(spares(dataDir).length).toBe(left - 1);
    expect(e2.describeExecution({ executionArn: arnOf(stateMachineArn, 's-3') }).status).toBe('RUNNING');
  });

  test('killed after the rename, before the start record: the empty journal is skipped, and the retried start writes it', async () => {
    const dataDir = tempDir();
    const e1 = newEngine(dataDir);
    const { stateMachineArn } = e1.createStateMachine({ name: 'timeouts', definition: fixture('timeouts.asl.json') });
    e1.startExecution({ stateMachineArn, name: 'warm', input: JSON.stringify({ timeoutSeconds: 600 }) });
    await eventually('spare files made', () => spares(dataDir).length > 0);
    // What a kill -9 between renameSync and writeFileSync leaves: an empty journal, no index line.
    renameSync(join(dataDir, 'spare', spares(dataDir)[0]), journalOf(dataDir, 'cut'));

    const e2 = newEngine(dataDir);
    await e2.recover();
    const arn = arnOf(stateMachineArn, 'cut');
    expect(() => e2.describeExecution({ executionArn: arn })).toThrow(/ExecutionDoesNotExist|does not exist/);
    e2.startExecution({ stateMachineArn, name: 'cut', input: JSON.stringify({ timeoutSeconds: 600 }) });
    expect(newEngine(dataDir).describeExecution({ executionArn: arn }).status).toBe('RUNNING');
    expect(JSON.parse(readFileSync(journalOf(dataDir, 'cut'), 'utf8').split('\n')[0]).t).toBe('start');
  });
});

describe('journals kept open', () => {
  const openIn = (dataDir: string) =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith(join(dataDir, 'executions'));
      } catch {
        return false;
      }
    }).length;

  test('more executions than descriptors kept: every record reaches its journal, and at most 128 stay open', async () => {
    const dataDir = tempDir();
    const calls: LambdaCall[] = [];
    const e1 = newEngine(dataDir, calls);
    const { stateMachineArn } = e1.createStateMachine({ name: 'timeouts', definition: fixture('timeouts.asl.json') });
    const N = 150;
    for (let i = 0; i < N; i++)
      e1.startExecution({ stateMachineArn, name: `o-${i}`, input: JSON.stringify({ timeoutSeconds: 600, heartbeatSeconds: 300 }) });
    await eventually('every execution parked', () => calls.filter((c) => c.fn === 'notify-host').length === N);
    expect(openIn(dataDir)).toBe(128); // the most recent, kept open for their next record
    // Oldest first: their journals were closed to make room, and are opened again.
    for (const c of calls) e1.sendTaskSuccess({ taskToken: c.payload.taskToken as string, output: JSON.stringify({ ok: true }) });
    await eventually('every execution succeeded', () =>
      Array.from({ length: N }, (_, i) => e1.describeExecution({ executionArn: arnOf(stateMachineArn, `o-${i}`) }).status).every(
        (st) => st === 'SUCCEEDED',
      ),
    );
    // Ended executions close their journals.
    expect(openIn(dataDir)).toBe(0);
    // A new process reads every journal back whole.
    const e2 = newEngine(dataDir);
    for (let i = 0; i < N; i += 37) {
      const arn = arnOf(stateMachineArn, `o-${i}`);
      expect(e2.describeExecution({ executionArn: arn }).status).toBe('SUCCEEDED');
      const types = e2.getExecutionHistory({ executionArn: arn, maxResults: 1000 }).events.map((e) => e.type);
      expect(types[0]).toBe('ExecutionStarted');
      expect(types.at(-1)).toBe('ExecutionSucceeded');
    }
  });
});

const arnOf = (machineArn: string, name: string) => `${machineArn.replace(':stateMachine:', ':execution:')}:${name}`;
