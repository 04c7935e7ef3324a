// What the local engine refuses at CreateStateMachine, placeholder substitution, and the Clock it runs on.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { CreateStateMachineCommand } from '@aws-sdk/client-sfn';
import { ManualClock, systemClock } from '../../local/sfn/clock.ts';
import { LocalStepFunctions } from '../../local/sfn/engine.ts';
import { substitute } from '../../local/sfn/substitute.ts';
import { ROLE_ARN, startHarness, tempDir } from './fixtures/sfn/harness.ts';

const INVOKE = 'arn:aws:states:::lambda:invoke';
const CALLBACK = 'arn:aws:states:::lambda:invoke.waitForTaskToken';
const task = (extra: object = {}) => ({ Type: 'Task', Resource: INVOKE, Parameters: { FunctionName: 'f' }, End: true, ...extra });
const callback = { Type: 'Task', Resource: CALLBACK, Parameters: { FunctionName: 'f', Payload: { 't.$': '$$.Task.Token' } }, End: true };

function engine() {
  return new LocalStepFunctions({ dataDir: tempDir(), clock: new ManualClock(), invokeLambda: async () => null });
}

function create(definition: object) {
  return engine().createStateMachine({ name: 'm', definition: JSON.stringify(definition) });
}

describe('CreateStateMachine refuses what would not run faithfully', () => {
  test('JSONata, anywhere in the definition', () => {
    expect(() => create({ QueryLanguage: 'JSONata', StartAt: 'A', States: { A: { Type: 'Pass', End: true } } })).toThrow(
      expect.objectContaining({ name: 'InvalidDefinition', message: expect.stringContaining('JSONata') }),
    );
    expect(() => create({ StartAt: 'A', States: { A: { Type: 'Pass', QueryLanguage: 'JSONata', Output: '{% 1 %}', End: true } } })).toThrow(
      expect.objectContaining({ name: 'InvalidDefinition' }),
    );
  });

  test('a Wait state inside a Parallel branch', () => {
    const def = {
      StartAt: 'P',
      States: {
        P: { Type: 'Parallel', Branches: [{ StartAt: 'W', States: { W: { Type: 'Wait', Seconds: 1, End: true } } }], End: true },
      },
    };
    expect(() => create(def)).toThrow(
      expect.objectContaining({ name: 'InvalidDefinition', message: expect.stringContaining("Wait state 'W' is inside P.Branches[0]") }),
    );
  });

  test('a callback Task inside a Map iterator', () => {
    const def = {
      StartAt: 'M',
      States: { M: { Type: 'Map', ItemProcessor: { StartAt: 'C', States: { C: callback } }, End: true } },
    };
    expect(() => create(def)).toThrow(expect.objectContaining({ name: 'InvalidDefinition', message: expect.stringContaining("'C'") }));
  });

  test('a Task whose Resource has no local handler', () => {
    const def = {
      StartAt: 'Put',
      States: { Put: { Type: 'Task', Resource: 'arn:aws:states:::dynamodb:putItem', Parameters: {}, End: true } },
    };
    expect(() => create(def)).toThrow(
      expect.objectContaining({ name: 'InvalidDefinition', message: expect.stringContaining('dynamodb:putItem') }),
    );
  });

  test('a callback Task that never hands out its token', () => {
    const def = { StartAt: 'C', States: { C: { ...callback, Parameters: { FunctionName: 'f' } } } };
    expect(() => create(def)).toThrow(
      expect.objectContaining({ name: 'InvalidDefinition', message: expect.stringContaining('$$.Task.Token') }),
    );
  });

  test('what asl-validator finds: a Next to a state that does not exist', () => {
    const def = { StartAt: 'A', States: { A: { Type: 'Pass', Next: 'Missing' } } };
    expect(() => create(def)).toThrow(expect.objectContaining({ name: 'InvalidDefinition' }));
  });

  test('text that is not JSON, answered as InvalidDefinition over the wire', async () => {
    const h = await startHarness({ clock: new ManualClock() });
    try {
      await expect(
        h.client.send(new CreateStateMachineCommand({ name: 'broken', definition: '{"StartAt":', roleArn: ROLE_ARN })),
      ).rejects.toMatchObject({ name: 'InvalidDefinition' });
    } finally {
      await h.close();
    }
  });

  test('accepts Lambda ARNs, lambda:invoke and top-level Waits and callbacks; same name again is an update', () => {
    const e = engine();
    const def = {
      StartAt: 'A',
      States: {
        A: { ...task(), End: undefined, Next: 'W' },
        W: { Type: 'Wait', SecondsPath: '$.s', Next: 'C' },
        C: { ...callback, End: undefined, Next: 'L' },
        L: { Type: 'Task', Resource: 'arn:aws:lambda:eu-west-1:123456789012:function:do-it:live', End: true },
      },
    };
    const first = e.createStateMachine({ name: 'm', definition: JSON.stringify(def) });
    const again = e.createStateMachine({ name: 'm', definition: JSON.stringify({ ...def, Comment: 'v2' }) });
    expect(again.stateMachineArn).toBe(first.stateMachineArn);
    expect(JSON.parse(e.describeStateMachine({ stateMachineArn: first.stateMachineArn }).definition).Comment).toBe('v2');
  });

  test("the project's workflows pass these checks", () => {
    const dir = join(import.meta.dirname, '../../workflows');
    const files = readdirSync(dir).filter((f) => f.endsWith('.asl.json'));
    const e = engine();
    for (const file of files) {
      const text = readFileSync(join(dir, file), 'utf8');
      const names = [...text.matchAll(/\$\{([^{}]*)\}/g)].map((m) => m[1]);
      const subs = Object.fromEntries(names.map((n) => [n, `arn:aws:lambda:us-east-1:000000000000:function:${n}`]));
      expect(() => e.createStateMachine({ name: file.split('.')[0], definition: substitute(text, subs) }), file).not.toThrow();
    }
  });
});

