// One Standard state machine per workflows/*.asl.json; each may invoke exactly the functions it substitutes.
import { Validations } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { removalPolicyOf, retentionOf, type StageConfig } from '../config.ts';
import { nagArn } from './nag.ts';

const ASL_SUFFIX = '.asl.json';
const PLACEHOLDER = /\$\{([A-Za-z0-9_]+)\}/g;

/** The `${Name}` placeholders of an ASL text, sorted and unique. */
export function placeholdersOf(aslText: string): string[] {
  return [...new Set([...aslText.matchAll(PLACEHOLDER)].map((m) => m[1]))].sort();
}

/** `xpu-reboot` → `XpuReboot`. */
export function pascalName(stem: string): string {
  return stem
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('');
}

/** The env var carrying a workflow's ARN: one rule for CDK and the Lambdas (lambdas/core/workflow-io.ts). */
export { workflowArnEnvName } from '../../lambdas/core/workflow-io.ts';
import { workflowArnEnvName } from '../../lambdas/core/workflow-io.ts';

/** The ASL files of a folder, by name. */
export function aslFilesIn(directory: string): string[] {
  let names: string[];
  try {
    names = readdirSync(directory);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith(ASL_SUFFIX))
    .sort()
    .map((n) => join(directory, n));
}

export interface Workflow {
  /** File name without `.asl.json`, e.g. `xpu-reboot`. */
  readonly stem: string;
  readonly file: string;
  readonly envName: string;
  readonly placeholders: string[];
  readonly stateMachine: StateMachine;
  /** The fixed name of the state machine (`<stage>-XpuReboot`): ARNs built from it need no reference. */
  readonly stateMachineName: string;
}

export interface WorkflowsProps {
  /** Folder whose `*.asl.json` files become state machines (globbed at synth time). */
  directory: string;
  /** Placeholder name → the function whose ARN replaces it. */
  functions: Record<string, IFunction>;
  config: StageConfig;
}

export class Workflows extends Construct {
  readonly workflows: Workflow[];

  constructor(scope: Construct, id: string, props: WorkflowsProps) {
    super(scope, id);
    this.workflows = aslFilesIn(props.directory).map((file) => this.addWorkflow(file, props));
  }

  private addWorkflow(file: string, props: WorkflowsProps): Workflow {
    const stem = basename(file, ASL_SUFFIX);
    const name = pascalName(stem);
    const text = readFileSync(file, 'utf8');
    try {
      JSON.parse(text);
    } catch (err) {
      throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
    }
    const placeholders = placeholdersOf(text);
    const unknown = placeholders.filter((p) => !(p in props.functions));
    if (unknown.length > 0) {
      throw new Error(`${file}: no substitution for \${${unknown.join('}, ${')}}; known: ${Object.keys(props.functions).join(', ')}`);
    }
    const used = placeholders.map((p) => [p, props.functions[p]] as const);

    // No fixed name: a retained group from a rolled-back or deleted stack would make the next
    // deploy fail on "already exists". CloudFormation's generated names are unique per attempt.
    const logGroup = new LogGroup(this, `${name}Logs`, {
      retention: retentionOf(props.config),
      removalPolicy: removalPolicyOf(props.config),
    });
    const stateMachineName = `${props.config.stage}-${name}`;
    const stateMachine = new StateMachine(this, name, {
      stateMachineName,
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromString(text),
      definitionSubstitutions: Object.fromEntries(used.map(([p, fn]) => [p, fn.functionArn])),
      tracingEnabled: true,
      logs: { destination: logGroup, level: LogLevel.ALL, includeExecutionData: false },
    });
    // The role's only Lambda permission: the functions this file names (and their versions/aliases).
    for (const [, fn] of used) fn.grantInvoke(stateMachine);

    Validations.of(stateMachine).acknowledge(
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Execution logging (logs:*LogDelivery, PutResourcePolicy, Describe*) and X-Ray trace writes support no resource-level permissions.',
      },
      ...used.map(([p, fn]) => ({
        id: `AwsSolutions-IAM5[Resource::${nagArn(fn)}:*]`,
        reason: `Invoking \${${p}} by version or alias, as lambda:InvokeFunction requires for qualified ARNs.`,
      })),
    );
    return { stem, file, envName: workflowArnEnvName(stem), placeholders, stateMachine, stateMachineName };
  }
}
