// In-process Step Functions service: runs the project's ASL on aws-local-stepfunctions with callbacks, Clock-driven time and resume after a crash.
import { randomUUID } from 'node:crypto';
import { StateMachine } from 'aws-local-stepfunctions';
import { systemClock, type Clock } from './clock.ts';
import { compileDefinition, definitionHash, type CompiledDefinition, type Retrier, type TaskMeta } from './definition.ts';
import {
  EngineClosed,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  InvalidArn,
  InvalidExecutionInput,
  InvalidName,
  InvalidOutput,
  InvalidToken,
  StateMachineDoesNotExist,
  TaskTimedOut,
  ValidationException,
  statesError,
} from './errors.ts';
import {
  JournalStore,
  type EndRecord,
  type EnteredRecord,
  type EventRecord,
  type ExecutionStatus,
  type IndexEntry,
  type JournalRecord,
  type MachineRecord,
  type StartRecord,
  type TokenRecord,
} from './journal.ts';
import { readPath } from './paths.ts';

export type InvokeLambda = (functionName: string, payload: unknown) => Promise<unknown>;
export type { ExecutionStatus } from './journal.ts';

export interface LocalStepFunctionsOptions {
  dataDir: string;
  clock?: Clock;
  invokeLambda: InvokeLambda;
  region?: string;
  accountId?: string;
}

export interface HistoryEvent {
  id: number;
  previousEventId: number;
  timestamp: Date;
  type: string;
  [details: string]: unknown;
}

export interface DescribeExecutionOutput {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: ExecutionStatus;
  startDate: Date;
  stopDate?: Date;
  input?: string;
  output?: string;
  error?: string;
  cause?: string;
}

export interface ExecutionListItem {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: ExecutionStatus;
  startDate: Date;
  stopDate?: Date;
}

// ---------------------------------------------------------------------------------------------------------------
// Package seams. aws-local-stepfunctions is pinned to 3.0.0; these are the only internals the engine relies on.

interface PackageStateData {
  name: string;
  type: string;
  input: unknown;
  output?: unknown;
}
interface PackageEvent {
  type: string;
  timestamp: number;
  state?: PackageStateData;
  index?: number;
  parentState?: PackageStateData;
  retry?: { retrier: Retrier; attempt: number };
}
interface PackageRun {
  abort: () => void;
  result: Promise<unknown>;
}
interface PackageEventLogger {
  isLoggerClosed: boolean;
  dispatch: (ev: PackageEvent) => void;
}
interface PackageExecuteOptions {
  eventLogger: PackageEventLogger;
  runOptions?: { context?: Record<string | symbol, unknown> };
}
type ExecuteFn = (input: unknown, options: PackageExecuteOptions, cleanup: () => void) => Promise<unknown>;

const packageExecute = (StateMachine.prototype as unknown as { execute?: ExecuteFn }).execute;
if (typeof packageExecute !== 'function') {
  throw new Error('aws-local-stepfunctions changed: StateMachine.prototype.execute is gone (the engine needs 3.0.0)');
}

const RUN = Symbol('local-sfn-run');
const PackageBase = StateMachine as unknown as new (
  definition: unknown,
  options: unknown,
) => {
  run(input: unknown, options: unknown): PackageRun;
};

/**
 * The package reports events only through an async generator, which lags behind the Task overrides it calls
 * synchronously; the journal needs `entered` before `token`. Replacing the run's logger dispatch gives every
 * event synchronously, in the order the package produces them, and nothing is queued for a reader that never comes.
 */
class HookedStateMachine extends PackageBase {
  execute(input: unknown, options: PackageExecuteOptions, cleanup: () => void): Promise<unknown> {
    const run = options.runOptions?.context?.[RUN] as Run;
    const logger = options.eventLogger;
    logger.dispatch = (ev: PackageEvent) => {
      if (!logger.isLoggerClosed) run.onEvent(ev);
    };
    return packageExecute!.call(this, input, options, cleanup);
  }
}

/**
 * `States.TaskFailed` must not match `States.Timeout`; the package checks that with `instanceof` on a class it does
 * not export, so the engine captures that class once from a 1 ms package timeout at load.
 */
async function captureStatesTimeoutClass(): Promise<(new () => Error) | undefined> {
  const probe = new PackageBase(
    { StartAt: 'T', States: { T: { Type: 'Task', Resource: 'probe', TimeoutSeconds: 1e-9, End: true } } },
    { validationOptions: { noValidate: true } },
  ).run(null, { overrides: { taskResourceLocalHandlers: { T: () => new Promise(() => {}) } } });
  try {
    await probe.result;
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof Error && cause.name === 'States.Timeout') return cause.constructor as new () => Error;
  }
  return undefined;
}
const StatesTimeoutError = await captureStatesTimeoutClass();

function timeoutError(cause: string): Error {
  const err = StatesTimeoutError ? new StatesTimeoutError() : statesError('States.Timeout', cause);
  err.message = cause;
  return err;
}

// ---------------------------------------------------------------------------------------------------------------

