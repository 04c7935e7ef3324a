// Checks an ASL definition against what the local engine can run faithfully, and rewrites it for the package.
import { createHash } from 'node:crypto';
import { StateMachine } from 'aws-local-stepfunctions';
import { InvalidDefinition } from './errors.ts';
import { compilePath } from './paths.ts';

export const LAMBDA_INVOKE = 'arn:aws:states:::lambda:invoke';
export const LAMBDA_CALLBACK = 'arn:aws:states:::lambda:invoke.waitForTaskToken';
const LAMBDA_ARN = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$/;
// Never reached by a real resource: marks a Wait state turned into a Task served by the engine's own scheduler.
const LOCAL_WAIT = 'arn:aws:states:::local:wait';

// The package races every Task against its own setTimeout, defaulting to 60 s and overflowing above 24.8 days;
// the engine enforces the real timeouts on its Clock, so the package only gets this harmless ceiling.
export const PACKAGE_TASK_TIMEOUT_CEILING_S = 2_000_000;

export type TaskKind = 'invoke' | 'callback' | 'lambdaArn' | 'wait';

export interface TaskMeta {
  name: string;
  kind: TaskKind;
  topLevel: boolean;
  resource: string;
  timeoutSeconds?: number;
  timeoutSecondsPath?: string;
  heartbeatSeconds?: number;
  heartbeatSecondsPath?: string;
  /** Top-level Tasks whose Parameters use only reference paths: evaluated by the engine instead of the package. */
  parameters?: Template;
  // Wait states only
  seconds?: number;
  secondsPath?: string;
  timestamp?: string;
  timestampPath?: string;
}

export interface Retrier {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  MaxAttempts?: number;
  BackoffRate?: number;
  MaxDelaySeconds?: number;
  JitterStrategy?: 'NONE' | 'FULL';
}

type Json = Record<string, unknown>;
export interface AslDefinition {
  StartAt: string;
  States: Record<string, Json>;
  TimeoutSeconds?: number;
  [k: string]: unknown;
}

export interface CompiledDefinition {
  hash: string;
  text: string;
  /** What the package runs: Waits turned into Tasks, timeouts and heartbeats removed. */
  runnable: AslDefinition;
  /** The machine-wide TimeoutSeconds, enforced by the engine on its Clock. */
  timeoutSeconds?: number;
  /** Original Type of each top-level state (rewritten Waits report 'Task' from the package). */
  topLevelTypes: ReadonlyMap<string, string>;
  /** Every Task (and rewritten Wait) at any depth, by state name; ASL state names are unique per machine. */
  tasks: ReadonlyMap<string, TaskMeta>;
  /** Top-level Tasks with Retry: their backoff runs on the engine's Clock instead of the package's setTimeout. */
  retriers: ReadonlyMap<string, Retrier[]>;
}

export function definitionHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

