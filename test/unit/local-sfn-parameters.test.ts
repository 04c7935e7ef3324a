// The engine evaluates plain-path Parameters of top-level Tasks itself; what the Lambda gets and how a bad path fails
// must be what the package's own evaluation gives (nested Tasks and intrinsic functions still go through it).
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { compileDefinition } from '../../local/sfn/definition.ts';
import { startHarness, type Harness } from './fixtures/sfn/harness.ts';

const FN = 'arn:aws:lambda:us-east-1:000000000000:function:f';
const PAYLOAD = {
  'id.$': '$.id',
  'obj.$': '$.obj',
  'second.$': '$.list[1]',
  'nul.$': '$.nothing',
  'falsy.$': '$.zero',
  'whole.$': '$',
  'exec.$': '$$.Execution.Id',
  'machine.$': '$$.StateMachine.Name',
  'inputId.$': '$$.Execution.Input.id',
  const: { a: [1, { b: 'c' }], s: '$.not-a-path' },
  arr: [{ 'x.$': '$.obj.k' }, 2, 'three'],
};
const task = (extra: object = {}) => ({
  Type: 'Task',
  Resource: 'arn:aws:states:::lambda:invoke',
  Parameters: { FunctionName: FN, Payload: { ...PAYLOAD, ...extra } },
  ResultPath: null,
});

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(() => h.close());

async function runDefinition(name: string, definition: object, input: object) {
  const arn = h.engine.createStateMachine({ name, definition: JSON.stringify(definition) }).stateMachineArn;
  const { executionArn } = h.engine.startExecution({ stateMachineArn: arn, name: `${name}-run`, input: JSON.stringify(input) });
  return h.settled(executionArn);
}

describe('Parameters of top-level Tasks', () => {
  test('the Lambda gets the same payload from the engine (top level) as from the package (in a Parallel branch)', async () => {
    const definition = {
      StartAt: 'Top',
      States: {
        Top: { ...task(), Next: 'P' },
        P: {
          Type: 'Parallel',
          Branches: [{ StartAt: 'Nested', States: { Nested: { ...task(), End: true } } }],
          ResultPath: null,
          End: true,
        },
      },
    };
    const compiled = compileDefinition(JSON.stringify(definition), { validate: false });
    expect(compiled.tasks.get('Top')?.parameters).toBeTypeOf('function');
    expect(compiled.tasks.get('Nested')?.parameters).toBeUndefined();
    expect(compiled.runnable.States.Top).not.toHaveProperty('Parameters');

    const input = { id: 'r-1', obj: { k: 'v' }, list: ['a', { b: 2 }], nothing: null, zero: 0 };
    const done = await runDefinition('same', definition, input);
    expect(done.status).toBe('SUCCEEDED');
    const [top, nested] = h.callsTo(FN).map((c) => c.payload);
    expect(top).toEqual(nested);
    expect(top).toMatchObject({ id: 'r-1', second: { b: 2 }, nul: null, falsy: 0, whole: input, inputId: 'r-1', machine: 'same' });
    expect(top.exec).toMatch(/:execution:same:same-run$/);
  });

  test('a path that selects nothing fails the execution as the package does: States.Runtime, not caught', async () => {
    const failing = (extra: object) => ({
      StartAt: 'T',
      States: {
        T: { ...task({ 'missing.$': '$.missing', ...extra }), Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }], End: true },
        Caught: { Type: 'Pass', End: true },
      },
    });
    // An intrinsic function anywhere in the template leaves all of it to the package.
    const viaPackage = failing({ 'fmt.$': "States.Format('{}', $.id)" });
    expect(compileDefinition(JSON.stringify(viaPackage), { validate: false }).tasks.get('T')?.parameters).toBeUndefined();
    const input = { id: 'r-1', obj: { k: 'v' }, list: [0, 1], zero: 0 };
    const ours = await runDefinition('ours', failing({}), input);
    const theirs = await runDefinition('theirs', viaPackage, input);
    expect(ours.status).toBe('FAILED');
    expect({ error: ours.error, cause: ours.cause }).toEqual({ error: theirs.error, cause: theirs.cause });
    expect(ours.error).toBe('States.Runtime');
    expect(h.calls).toHaveLength(0);
  });
});

describe('$$.State.RetryCount', () => {
  test('is 0 on a state’s first attempt, counts its retries, and starts again at 0 when the state is entered again', async () => {
    h.close();
    let failures = 2;
    h = await startHarness({
      lambdas: {
        [FN]: () => {
          if (failures-- > 0) throw Object.assign(new Error('flaky'), { name: 'Flaky' });
          return {};
        },
      },
    });
    const t = {
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      Parameters: { FunctionName: FN, Payload: { 'retry.$': '$$.State.RetryCount', 'state.$': '$$.State.Name' } },
      Retry: [{ ErrorEquals: ['States.ALL'], IntervalSeconds: 1, MaxAttempts: 3 }],
      ResultPath: null,
    };
    const definition = { StartAt: 'A', States: { A: { ...t, Next: 'B' }, B: { ...t, End: true } } };
    const compiled = compileDefinition(JSON.stringify(definition), { validate: true });
    expect(compiled.tasks.get('A')?.parameters).toBeTypeOf('function');
    const done = await runDefinition('retries', definition, {});
    expect(done.status).toBe('SUCCEEDED');
    expect(h.callsTo(FN).map((c) => [c.payload.state, c.payload.retry])).toEqual([
      ['A', 0],
      ['A', 1],
      ['A', 2],
      ['B', 0],
    ]);
  });
});
