// Errors of the local Step Functions service, named exactly like the AWS API errors so SDK callers can match them.

export class InvalidDefinition extends Error {
  override readonly name = 'InvalidDefinition';
}
export class InvalidArn extends Error {
  override readonly name = 'InvalidArn';
}
export class InvalidName extends Error {
  override readonly name = 'InvalidName';
}
export class InvalidExecutionInput extends Error {
  override readonly name = 'InvalidExecutionInput';
}
export class InvalidOutput extends Error {
  override readonly name = 'InvalidOutput';
}
export class InvalidToken extends Error {
  override readonly name = 'InvalidToken';
}
export class TaskTimedOut extends Error {
  override readonly name = 'TaskTimedOut';
}
export class StateMachineDoesNotExist extends Error {
  override readonly name = 'StateMachineDoesNotExist';
}
export class ExecutionDoesNotExist extends Error {
  override readonly name = 'ExecutionDoesNotExist';
}
export class ExecutionAlreadyExists extends Error {
  override readonly name = 'ExecutionAlreadyExists';
}
export class ValidationException extends Error {
  override readonly name = 'ValidationException';
}
export class EngineClosed extends Error {
  override readonly name = 'EngineClosed';
}

/** Names the HTTP server answers with 400; anything else is an internal failure (500). */
export const CLIENT_ERROR_NAMES: ReadonlySet<string> = new Set([
  'InvalidDefinition',
  'InvalidArn',
  'InvalidName',
  'InvalidExecutionInput',
  'InvalidOutput',
  'InvalidToken',
  'TaskTimedOut',
  'StateMachineDoesNotExist',
  'ExecutionDoesNotExist',
  'ExecutionAlreadyExists',
  'ValidationException',
  'MissingSubstitution',
]);

/**
 * An error raised inside a running state, carrying the ASL error name that Retry/Catch match on.
 * The package reads isRetryable/isCatchable from its own RuntimeError; States.Runtime is neither, as in AWS.
 */
export function statesError(name: string, cause: string, opts: { fatal?: boolean } = {}): Error {
  const err = new Error(cause) as Error & { isRetryable?: boolean; isCatchable?: boolean };
  err.name = name;
  if (opts.fatal) {
    err.isRetryable = false;
    err.isCatchable = false;
  }
  return err;
}