const TOKEN_PREFIX = 'lsfn1.';
const TOKEN_SHAPE = /^lsfn1\.[A-Za-z0-9_-]+\.[0-9a-f]{32}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: AWS refuses execution names with control characters, and so does this engine.
const NAME_SHAPE = /^[^\s<>{}[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]{1,80}$/;
const PACKAGE_FAIL_DEFAULT_CAUSE = 'Execution failed because of a Fail state';
const TERMINAL_TASK_EVENTS = new Set([
  'TaskSucceeded',
  'TaskFailed',
  'TaskTimedOut',
  'LambdaFunctionSucceeded',
  'LambdaFunctionFailed',
  'LambdaFunctionTimedOut',
]);

interface Machine extends MachineRecord {
  definition: string;
}

interface Execution {
  arn: string;
  name: string;
  machineName: string;
  machineArn: string;
  roleArn?: string;
  hash: string;
  file: string;
  startDate: number;
  status: ExecutionStatus;
  stopDate?: number;
  /** Undefined for executions known only from the index until someone asks. */
  input?: string;
  output?: string;
  error?: string;
  cause?: string;
  /** History while the execution runs in this process; finished ones are read back from the journal. */
  history?: (StartRecord | EnteredRecord | EventRecord)[];
  nextId: number;
  run?: Run;
}

/** A callback Task waiting for SendTaskSuccess/SendTaskFailure, its timeout or its heartbeat timeout. */
interface Parked {
  token: string;
  run: Run;
  meta: TaskMeta;
  call: number;
  timeoutAt?: number;
  heartbeatAt?: number;
  heartbeatMs?: number;
  cancelTimeout?: () => void;
  cancelHeartbeat?: () => void;
  settled: boolean;
  promise: Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** True when the outcome's history event is already in the journal (a resume replaying a journalled result). */
  silent?: boolean;
  /** Resume only: the callback Lambda never confirmed its invocation before the crash, so call it again. */
  reinvoke?: boolean;
  cleanup?: () => void;
}

interface ResumePoint {
  state: string;
  enteredAt: number;
  enteredSkipped: boolean;
  parked?: Parked;
  parkedUsed?: boolean;
  journalledResult?: { ok: boolean; output?: string; error?: string; cause?: string };
  waitUntil?: number;
}

/** One run of the package for an execution: the first, or one per resume. */
interface Run {
  exec: Execution;
  compiled: CompiledDefinition;
  dead: boolean;
  abort?: () => void;
  onEvent: (ev: PackageEvent) => void;
  resume?: ResumePoint;
  minted: Set<string>;
  current?: { state: string; input: unknown; enteredAt: number };
  retryDelayMs: number;
  /** $$.State.RetryCount: retries of the current top-level state since it was entered. */
  retryCount?: number;
  markers: Map<string, number>;
  calls: Map<string, number>;
  deferred: Map<string, { call: number; emit: () => void }[]>;
  cleanups: Set<() => void>;
  tokens: Set<string>;
  cancelExecutionTimeout?: () => void;
  /** The context object as the engine's own Parameters evaluation sees it (TaskMeta.parameters). */
  context?: Record<string, unknown>;
}

function b64url(s: string): string {
  return Buffer.from(s).toString('base64url');
}

function errorParts(err: unknown): { name: string; message: string } {
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}

function jsonClone(v: unknown): unknown {
  return v === undefined ? null : JSON.parse(JSON.stringify(v));
}

function findToken(node: unknown, minted: Set<string>): string | undefined {
  if (typeof node === 'string') return minted.has(node) ? node : undefined;
  if (Array.isArray(node)) {
    for (const v of node) {
      const t = findToken(v, minted);
      if (t) return t;
    }
  } else if (node && typeof node === 'object') {
    for (const v of Object.values(node)) {
      const t = findToken(v, minted);
      if (t) return t;
    }
  }
  return undefined;
}

function replaceString(node: unknown, from: string, to: string): unknown {
  if (node === from) return to;
  if (Array.isArray(node)) return node.map((v) => replaceString(v, from, to));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, replaceString(v, from, to)]));
  }
  return node;
}

function positiveInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

function retryDelayMs(retrier: Retrier, attempt: number): number {
  const base = (retrier.IntervalSeconds ?? 1) * (retrier.BackoffRate ?? 2) ** (attempt - 1);
  const capped = retrier.MaxDelaySeconds !== undefined ? Math.min(base, retrier.MaxDelaySeconds) : base;
  const ms = capped * 1000;
  return retrier.JitterStrategy === 'FULL' ? Math.floor(Math.random() * (ms + 1)) : ms;
}

function paginate<T>(items: T[], maxResults: number | undefined, nextToken: string | undefined) {
  const limit = maxResults && maxResults > 0 ? Math.min(maxResults, 1000) : 100;
  let offset = 0;
  if (nextToken) {
    offset = Number(Buffer.from(nextToken, 'base64url').toString());
    if (!Number.isInteger(offset) || offset < 0) throw new ValidationException('invalid nextToken');
  }
  const page = items.slice(offset, offset + limit);
  const next = offset + limit < items.length ? Buffer.from(String(offset + limit)).toString('base64url') : undefined;
  return { page, next };
}

export class LocalStepFunctions {
  private readonly store: JournalStore;
  private readonly clock: Clock;
  private readonly invokeLambda: InvokeLambda;
  private readonly region: string;
  private readonly accountId: string;
  private readonly machines = new Map<string, Machine>(); // by ARN
  private readonly compiled = new Map<string, CompiledDefinition>(); // by definition hash
  private readonly packageMachines = new Map<string, HookedStateMachine>(); // by hash + StartAt
  private readonly executions = new Map<string, Execution>(); // by ARN
  private readonly tokens = new Map<string, Parked>();
  private closed = false;

  constructor(opts: LocalStepFunctionsOptions) {
    this.store = new JournalStore(opts.dataDir);
    this.clock = opts.clock ?? systemClock;
    this.invokeLambda = opts.invokeLambda;
    this.region = opts.region ?? 'us-east-1';
    this.accountId = opts.accountId ?? '000000000000';
    for (const rec of this.store.loadMachines()) {
      this.machines.set(rec.arn, { ...rec, definition: '' });
    }
    for (const e of this.store.loadIndex().values()) this.executions.set(e.arn, this.fromIndex(e));
  }

  // ---- state machines

  createStateMachine(params: { name: string; definition: string; roleArn?: string }): {
    stateMachineArn: string;
    creationDate: Date;
  } {
    this.assertOpen();
    if (typeof params.name !== 'string' || !NAME_SHAPE.test(params.name)) {
      throw new InvalidName(`invalid state machine name ${JSON.stringify(params.name)}`);
    }
    const arn = `arn:aws:states:${this.region}:${this.accountId}:stateMachine:${params.name}`;
    const existing = this.machines.get(arn);
    // The same definition again (every stack start): it was validated when it was stored, and asl-validator
    // costs 0.3–1 s per definition, the largest part of a restart.
    if (
      typeof params.definition === 'string' &&
      existing &&
      existing.hash === definitionHash(params.definition) &&
      existing.roleArn === params.roleArn
    )
      return { stateMachineArn: arn, creationDate: new Date(existing.creationDate) };
    const compiled = this.compile(params.definition);
    if (existing && existing.hash === compiled.hash && existing.roleArn === params.roleArn) {
      return { stateMachineArn: arn, creationDate: new Date(existing.creationDate) };
    }
    const now = this.clock.now();
    const rec: MachineRecord = {
      name: params.name,
      arn,
      hash: compiled.hash,
      roleArn: params.roleArn,
      creationDate: existing?.creationDate ?? now,
      updateDate: now,
    };
    this.store.saveMachine(rec, params.definition);
    this.machines.set(arn, { ...rec, definition: params.definition });
    return { stateMachineArn: arn, creationDate: new Date(rec.creationDate) };
  }

  updateStateMachine(params: { stateMachineArn: string; definition?: string; roleArn?: string }): {
    updateDate: Date;
  } {
    const machine = this.machine(params.stateMachineArn);
    const definition = params.definition ?? this.definitionOf(machine);
    this.createStateMachine({ name: machine.name, definition, roleArn: params.roleArn ?? machine.roleArn });
    return { updateDate: new Date(this.machine(params.stateMachineArn).updateDate) };
  }