describe('substitute', () => {
  test('replaces every ${Name} textually and leaves JSONPath alone', () => {
    const text = '{"Resource":"${Fn}","Parameters":{"FunctionName":"${Fn}","x.$":"$.a","T":"${Table}"}}';
    expect(substitute(text, { Fn: 'arn:f', Table: 't1', Unused: 'u' })).toBe(
      '{"Resource":"arn:f","Parameters":{"FunctionName":"arn:f","x.$":"$.a","T":"t1"}}',
    );
  });

  test('names every placeholder without a value', () => {
    expect(() => substitute('"${A}" "${B}" "${C}"', { B: 'b' })).toThrow(
      expect.objectContaining({ name: 'MissingSubstitution', message: 'no substitution for ${A}, ${C}' }),
    );
  });
});

describe('Clock', () => {
  afterEach(() => vi.useRealTimers());

  test('ManualClock fires timers in time order and only when advanced that far', async () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    clock.setTimer(300, () => fired.push('c'));
    clock.setTimer(100, () => {
      fired.push('a');
      clock.setTimer(150, () => fired.push('a2'));
    });
    const cancel = clock.setTimer(200, () => fired.push('cancelled'));
    cancel();

    await clock.advance(250);
    expect(fired).toEqual(['a', 'a2']);
    expect(clock.now()).toBe(250);
    await clock.advanceTo(300);
    expect(fired).toEqual(['a', 'a2', 'c']);
    expect(clock.pending()).toBe(0);
  });

  test('systemClock re-arms delays beyond 2^31-1 ms instead of firing early', () => {
    vi.useFakeTimers({ now: 0 });
    const fired = vi.fn();
    systemClock.setTimer(30 * 86400_000, fired);

    vi.advanceTimersByTime(2 ** 31);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(30 * 86400_000 - 2 ** 31 - 1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });
});
