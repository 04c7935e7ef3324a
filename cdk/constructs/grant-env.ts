// Wires a resource into a function: the env var naming it and the IAM grant that makes it usable, in one call.
import { ArnFormat, CfnResource, Stack, Validations } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { nagArn } from './nag.ts';

export type TableAccess = 'read' | 'readWrite';

const ENV_NAME = /^[A-Z][A-Z0-9_]*$/;
const wired = new WeakMap<LambdaFunction, Set<string>>();

function claim(fn: LambdaFunction, name: string): void {
  if (!ENV_NAME.test(name)) throw new Error(`${fn.node.path}: env var name ${name} is not UPPER_SNAKE`);
  const names = wired.get(fn) ?? new Set<string>();
  if (names.has(name)) throw new Error(`${fn.node.path}: ${name} is wired twice`);
  names.add(name);
  wired.set(fn, names);
}

/** The env vars grantEnv set on a function (for tests and for the report). */
export function wiredEnv(fn: LambdaFunction): string[] {
  return [...(wired.get(fn) ?? [])].sort();
}

/** TABLE_NAME-style: the table's name, with read or read/write data access. */
export function grantEnv(fn: LambdaFunction, name: string, target: ITable, access: TableAccess): void;
/** QUEUE_URL-style: the queue's URL, with sqs:SendMessage. */
export function grantEnv(fn: LambdaFunction, name: string, target: IQueue, access: 'send'): void;
/** DLQ_URL-style: the dead-letter queue's URL, to list (receive, change visibility) and remove (delete) what it holds. */
export function grantEnv(fn: LambdaFunction, name: string, target: IQueue, access: 'drain'): void;
/** REPORT_BUCKET-style: the bucket's name, with s3:PutObject only, on keys under `keyPrefix`. */
export function grantEnv(fn: LambdaFunction, name: string, target: IBucket, access: 'put', keyPrefix: string): void;
/** *_WORKFLOW_ARN-style: the state machine's ARN, with states:StartExecution on it. */
export function grantEnv(fn: LambdaFunction, name: string, target: IStateMachine, access: 'start'): void;
/** *_WORKFLOW_ARN-style: the state machine's ARN, with states:DescribeExecution on its executions (the reconciler). */
export function grantEnv(fn: LambdaFunction, name: string, target: IStateMachine, access: 'describe'): void;
export function grantEnv(
  fn: LambdaFunction,
  name: string,
  target: ITable | IQueue | IBucket | IStateMachine,
  access: TableAccess | 'send' | 'drain' | 'put' | 'start' | 'describe',
  keyPrefix = '',
): void {
  claim(fn, name);
  switch (access) {
    case 'read':
    case 'readWrite': {
      const table = target as ITable;
      if (access === 'read') table.grantReadData(fn);
      else table.grantReadWriteData(fn);
      fn.addEnvironment(name, table.tableName);
      Validations.of(fn).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${nagArn(table)}/index/*]`,
        reason: `Queries on the secondary indexes of ${name} (index ARNs are <table>/index/<name>).`,
      });
      return;
    }
    case 'send': {
      const queue = target as IQueue;
      queue.grantSendMessages(fn);
      fn.addEnvironment(name, queue.queueUrl);
      return;
    }
    case 'drain': {
      const queue = target as IQueue;
      queue.grantConsumeMessages(fn);
      fn.addEnvironment(name, queue.queueUrl);
      return;
    }
    case 'put': {
      const bucket = target as IBucket;
      // grantPut would add s3:Abort* and PutObjectLegalHold/Retention/Tagging; a report writer needs none of them.
      fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:PutObject'], resources: [bucket.arnForObjects(`${keyPrefix}*`)] }));
      fn.addEnvironment(name, bucket.bucketName);
      Validations.of(fn).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${nagArn(bucket)}/${keyPrefix}*]`,
        reason: `Writes new objects under ${keyPrefix || 'the root of'} ${name}; put only, no read, list or delete.`,
      });
      return;
    }
    case 'start': {
      const machine = target as IStateMachine;
      machine.grantStartExecution(fn);
      fn.addEnvironment(name, machine.stateMachineArn);
      return;
    }
    case 'describe': {
      const machine = target as IStateMachine;
      machine.grantExecution(fn, 'states:DescribeExecution');
      fn.addEnvironment(name, machine.stateMachineArn);
      Validations.of(fn).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${nagExecutionsArn(machine)}]`,
        reason: `DescribeExecution on the executions of ${name} (execution ARNs are <machine>:<execution name>).`,
      });
      return;
    }
  }
}

/** How cdk-nag prints the `<machine>:*` execution ARNs that grantExecution names. */
function nagExecutionsArn(machine: IStateMachine): string {
  const cfn = machine.node.defaultChild;
  if (!CfnResource.isCfnResource(cfn)) throw new Error(`${machine.node.path} has no CloudFormation resource`);
  const ref = JSON.stringify({ 'Fn::Select': [6, { 'Fn::Split': [':', { Ref: Stack.of(machine).resolve(cfn.logicalId) }] }] });
  return `arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${ref}:*`;
}

export type TaskCallback = 'SendTaskSuccess' | 'SendTaskFailure' | 'SendTaskHeartbeat';

/**
 * Lets a function answer callback Tasks of the named state machines only. IAM evaluates SendTask*
 * against the state machine whose execution issued the token. The ARNs are built from the
 * machines' fixed names, not referenced: a state machine depends on the functions it invokes, so
 * a reference from their policies back to it would be a circular dependency.
 */
export function grantTaskCallbacks(fn: LambdaFunction, callbacks: TaskCallback[], machineNames: readonly string[]): void {
  if (machineNames.length === 0) return;
  const stack = Stack.of(fn);
  const resources = machineNames.map((name) =>
    stack.formatArn({ service: 'states', resource: 'stateMachine', resourceName: name, arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
  );
  fn.addToRolePolicy(new PolicyStatement({ actions: callbacks.map((c) => `states:${c}`), resources }));
}

/**
 * *_WORKFLOW_ARN-style for a function the state machine itself invokes: the ARN built from the
 * machine's fixed name, with states:StartExecution on it. A reference (grantEnv 'start') would be a
 * circular dependency: the machine depends on the functions it invokes.
 */
export function grantStartByName(fn: LambdaFunction, name: string, machineName: string): void {
  claim(fn, name);
  const arn = Stack.of(fn).formatArn({
    service: 'states',
    resource: 'stateMachine',
    resourceName: machineName,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
  fn.addToRolePolicy(new PolicyStatement({ actions: ['states:StartExecution'], resources: [arn] }));
  fn.addEnvironment(name, arn);
}