  describeStateMachine(params: { stateMachineArn: string }) {
    const m = this.machine(params.stateMachineArn);
    return {
      stateMachineArn: m.arn,
      name: m.name,
      status: 'ACTIVE' as const,
      definition: this.definitionOf(m),
      roleArn: m.roleArn ?? `arn:aws:iam::${this.accountId}:role/local-sfn`,
      type: 'STANDARD' as const,
      creationDate: new Date(m.creationDate),
    };
  }

  listStateMachines(params: { maxResults?: number; nextToken?: string } = {}) {
    const all = [...this.machines.values()].sort((a, b) => a.name.localeCompare(b.name));
    const { page, next } = paginate(all, params.maxResults, params.nextToken);
    return {
      stateMachines: page.map((m) => ({
        stateMachineArn: m.arn,
        name: m.name,
        type: 'STANDARD' as const,
        creationDate: new Date(m.creationDate),
      })),
      nextToken: next,
    };
  }

  // ---- executions

  startExecution(params: { stateMachineArn: string; name?: string; input?: string }): {
    executionArn: string;
    startDate: Date;
  } {
    this.assertOpen();
    const machine = this.machine(params.stateMachineArn);
    const name = params.name ?? randomUUID();
    if (!NAME_SHAPE.test(name)) throw new InvalidName(`invalid execution name ${JSON.stringify(name)}`);
    const input = params.input ?? '{}';
    let parsed: unknown;
    try {
      parsed = JSON.parse(input);
    } catch (err) {
      throw new InvalidExecutionInput(`input is not valid JSON: ${(err as Error).message}`);
    }
    const arn = `arn:aws:states:${this.region}:${this.accountId}:execution:${machine.name}:${name}`;
    const existing = this.executions.get(arn);
    if (existing) {
      // AWS: the same name and input while the first is still running is the same request, not a new execution.
      if (existing.status === 'RUNNING' && this.loaded(existing).input === input) {
        return { executionArn: arn, startDate: new Date(existing.startDate) };
      }
      throw new ExecutionAlreadyExists(`execution ${arn} already exists`);
    }
    const compiled = this.compiledFor(machine.hash);
    const startDate = this.clock.now();
    const file = this.store.fileFor(machine.name, name);
    const start: StartRecord = {
      t: 'start',
      arn,
      machine: machine.name,
      machineArn: machine.arn,
      name,
      hash: machine.hash,
      input,
      startDate,
      roleArn: machine.roleArn,
    };
    this.store.createJournal(file, start);
    this.store.indexStart({ arn, machineArn: machine.arn, name, file, startDate, status: 'RUNNING' });
    const exec: Execution = {
      arn,
      name,
      machineName: machine.name,
      machineArn: machine.arn,
      roleArn: machine.roleArn,
      hash: machine.hash,
      file,
      startDate,
      status: 'RUNNING',
      input,
      history: [start],
      nextId: 2,
    };
    this.executions.set(arn, exec);
    this.launch(exec, compiled, compiled.runnable.StartAt, parsed);
    return { executionArn: arn, startDate: new Date(startDate) };
  }

  describeExecution(params: { executionArn: string }): DescribeExecutionOutput {
    const exec = this.loaded(this.execution(params.executionArn));
    return {
      executionArn: exec.arn,
      stateMachineArn: exec.machineArn,
      name: exec.name,
      status: exec.status,
      startDate: new Date(exec.startDate),
      stopDate: exec.stopDate !== undefined ? new Date(exec.stopDate) : undefined,
      input: exec.input,
      output: exec.output,
      error: exec.error,
      cause: exec.cause,
    };
  }

  stopExecution(params: { executionArn: string; error?: string; cause?: string }): { stopDate: Date } {
    this.assertOpen();
    const exec = this.execution(params.executionArn);
    if (exec.status === 'RUNNING') {
      this.endExecution(exec, 'ABORTED', { error: params.error, cause: params.cause });
    }
    return { stopDate: new Date(exec.stopDate ?? this.clock.now()) };
  }

  listExecutions(params: { stateMachineArn: string; statusFilter?: ExecutionStatus; maxResults?: number; nextToken?: string }): {
    executions: ExecutionListItem[];
    nextToken?: string;
  } {
    this.machine(params.stateMachineArn);
    const all = [...this.executions.values()]
      .filter((e) => e.machineArn === params.stateMachineArn)
      .filter((e) => !params.statusFilter || e.status === params.statusFilter)
      .sort((a, b) => b.startDate - a.startDate);
    const { page, next } = paginate(all, params.maxResults, params.nextToken);
    return {
      executions: page.map((e) => ({
        executionArn: e.arn,
        stateMachineArn: e.machineArn,
        name: e.name,
        status: e.status,
        startDate: new Date(e.startDate),
        stopDate: e.stopDate !== undefined ? new Date(e.stopDate) : undefined,
      })),
      nextToken: next,
    };
  }

  getExecutionHistory(params: { executionArn: string; reverseOrder?: boolean; maxResults?: number; nextToken?: string }): {
    events: HistoryEvent[];
    nextToken?: string;
  } {
    const exec = this.execution(params.executionArn);
    const records = exec.history ?? this.historyFromJournal(this.store.read(exec.file));
    const events = records.map(toHistoryEvent);
    if (params.reverseOrder) events.reverse();
    const { page, next } = paginate(events, params.maxResults, params.nextToken);
    return { events: page, nextToken: next };
  }

  // ---- callbacks

  sendTaskSuccess(params: { taskToken: string; output: string }): Record<string, never> {
    const parked = this.parked(params.taskToken);
    try {
      JSON.parse(params.output);
    } catch (err) {
      throw new InvalidOutput(`output is not valid JSON: ${(err as Error).message}`);
    }
    const exec = parked.run.exec;
    this.store.append(exec.file, { t: 'result', token: parked.token, ok: true, output: params.output });
    this.settleParked(parked, { ok: true, output: params.output });
    return {};
  }

  sendTaskFailure(params: { taskToken: string; error?: string; cause?: string }): Record<string, never> {
    const parked = this.parked(params.taskToken);
    const outcome = { ok: false, error: params.error ?? '', cause: params.cause ?? '' };
    this.store.append(parked.run.exec.file, { t: 'result', token: parked.token, ...outcome });
    this.settleParked(parked, outcome);
    return {};
  }

  sendTaskHeartbeat(params: { taskToken: string }): Record<string, never> {
    const parked = this.parked(params.taskToken);
    if (parked.heartbeatMs !== undefined) {
      parked.heartbeatAt = this.clock.now() + parked.heartbeatMs;
      this.store.append(parked.run.exec.file, { t: 'hb', token: parked.token, heartbeatAt: parked.heartbeatAt });
      this.armHeartbeat(parked);
    }
    return {};
  }