function fail(message: string): never {
  throw new InvalidDefinition(message);
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function findQueryLanguage(node: unknown, where: string): void {
  if (Array.isArray(node)) {
    for (const [i, v] of node.entries()) findQueryLanguage(v, `${where}[${i}]`);
  } else if (isObject(node)) {
    for (const [k, v] of Object.entries(node)) {
      // The package silently ignores JSONata (a JSONata Pass just passes its input), so it must never get here.
      if (k === 'QueryLanguage' && v !== 'JSONPath') {
        fail(`QueryLanguage ${JSON.stringify(v)} at ${where}: only JSONPath runs locally`);
      }
      findQueryLanguage(v, `${where}.${k}`);
    }
  }
}

function mentionsTaskToken(node: unknown): boolean {
  if (typeof node === 'string') return node.includes('$$.Task.Token');
  if (Array.isArray(node)) return node.some(mentionsTaskToken);
  if (isObject(node)) return Object.values(node).some(mentionsTaskToken);
  return false;
}

function taskKind(name: string, state: Json): TaskKind {
  const resource = state.Resource;
  if (resource === LAMBDA_INVOKE || resource === LAMBDA_CALLBACK) {
    const params = state.Parameters;
    if (!isObject(params) || !('FunctionName' in params || 'FunctionName.$' in params)) {
      fail(`Task '${name}': ${resource} needs Parameters.FunctionName`);
    }
    if (resource === LAMBDA_CALLBACK && !mentionsTaskToken(params)) {
      fail(`Task '${name}': a .waitForTaskToken Task must pass $$.Task.Token in its Parameters`);
    }
    return resource === LAMBDA_INVOKE ? 'invoke' : 'callback';
  }
  if (typeof resource === 'string' && LAMBDA_ARN.test(resource)) return 'lambdaArn';
  return fail(
    `Task '${name}': Resource ${JSON.stringify(resource)} has no local handler; ` +
      `use ${LAMBDA_INVOKE}, ${LAMBDA_CALLBACK} or a Lambda function ARN`,
  );
}

function numberField(state: Json, key: string): number | undefined {
  const v = state[key];
  return typeof v === 'number' ? v : undefined;
}
function stringField(state: Json, key: string): string | undefined {
  const v = state[key];
  return typeof v === 'string' ? v : undefined;
}

interface Walk {
  tasks: Map<string, TaskMeta>;
  names: Set<string>;
}

function walkStates(states: unknown, topLevel: boolean, where: string, acc: Walk): void {
  if (!isObject(states)) fail(`${where}: States must be an object`);
  for (const [name, state] of Object.entries(states)) {
    if (!isObject(state)) fail(`${where}.${name}: a state must be an object`);
    if (acc.names.has(name)) fail(`state name '${name}' is used twice; names must be unique in the machine`);
    acc.names.add(name);
    const type = state.Type;
    if (type === 'Wait' && !topLevel) {
      // A resume restarts from the last top-level state, so a wait inside a branch would start over.
      fail(`Wait state '${name}' is inside ${where}: Wait states must be in the top-level States`);
    }
    if (type === 'Task') {
      const kind = taskKind(name, state);
      if (kind === 'callback' && !topLevel) {
        fail(`.waitForTaskToken Task '${name}' is inside ${where}: callback Tasks must be in the top-level States`);
      }
      acc.tasks.set(name, {
        name,
        kind,
        topLevel,
        resource: state.Resource as string,
        timeoutSeconds: numberField(state, 'TimeoutSeconds'),
        timeoutSecondsPath: stringField(state, 'TimeoutSecondsPath'),
        heartbeatSeconds: numberField(state, 'HeartbeatSeconds'),
        heartbeatSecondsPath: stringField(state, 'HeartbeatSecondsPath'),
        // Nested Tasks keep the package's evaluation: their context has $$.Map, which the engine does not build.
        parameters: topLevel && 'Parameters' in state ? compileTemplate(state.Parameters) : undefined,
      });
    }
    if (type === 'Wait') {
      acc.tasks.set(name, {
        name,
        kind: 'wait',
        topLevel: true,
        resource: LOCAL_WAIT,
        seconds: numberField(state, 'Seconds'),
        secondsPath: stringField(state, 'SecondsPath'),
        timestamp: stringField(state, 'Timestamp'),
        timestampPath: stringField(state, 'TimestampPath'),
      });
    }
    if (type === 'Parallel') {
      const branches = state.Branches;
      if (!Array.isArray(branches)) fail(`Parallel '${name}': Branches must be an array`);
      for (const [i, b] of branches.entries()) walkStates(isObject(b) ? b.States : undefined, false, `${name}.Branches[${i}]`, acc);
    }
    if (type === 'Map') {
      const processor = state.ItemProcessor ?? state.Iterator;
      walkStates(isObject(processor) ? processor.States : undefined, false, `${name}.ItemProcessor`, acc);
    }
  }
}

/** The local engine's own rules, on top of ASL validity. Throws InvalidDefinition. */
export function checkDefinition(def: unknown): { tasks: Map<string, TaskMeta> } {
  if (!isObject(def)) fail('the definition must be a JSON object');
  if (typeof def.StartAt !== 'string') fail('StartAt must be a string');
  findQueryLanguage(def, '$');
  const acc: Walk = { tasks: new Map(), names: new Set() };
  walkStates(def.States, true, 'States', acc);
  return { tasks: acc.tasks };
}

export function parseDefinitionText(text: string): AslDefinition {
  let def: unknown;
  try {
    def = JSON.parse(text);
  } catch (err) {
    fail(`the definition is not valid JSON: ${(err as Error).message}`);
  }
  return def as AslDefinition;
}

/** A Parameters (payload template) evaluator: the state's effective input and the context object → the Task's input. */
export type Template = (input: unknown, context: unknown) => unknown;

/** Thrown by a compiled template when a path selects nothing (the package's StatesRuntimeError says the same). */
export class PathMatchFailure extends Error {
  override readonly name = 'States.Runtime';
}

/**
 * Compiles a payload template whose `.$` fields are all reference paths ($.a.b, $$.Task.Token) into a function;
 * undefined when it has intrinsic functions or anything else only the package evaluates. The package runs every
 * path through jsonpath-plus, which throws and catches an Error per scalar result: ~0.1 ms per Task on the start
 * of every workflow.
 */
// Paths read the same by jsonpath-plus and by a walk over their steps: plain names and indexes, nothing else.
const PLAIN_PATH = /^\$\$?(\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*$/;

export function compileTemplate(node: unknown): Template | undefined {
  if (Array.isArray(node)) {
    const items = node.map(compileTemplate);
    if (items.some((t) => !t)) return undefined;
    return (input, context) => items.map((t) => t!(input, context));
  }
  if (!isObject(node)) return () => node;
  const fields: [string, Template][] = [];
  for (const [key, value] of Object.entries(node)) {
    if (key.endsWith('.$')) {
      // The package renames with replace('.$', ''): the first '.$', which is the suffix only when there is one.
      if (typeof value !== 'string' || key.indexOf('.$') !== key.length - 2 || !PLAIN_PATH.test(value)) return undefined;
      const read = compilePath(value);
      fields.push([
        key.slice(0, -2),
        (input, context) => {
          const v = read(input, context);
          if (v === undefined) throw new PathMatchFailure(`Path expression '${value}' does not point to a value`);
          return v;
        },
      ]);
    } else {
      const t = compileTemplate(value);
      if (!t) return undefined;
      fields.push([key, t]);
    }
  }
  return (input, context) => {
    const out: Record<string, unknown> = {};
    for (const [k, t] of fields) out[k] = t(input, context);
    return out;
  };
}

function rewriteState(name: string, state: Json, tasks: ReadonlyMap<string, TaskMeta>): Json {
  const meta = tasks.get(name);
  if (meta?.kind === 'wait') {
    const task: Json = { Type: 'Task', Resource: LOCAL_WAIT, TimeoutSeconds: PACKAGE_TASK_TIMEOUT_CEILING_S };
    for (const k of ['Comment', 'InputPath', 'OutputPath', 'Next', 'End']) if (k in state) task[k] = state[k];
    return task;
  }
  if (meta) {
    const task: Json = { ...state, TimeoutSeconds: PACKAGE_TASK_TIMEOUT_CEILING_S };
    delete task.TimeoutSecondsPath;
    delete task.HeartbeatSeconds;
    delete task.HeartbeatSecondsPath;
    if (meta.parameters) delete task.Parameters;
    return task;
  }
  if (state.Type === 'Parallel') {
    const branches = (state.Branches as Json[]).map((b) => ({ ...b, States: rewriteStates(b.States as Json, tasks) }));
    return { ...state, Branches: branches };
  }
  if (state.Type === 'Map') {
    const key = 'ItemProcessor' in state ? 'ItemProcessor' : 'Iterator';
    const processor = state[key] as Json;
    return { ...state, [key]: { ...processor, States: rewriteStates(processor.States as Json, tasks) } };
  }
  return state;
}

function rewriteStates(states: Json, tasks: ReadonlyMap<string, TaskMeta>): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [name, state] of Object.entries(states)) out[name] = rewriteState(name, state as Json, tasks);
  return out;
}

