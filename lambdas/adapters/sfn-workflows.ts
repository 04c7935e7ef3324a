// Workflows on Step Functions: start executions by name, wake and heartbeat callback Tasks.
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  StartExecutionCommand,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import type { WorkflowExecutionState, WorkflowKind, Workflows } from '../ports/index.ts';

/** Errors that mean "this token is no longer waiting": a late or duplicate wake-up, harmless. */
const GONE = new Set(['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken']);

export class SfnWorkflows implements Workflows {
  readonly #sfn: SFNClient;
  readonly #arns: Record<WorkflowKind, string>;

  constructor(sfn: SFNClient, arns: Record<WorkflowKind, string>) {
    this.#sfn = sfn;
    this.#arns = arns;
  }

  async start(kind: WorkflowKind, name: string, input: unknown): Promise<void> {
    try {
      await this.#sfn.send(new StartExecutionCommand({ stateMachineArn: this.#arns[kind], name, input: JSON.stringify(input) }));
    } catch (err) {
      // The same name means the same reboot: a replayed ingest must not start a second workflow.
      if (err instanceof ExecutionAlreadyExists || (err as Error).name === 'ExecutionAlreadyExists') return;
      throw err;
    }
  }

  async wake(token: string, output: unknown): Promise<boolean> {
    try {
      await this.#sfn.send(new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify(output) }));
      return true;
    } catch (err) {
      if (GONE.has((err as Error).name)) return false;
      throw err;
    }
  }

  async fail(token: string, error: string, cause: string): Promise<boolean> {
    try {
      await this.#sfn.send(new SendTaskFailureCommand({ taskToken: token, error, cause: cause.slice(0, 32_768) }));
      return true;
    } catch (err) {
      if (GONE.has((err as Error).name)) return false;
      throw err;
    }
  }

  async describe(kind: WorkflowKind, name: string): Promise<WorkflowExecutionState> {
    // An execution's ARN is its state machine's with `execution` for `stateMachine` and its name appended.
    const executionArn = `${this.#arns[kind].replace(':stateMachine:', ':execution:')}:${name}`;
    try {
      const d = await this.#sfn.send(new DescribeExecutionCommand({ executionArn }));
      return { status: (d.status ?? 'RUNNING') as WorkflowExecutionState['status'], error: d.error, cause: d.cause };
    } catch (err) {
      if ((err as Error).name === 'ExecutionDoesNotExist') return { status: 'NOT_FOUND' };
      throw err;
    }
  }

  async heartbeat(token: string): Promise<boolean> {
    try {
      await this.#sfn.send(new SendTaskHeartbeatCommand({ taskToken: token }));
      return true;
    } catch (err) {
      if (GONE.has((err as Error).name)) return false;
      throw err;
    }
  }
}