  // ---- lifecycle

  /**
   * Resumes every execution the journal shows as RUNNING but that no run of this process owns, from the last
   * top-level state it entered. Returns their ARNs.
   */
  async recover(): Promise<string[]> {
    this.assertOpen();
    const resumed: string[] = [];
    for (const exec of this.executions.values()) {
      if (exec.status !== 'RUNNING' || exec.run) continue;
      try {
        this.resume(exec);
        resumed.push(exec.arn);
      } catch (err) {
        // One unreadable journal or lost definition must not keep the rest of the stack from booting.
        this.endExecution(exec, 'FAILED', { error: 'States.Runtime', cause: `cannot resume: ${errorParts(err).message}` });
      }
    }
    return resumed;
  }

  /**
   * Stops every timer and run of this process without ending any execution: the journals still say RUNNING, so
   * the next process resumes them. Appends are synchronous, so there is nothing to flush.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const exec of this.executions.values()) {
      if (exec.run) this.killRun(exec.run);
    }
    this.tokens.clear();
    await this.store.close();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // internals: definitions

  private compile(text: string): CompiledDefinition {
    if (typeof text !== 'string') throw new ValidationException('definition must be a string');
    const hash = definitionHash(text);
    let c = this.compiled.get(hash);
    if (!c) {
      c = compileDefinition(text, { validate: true });
      this.compiled.set(hash, c);
    }
    return c;
  }

  /** Definitions already accepted once (now or before a restart) are not run through asl-validator again. */
  private compiledFor(hash: string): CompiledDefinition {
    let c = this.compiled.get(hash);
    if (!c) {
      c = compileDefinition(this.store.readDefinition(hash), { validate: false });
      this.compiled.set(hash, c);
    }
    return c;
  }

  private packageMachine(c: CompiledDefinition, startAt: string): HookedStateMachine {
    const key = `${c.hash}:${startAt}`;
    let sm = this.packageMachines.get(key);
    if (!sm) {
      sm = new HookedStateMachine({ ...c.runnable, StartAt: startAt }, { validationOptions: { noValidate: true } });
      this.packageMachines.set(key, sm);
    }
    return sm;
  }

  private definitionOf(m: Machine): string {
    if (!m.definition) m.definition = this.store.readDefinition(m.hash);
    return m.definition;
  }