/**
 * Parses, checks and rewrites a definition. `validate` runs asl-validator (about 50 ms), so callers do it once
 * per definition version and never per execution.
 */
export function compileDefinition(text: string, opts: { validate: boolean }): CompiledDefinition {
  const def = parseDefinitionText(text);
  const { tasks } = checkDefinition(def);
  if (opts.validate) {
    try {
      new StateMachine(def as never, { validationOptions: { checkArn: true, checkPaths: true } });
    } catch (err) {
      fail((err as Error).message);
    }
  }
  const topLevelTypes = new Map<string, string>();
  const retriers = new Map<string, Retrier[]>();
  for (const [name, state] of Object.entries(def.States)) {
    topLevelTypes.set(name, String(state.Type));
    if (state.Type === 'Task' && Array.isArray(state.Retry)) retriers.set(name, state.Retry as Retrier[]);
  }
  const runnable: AslDefinition = { ...def, States: rewriteStates(def.States, tasks) };
  // The machine-wide timeout is the engine's (on its Clock, surviving restarts); the package's would overflow.
  delete runnable.TimeoutSeconds;
  return {
    hash: definitionHash(text),
    text,
    runnable,
    timeoutSeconds: typeof def.TimeoutSeconds === 'number' ? def.TimeoutSeconds : undefined,
    topLevelTypes,
    tasks,
    retriers,
  };
}