  private machine(arn: string): Machine {
    if (typeof arn !== 'string' || !arn.startsWith('arn:')) throw new InvalidArn(`invalid ARN ${JSON.stringify(arn)}`);
    const m = this.machines.get(arn);
    if (!m) throw new StateMachineDoesNotExist(`state machine ${arn} does not exist`);
    return m;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // internals: executions

  private execution(arn: string): Execution {
    if (typeof arn !== 'string' || !arn.startsWith('arn:')) throw new InvalidArn(`invalid ARN ${JSON.stringify(arn)}`);
    const e = this.executions.get(arn);
    if (!e) throw new ExecutionDoesNotExist(`execution ${arn} does not exist`);
    return e;
  }

  private fromIndex(e: IndexEntry): Execution {
    const machineName = e.machineArn.split(':').pop() ?? '';
    return {
      arn: e.arn,
      name: e.name,
      machineName,
      machineArn: e.machineArn,
      hash: '',
      file: e.file,
      startDate: e.startDate,
      status: e.status,
      stopDate: e.stopDate,
      error: e.error,
      cause: e.cause,
      nextId: 0,
    };
  }

  /** Fills input/output of an execution known only from the index, from its journal. */
  private loaded(exec: Execution): Execution {
    if (exec.input !== undefined) return exec;
    const records = this.store.read(exec.file);
    const start = records.find((r): r is StartRecord => r.t === 'start');
    const end = records.find((r): r is EndRecord => r.t === 'end');
    exec.input = start?.input ?? '{}';
    exec.hash = start?.hash ?? exec.hash;
    exec.roleArn = start?.roleArn;
    if (end) exec.output = end.output;
    return exec;
  }

  private historyFromJournal(records: JournalRecord[]): (StartRecord | EnteredRecord | EventRecord)[] {
    return records.filter((r): r is StartRecord | EnteredRecord | EventRecord => r.t === 'start' || r.t === 'entered' || r.t === 'ev');
  }

  private emit(exec: Execution, type: string, details?: Record<string, unknown>): void {
    const rec: EventRecord = { t: 'ev', id: exec.nextId++, ts: this.clock.now(), type, d: details };
    exec.history?.push(rec);
    this.store.append(exec.file, rec);
  }

  private launch(exec: Execution, compiled: CompiledDefinition, startAt: string, input: unknown, resume?: ResumePoint) {
    const run: Run = {
      exec,
      compiled,
      dead: false,
      onEvent: (ev) => this.onPackageEvent(run, ev),
      resume,
      minted: new Set(),
      retryDelayMs: 0,
      markers: new Map(),
      calls: new Map(),
      deferred: new Map(),
      cleanups: new Set(),
      tokens: new Set(),
    };
    exec.run = run;
    if (resume?.parked) {
      resume.parked.run = run;
      this.registerParked(resume.parked);
      if (resume.journalledResult) this.settleParked(resume.parked, resume.journalledResult);
    }
    if (compiled.timeoutSeconds !== undefined) {
      // Absolute from the start, so a resumed execution keeps its original deadline.
      const at = exec.startDate + compiled.timeoutSeconds * 1000;
      run.cancelExecutionTimeout = this.clock.setTimer(at, () =>
        this.endExecution(exec, 'TIMED_OUT', {
          error: 'States.Timeout',
          cause: `execution exceeded TimeoutSeconds ${compiled.timeoutSeconds}`,
        }),
      );
    }
    const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
    for (const name of compiled.tasks.keys()) handlers[name] = (i) => this.onTask(run, name, i);
    const retryIntervalOverrides: Record<string, number> = {};
    for (const name of compiled.retriers.keys()) retryIntervalOverrides[name] = 0;
    const engine = this;
    const context = {
      Execution: {
        Id: exec.arn,
        Name: exec.name,
        RoleArn: exec.roleArn,
        StartTime: new Date(exec.startDate).toISOString(),
      },
      StateMachine: { Id: exec.machineArn, Name: exec.machineName },
      State: {
        get Name() {
          return run.current?.state;
        },
        get EnteredTime() {
          return run.current ? new Date(run.current.enteredAt).toISOString() : undefined;
        },
        get RetryCount() {
          return run.retryCount ?? 0;
        },
      },
      Task: {
        // The package spreads the context shallowly, so this getter runs each time Parameters are evaluated.
        get Token() {
          return engine.mintToken(run);
        },
      },
      [RUN]: run,
    };
    // The package adds Execution.Input to the context it evaluates with; so does the engine's evaluation.
    run.context = {
      ...context,
      Execution: {
        ...context.Execution,
        get Input() {
          return JSON.parse(exec.input ?? 'null');
        },
      },
    };
    try {
      const pkg = this.packageMachine(compiled, startAt).run(input, {
        overrides: { taskResourceLocalHandlers: handlers, retryIntervalOverrides },
        context,
      });
      run.abort = pkg.abort;
      pkg.result.then(
        (output) => {
          if (!run.dead) this.endExecution(exec, 'SUCCEEDED', { output: JSON.stringify(output ?? null) });
        },
        (err) => {
          if (run.dead) return;
          const failure = (err as { cause?: unknown }).cause ?? err;
          const { name, message } = errorParts(failure);
          const isBareFail = name === 'FailStateError' && message === PACKAGE_FAIL_DEFAULT_CAUSE;
          this.endExecution(exec, 'FAILED', {
            error: isBareFail ? undefined : name,
            cause: isBareFail || message === name ? undefined : message,
          });
        },
      );
    } catch (err) {
      this.endExecution(exec, 'FAILED', { error: 'States.Runtime', cause: errorParts(err).message });
    }
  }

  private resume(exec: Execution): void {
    const records = this.store.read(exec.file);
    const start = records.find((r): r is StartRecord => r.t === 'start');
    // Its first write was torn (power loss): without its definition and input it cannot go on; recover() ends
    // it FAILED rather than leaving it RUNNING for ever, and the reconciler ends its reboot.
    if (!start) throw new Error('its journal has no start record (torn at the first write)');
    const compiled = this.compiledFor(start.hash);
    const history = this.historyFromJournal(records);
    Object.assign(exec, {
      hash: start.hash,
      input: start.input,
      roleArn: start.roleArn,
      machineName: start.machine,
      history,
      nextId: nextEventId(history),
    });
    let lastEntered = -1;
    records.forEach((r, i) => {
      if (r.t === 'entered') lastEntered = i;
    });
    if (lastEntered < 0) {
      this.launch(exec, compiled, compiled.runnable.StartAt, JSON.parse(start.input));
      return;
    }
    const entered = records[lastEntered] as EnteredRecord;
    const after = records.slice(lastEntered + 1);
    const resume: ResumePoint = { state: entered.state, enteredAt: entered.ts, enteredSkipped: false };
    const meta = compiled.tasks.get(entered.state);
    if (meta?.kind === 'wait') {
      const wait = after.findLast((r) => r.t === 'wait' && r.state === entered.state);
      if (wait?.t === 'wait') resume.waitUntil = wait.until;
    }
    if (meta?.kind === 'callback') {
      const tok = after.findLast((r): r is TokenRecord => r.t === 'token' && r.state === entered.state);
      if (tok) {
        let heartbeatAt = tok.heartbeatAt;
        for (const r of after) if (r.t === 'hb' && r.token === tok.token) heartbeatAt = r.heartbeatAt;
        // The coordinator was down: the host could not heartbeat to it, so it gets a whole heartbeat window
        // from this restart. Its silence is counted only while the coordinator is up.
        if (heartbeatAt !== undefined && tok.heartbeatMs !== undefined)
          heartbeatAt = Math.max(heartbeatAt, this.clock.now() + tok.heartbeatMs);
        const result = after.findLast((r) => r.t === 'result' && r.token === tok.token);
        const evTypes = after.filter((r): r is EventRecord => r.t === 'ev').map((r) => r.type);
        resume.parked = this.newParked(tok.token, undefined as unknown as Run, meta, 1, {
          timeoutAt: tok.timeoutAt,
          heartbeatAt,
          heartbeatMs: tok.heartbeatMs,
        });
        resume.parked.reinvoke = !evTypes.some((t) => t === 'TaskSubmitted' || TERMINAL_TASK_EVENTS.has(t));
        if (result?.t === 'result') {
          resume.journalledResult = { ok: result.ok, output: result.output, error: result.error, cause: result.cause };
          resume.parked.silent = evTypes.some((t) => TERMINAL_TASK_EVENTS.has(t));
          resume.parked.reinvoke = false;
        }
      }
    }
    this.launch(exec, compiled, entered.state, JSON.parse(entered.input), resume);
  }

  private endExecution(
    exec: Execution,
    status: Exclude<ExecutionStatus, 'RUNNING'>,
    fields: { output?: string; error?: string; cause?: string },
  ): void {
    if (exec.status !== 'RUNNING') return;
    if (exec.run) this.killRun(exec.run);
    if (!exec.history) {
      let records: JournalRecord[] = [];
      try {
        records = this.store.read(exec.file);
      } catch {
        // No readable journal: the end record below starts a new one rather than losing the outcome.
      }
      exec.history = this.historyFromJournal(records);
      exec.nextId = nextEventId(exec.history);
    }
    const now = this.clock.now();
    const errorDetails = { error: fields.error, cause: fields.cause };
    if (status === 'SUCCEEDED') {
      this.emit(exec, 'ExecutionSucceeded', {
        executionSucceededEventDetails: { output: fields.output, outputDetails: { truncated: false } },
      });
    } else if (status === 'FAILED') {
      this.emit(exec, 'ExecutionFailed', { executionFailedEventDetails: errorDetails });
    } else if (status === 'ABORTED') {
      this.emit(exec, 'ExecutionAborted', { executionAbortedEventDetails: errorDetails });
    } else {
      this.emit(exec, 'ExecutionTimedOut', { executionTimedOutEventDetails: errorDetails });
    }
    const end: EndRecord = { t: 'end', status, stopDate: now, ...fields };
    this.store.append(exec.file, end);
    this.store.indexEnd(exec.arn, { status, stopDate: now, error: fields.error, cause: fields.cause });
    Object.assign(exec, { status, stopDate: now, output: fields.output, error: fields.error, cause: fields.cause });
    exec.run = undefined;
    // Finished histories are read back from the journal on demand, so thousands of them cost no memory.
    exec.history = undefined;
  }

  /** Ends a run's timers, parked callbacks and package execution; writes nothing. */
  private killRun(run: Run): void {
    if (run.dead) return;
    run.dead = true;
    run.cancelExecutionTimeout?.();
    for (const cleanup of [...run.cleanups]) cleanup();
    run.cleanups.clear();
    for (const token of run.tokens) this.tokens.delete(token);
    run.tokens.clear();
    run.abort?.();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // internals: package events -> history and journal

  private onPackageEvent(run: Run, ev: PackageEvent): void {
    if (run.dead) return;
    const exec = run.exec;
    const topTypes = run.compiled.topLevelTypes;
    switch (ev.type) {
      case 'StateEntered': {
        const s = ev.state!;
        if (topTypes.has(s.name)) {
          const now = this.clock.now();
          run.retryDelayMs = 0;
          run.retryCount = 0;
          const resume = run.resume;
          if (resume && !resume.enteredSkipped && resume.state === s.name) {
            // Resuming here: its entered event is already in the journal and the history.
            resume.enteredSkipped = true;
            run.current = { state: s.name, input: s.input, enteredAt: resume.enteredAt };
          } else {
            run.current = { state: s.name, input: s.input, enteredAt: now };
            const rec: EnteredRecord = {
              t: 'entered',
              id: exec.nextId++,
              ts: now,
              type: `${topTypes.get(s.name)}StateEntered`,
              state: s.name,
              input: JSON.stringify(s.input ?? null),
            };
            exec.history?.push(rec);
            this.store.append(exec.file, rec);
          }
        } else {
          this.emit(exec, `${s.type}StateEntered`, {
            stateEnteredEventDetails: { name: s.name, input: JSON.stringify(s.input ?? null) },
          });
        }
        this.marker(run, s.name);
        return;
      }
      case 'StateExited': {
        const s = ev.state!;
        const type = topTypes.get(s.name) ?? s.type;
        this.emit(exec, `${type}StateExited`, {
          stateExitedEventDetails: { name: s.name, output: JSON.stringify(s.output ?? null) },
        });
        return;
      }
      case 'StateRetried': {
        const s = ev.state!;
        if (topTypes.has(s.name) && run.compiled.retriers.has(s.name) && ev.retry) {
          run.retryDelayMs = retryDelayMs(ev.retry.retrier, ev.retry.attempt);
        }
        if (topTypes.has(s.name)) run.retryCount = (run.retryCount ?? 0) + 1;
        this.marker(run, s.name);
        return;
      }
      case 'MapIterationStarted':
      case 'MapIterationSucceeded':
      case 'MapIterationFailed': {
        const key = `mapIteration${ev.type.slice('MapIteration'.length)}EventDetails`;
        this.emit(exec, ev.type, { [key]: { name: ev.parentState?.name, index: ev.index } });
        return;
      }
      default:
        // Execution* events come from the run's result; StateFailed/StateCaught and branch events have no AWS twin.
        return;
    }
  }

  /**
   * Task events (TaskScheduled...) are produced by the override, which the package calls before nested
   * Parallel/Map StateEntered events reach the root logger. Each override call waits for its own
   * StateEntered/StateRetried marker, so the history reads in AWS order.
   */
  private marker(run: Run, state: string): void {
    const n = (run.markers.get(state) ?? 0) + 1;
    run.markers.set(state, n);
    const queue = run.deferred.get(state);
    if (!queue) return;
    while (queue.length && queue[0].call <= n) queue.shift()!.emit();
    if (!queue.length) run.deferred.delete(state);
  }

  private taskEvent(run: Run, state: string, call: number, type: string, details?: Record<string, unknown>): void {
    if (run.dead) return;
    const emit = () => {
      if (!run.dead) this.emit(run.exec, type, details);
    };
    if ((run.markers.get(state) ?? 0) >= call) {
      emit();
    } else {
      const queue = run.deferred.get(state) ?? [];
      queue.push({ call, emit });
      run.deferred.set(state, queue);
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // internals: Task overrides

  private mintToken(run: Run): string {
    // randomUUID draws from a cached pool of entropy (randomBytes asks OpenSSL every time): 122 random bits.
    const token = `${TOKEN_PREFIX}${b64url(run.exec.arn)}.${randomUUID().replaceAll('-', '')}`;
    run.minted.add(token);
    return token;
  }

  private onTask(run: Run, name: string, input: unknown): Promise<unknown> {
    if (run.dead) return Promise.reject(statesError('States.Runtime', 'execution is not running', { fatal: true }));
    const meta = run.compiled.tasks.get(name)!;
    if (meta.parameters) {
      // Evaluated here, where the package would have (before the Task's retry delay), with the same failure.
      try {
        input = meta.parameters(input, run.context);
      } catch (err) {
        return Promise.reject(this.fatal(errorParts(err).message));
      }
    }
    const call = (run.calls.get(name) ?? 0) + 1;
    run.calls.set(name, call);
    const delay = meta.topLevel ? run.retryDelayMs : 0;
    run.retryDelayMs = 0;
    try {
      if (delay > 0) {
        return this.sleepUntil(run, this.clock.now() + delay).then(() => this.runTask(run, meta, call, input));
      }
      return this.runTask(run, meta, call, input);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private runTask(run: Run, meta: TaskMeta, call: number, input: unknown): Promise<unknown> {
    switch (meta.kind) {
      case 'wait':
        return this.runWait(run, meta, input);
      case 'callback':
        return this.runCallback(run, meta, call, input);
      default:
        return this.runLambda(run, meta, call, input);
    }
  }

  private fatal(message: string): Error {
    return statesError('States.Runtime', message, { fatal: true });
  }

  /** Seconds from TimeoutSeconds/HeartbeatSeconds or their *Path, which AWS reads from the state's input. */
  private secondsField(run: Run, meta: TaskMeta, input: unknown, which: 'timeout' | 'heartbeat'): number | undefined {
    const fixed = which === 'timeout' ? meta.timeoutSeconds : meta.heartbeatSeconds;
    const path = which === 'timeout' ? meta.timeoutSecondsPath : meta.heartbeatSecondsPath;
    if (fixed !== undefined) return fixed;
    if (path === undefined) return undefined;
    // Top-level states have their raw input at hand; nested ones only their effective input.
    const stateInput = meta.topLevel && run.current?.state === meta.name ? run.current.input : input;
    const value = readPath(path, stateInput);
    if (!positiveInteger(value)) {
      const field = which === 'timeout' ? 'TimeoutSecondsPath' : 'HeartbeatSecondsPath';
      throw this.fatal(`${field} '${path}' of '${meta.name}' must select a positive integer, got ${JSON.stringify(value)}`);
    }
    return value;
  }

  private runWait(run: Run, meta: TaskMeta, input: unknown): Promise<unknown> {
    const resume = run.resume;
    let until: number;
    if (resume && resume.state === meta.name && resume.waitUntil !== undefined) {
      until = resume.waitUntil;
      resume.waitUntil = undefined;
    } else {
      until = this.waitUntil(meta, input);
      this.store.append(run.exec.file, { t: 'wait', state: meta.name, until });
    }
    return this.sleepUntil(run, until).then(() => input);
  }

  private waitUntil(meta: TaskMeta, input: unknown): number {
    const now = this.clock.now();
    if (meta.seconds !== undefined) return now + meta.seconds * 1000;
    if (meta.timestamp !== undefined) return Date.parse(meta.timestamp);
    if (meta.secondsPath !== undefined) {
      const v = readPath(meta.secondsPath, input);
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
        throw this.fatal(`SecondsPath '${meta.secondsPath}' of '${meta.name}' must select a non-negative integer`);
      }
      return now + v * 1000;
    }
    if (meta.timestampPath !== undefined) {
      const v = readPath(meta.timestampPath, input);
      const at = typeof v === 'string' ? Date.parse(v) : NaN;
      if (Number.isNaN(at)) {
        throw this.fatal(`TimestampPath '${meta.timestampPath}' of '${meta.name}' must select an ISO 8601 timestamp`);
      }
      return at;
    }
    return now;
  }

  /** A Clock timer that dies with the run. */
  private sleepUntil(run: Run, at: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        cancel();
        reject(this.fatal('execution is not running'));
      };
      const cancel = this.clock.setTimer(at, () => {
        run.cleanups.delete(cleanup);
        resolve();
      });
      run.cleanups.add(cleanup);
    });
  }

  private invoke(fn: string, payload: unknown): Promise<unknown> {
    try {
      return Promise.resolve(this.invokeLambda(fn, payload));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private runLambda(run: Run, meta: TaskMeta, call: number, input: unknown): Promise<unknown> {
    const timeoutS = this.secondsField(run, meta, input, 'timeout');
    const isInvoke = meta.kind === 'invoke';
    const params = input as { FunctionName?: unknown; Payload?: unknown };
    if (isInvoke && typeof params?.FunctionName !== 'string') {
      throw this.fatal(`'${meta.name}': Parameters.FunctionName must be a string`);
    }
    const [fn, payload] = isInvoke ? [params.FunctionName as string, params.Payload] : [meta.resource, input];
    const state = meta.name;
    const svc = { resourceType: 'lambda', resource: 'invoke' };
    if (isInvoke) {
      this.taskEvent(run, state, call, 'TaskScheduled', {
        taskScheduledEventDetails: {
          ...svc,
          region: this.region,
          parameters: JSON.stringify(input ?? null),
          timeoutInSeconds: timeoutS,
        },
      });
      this.taskEvent(run, state, call, 'TaskStarted', { taskStartedEventDetails: svc });
    } else {
      this.taskEvent(run, state, call, 'LambdaFunctionScheduled', {
        lambdaFunctionScheduledEventDetails: {
          resource: meta.resource,
          input: JSON.stringify(input ?? null),
          timeoutInSeconds: timeoutS,
        },
      });
      this.taskEvent(run, state, call, 'LambdaFunctionStarted');
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      let cancelTimeout: (() => void) | undefined;
      const done = () => {
        settled = true;
        cancelTimeout?.();
        run.cleanups.delete(cleanup);
      };
      const cleanup = () => {
        done();
        reject(this.fatal('execution is not running'));
      };
      run.cleanups.add(cleanup);
      if (timeoutS !== undefined) {
        cancelTimeout = this.clock.setTimer(this.clock.now() + timeoutS * 1000, () => {
          if (settled) return;
          done();
          const cause = `Task '${state}' timed out after ${timeoutS} seconds`;
          const details = { error: 'States.Timeout', cause };
          if (isInvoke) this.taskEvent(run, state, call, 'TaskTimedOut', { taskTimedOutEventDetails: { ...svc, ...details } });
          else this.taskEvent(run, state, call, 'LambdaFunctionTimedOut', { lambdaFunctionTimedOutEventDetails: details });
          reject(timeoutError(cause));
        });
      }
      this.invoke(fn, payload).then(
        (ret) => {
          if (settled) return;
          done();
          let result: unknown;
          try {
            result = jsonClone(ret);
          } catch (err) {
            reject(this.fatal(`'${state}': the Lambda result is not JSON: ${errorParts(err).message}`));
            return;
          }
          if (isInvoke) result = { ExecutedVersion: '$LATEST', Payload: result, StatusCode: 200 };
          const output = JSON.stringify(result);
          if (isInvoke) this.taskEvent(run, state, call, 'TaskSucceeded', { taskSucceededEventDetails: { ...svc, output } });
          else this.taskEvent(run, state, call, 'LambdaFunctionSucceeded', { lambdaFunctionSucceededEventDetails: { output } });
          resolve(result);
        },
        (err) => {
          if (settled) return;
          done();
          const { name, message } = errorParts(err);
          const details = { error: name, cause: message };
          if (isInvoke) this.taskEvent(run, state, call, 'TaskFailed', { taskFailedEventDetails: { ...svc, ...details } });
          else this.taskEvent(run, state, call, 'LambdaFunctionFailed', { lambdaFunctionFailedEventDetails: details });
          // A fresh error keeps only the name Catch matches on and the message as Cause.
          reject(statesError(name, message));
        },
      );
    });
  }

  private runCallback(run: Run, meta: TaskMeta, call: number, input: unknown): Promise<unknown> {
    const resume = run.resume;
    const minted = run.minted;
    run.minted = new Set();
    if (resume?.parked && !resume.parkedUsed && resume.state === meta.name) {
      // Resuming a parked callback: same token, original deadlines, and the Lambda is not called again
      // unless the crash came before it confirmed the invocation.
      resume.parkedUsed = true;
      const parked = resume.parked;
      if (parked.reinvoke && !parked.settled) {
        const fresh = findToken(input, minted);
        const params = (fresh ? replaceString(input, fresh, parked.token) : input) as { FunctionName: string; Payload?: unknown };
        this.invokeCallbackLambda(parked, params);
      }
      return parked.promise;
    }
    const token = findToken(input, minted);
    if (!token) throw this.fatal(`'${meta.name}': Parameters did not carry $$.Task.Token`);
    const params = input as { FunctionName?: unknown; Payload?: unknown };
    if (typeof params?.FunctionName !== 'string') {
      throw this.fatal(`'${meta.name}': Parameters.FunctionName must be a string`);
    }
    const timeoutS = this.secondsField(run, meta, input, 'timeout');
    const heartbeatS = this.secondsField(run, meta, input, 'heartbeat');
    const now = this.clock.now();
    const deadlines = {
      timeoutAt: timeoutS !== undefined ? now + timeoutS * 1000 : undefined,
      heartbeatAt: heartbeatS !== undefined ? now + heartbeatS * 1000 : undefined,
      heartbeatMs: heartbeatS !== undefined ? heartbeatS * 1000 : undefined,
    };
    // Journalled before the Lambda sees the token, so a resume can always honour a token that is out there.
    this.store.append(run.exec.file, { t: 'token', state: meta.name, token, ...deadlines });
    const parked = this.newParked(token, run, meta, call, deadlines);
    this.registerParked(parked);
    const svc = { resourceType: 'lambda', resource: 'invoke.waitForTaskToken' };
    this.taskEvent(run, meta.name, call, 'TaskScheduled', {
      taskScheduledEventDetails: {
        ...svc,
        region: this.region,
        parameters: JSON.stringify(input ?? null),
        timeoutInSeconds: timeoutS,
        heartbeatInSeconds: heartbeatS,
      },
    });
    this.taskEvent(run, meta.name, call, 'TaskStarted', { taskStartedEventDetails: svc });
    this.invokeCallbackLambda(parked, params as { FunctionName: string; Payload?: unknown });
    return parked.promise;
  }

  private invokeCallbackLambda(parked: Parked, params: { FunctionName: string; Payload?: unknown }): void {
    const svc = { resourceType: 'lambda', resource: 'invoke.waitForTaskToken' };
    this.invoke(params.FunctionName, params.Payload).then(
      (ret) => {
        if (parked.settled) return;
        let output: string;
        try {
          output = JSON.stringify({ ExecutedVersion: '$LATEST', Payload: jsonClone(ret), StatusCode: 200 });
        } catch {
          output = 'null';
        }
        this.taskEvent(parked.run, parked.meta.name, parked.call, 'TaskSubmitted', {
          taskSubmittedEventDetails: { ...svc, output },
        });
      },
      (err) => {
        if (parked.settled) return;
        const { name, message } = errorParts(err);
        const outcome = { ok: false, error: name, cause: message };
        this.store.append(parked.run.exec.file, { t: 'result', token: parked.token, ...outcome });
        this.settleParked(parked, outcome);
      },
    );
  }

  private newParked(
    token: string,
    run: Run,
    meta: TaskMeta,
    call: number,
    deadlines: { timeoutAt?: number; heartbeatAt?: number; heartbeatMs?: number },
  ): Parked {
    let resolve!: (v: unknown) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // The package may never await this promise (a run that dies first); keep an unhandled rejection quiet.
    promise.catch(() => {});
    return { token, run, meta, call, settled: false, promise, resolve, reject, ...deadlines };
  }

  private registerParked(parked: Parked): void {
    const run = parked.run;
    this.tokens.set(parked.token, parked);
    run.tokens.add(parked.token);
    parked.cleanup = () => {
      if (parked.settled) return;
      parked.settled = true;
      parked.cancelTimeout?.();
      parked.cancelHeartbeat?.();
      parked.reject(this.fatal('execution is not running'));
    };
    run.cleanups.add(parked.cleanup);
    if (parked.timeoutAt !== undefined) {
      parked.cancelTimeout = this.clock.setTimer(parked.timeoutAt, () => {
        const cause = `callback Task '${parked.meta.name}' timed out`;
        this.store.append(run.exec.file, { t: 'result', token: parked.token, ok: false, error: 'States.Timeout', cause });
        this.settleParked(parked, { ok: false, error: 'States.Timeout', cause });
      });
    }
    this.armHeartbeat(parked);
  }

  private armHeartbeat(parked: Parked): void {
    parked.cancelHeartbeat?.();
    if (parked.heartbeatAt === undefined) return;
    parked.cancelHeartbeat = this.clock.setTimer(parked.heartbeatAt, () => {
      const cause = `callback Task '${parked.meta.name}' got no heartbeat in time`;
      this.store.append(parked.run.exec.file, {
        t: 'result',
        token: parked.token,
        ok: false,
        error: 'States.HeartbeatTimeout',
        cause,
      });
      this.settleParked(parked, { ok: false, error: 'States.HeartbeatTimeout', cause });
    });
  }

  /** The one place a parked callback ends: its token is gone from here on, whatever the outcome. */
  private settleParked(parked: Parked, outcome: { ok: boolean; output?: string; error?: string; cause?: string }): void {
    if (parked.settled) return;
    parked.settled = true;
    parked.cancelTimeout?.();
    parked.cancelHeartbeat?.();
    this.tokens.delete(parked.token);
    parked.run.tokens.delete(parked.token);
    if (parked.cleanup) parked.run.cleanups.delete(parked.cleanup);
    const { run, meta, call } = parked;
    const svc = { resourceType: 'lambda', resource: 'invoke.waitForTaskToken' };
    if (outcome.ok) {
      if (!parked.silent) {
        this.taskEvent(run, meta.name, call, 'TaskSucceeded', { taskSucceededEventDetails: { ...svc, output: outcome.output } });
      }
      parked.resolve(JSON.parse(outcome.output ?? 'null'));
      return;
    }
    const error = outcome.error ?? '';
    const cause = outcome.cause ?? '';
    const isTimeout = error === 'States.Timeout' || error === 'States.HeartbeatTimeout';
    if (!parked.silent) {
      this.taskEvent(run, meta.name, call, isTimeout ? 'TaskTimedOut' : 'TaskFailed', {
        [isTimeout ? 'taskTimedOutEventDetails' : 'taskFailedEventDetails']: { ...svc, error, cause },
      });
    }
    parked.reject(error === 'States.Timeout' ? timeoutError(cause) : statesError(error, cause));
  }

  private parked(token: string): Parked {
    this.assertOpen();
    if (typeof token !== 'string' || !TOKEN_SHAPE.test(token)) throw new InvalidToken('invalid task token');
    const parked = this.tokens.get(token);
    if (!parked) throw new TaskTimedOut('Task Timed Out: the token is unknown or its task has finished');
    return parked;
  }

  private assertOpen(): void {
    if (this.closed) throw new EngineClosed('the local Step Functions engine is closed');
  }
}

function nextEventId(history: (StartRecord | EnteredRecord | EventRecord)[]): number {
  let max = 1;
  for (const r of history) if (r.t !== 'start' && r.id > max) max = r.id;
  return max + 1;
}

function toHistoryEvent(r: StartRecord | EnteredRecord | EventRecord): HistoryEvent {
  if (r.t === 'start') {
    return {
      id: 1,
      previousEventId: 0,
      timestamp: new Date(r.startDate),
      type: 'ExecutionStarted',
      executionStartedEventDetails: { input: r.input, inputDetails: { truncated: false }, roleArn: r.roleArn },
    };
  }
  if (r.t === 'entered') {
    return {
      id: r.id,
      previousEventId: r.id - 1,
      timestamp: new Date(r.ts),
      type: r.type,
      stateEnteredEventDetails: { name: r.state, input: r.input, inputDetails: { truncated: false } },
    };
  }
  return { id: r.id, previousEventId: r.id - 1, timestamp: new Date(r.ts), type: r.type, ...r.d };
}
