// CDK app entry (`npx cdk synth`): builds the coordinator stack from stage config given as context, checked by cdk-nag.
import { App, Validations, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { CONFIG_KEYS, parseStageConfig, type StageConfig, type StageConfigInput } from './config.ts';
import { CoordinatorStack } from './stacks/coordinator-stack.ts';

export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface BuildAppProps {
  /** Stage config; keys not given here are read from CDK context (`-c stage=prod`), then defaulted. */
  config?: StageConfigInput;
  /** Passed to `new App` (tests pass cdk.json's feature flags and an outdir). */
  appProps?: AppProps;
  projectRoot?: string;
  entryDir?: string;
  workflowsDir?: string;
}

export interface BuiltApp {
  app: App;
  stack: CoordinatorStack;
  config: StageConfig;
}

export function buildApp(props: BuildAppProps = {}): BuiltApp {
  const app = new App(props.appProps);
  const fromContext = Object.fromEntries(CONFIG_KEYS.map((k) => [k, app.node.tryGetContext(k)]).filter(([, v]) => v !== undefined));
  const config = parseStageConfig({ ...fromContext, ...props.config });
  const projectRoot = props.projectRoot ?? PROJECT_ROOT;
  const stack = new CoordinatorStack(app, `XpuRebootCoordinator-${config.stage}`, {
    description: `xPU reboot coordinator (${config.stage}): Redfish webhook, SQS ingest, Step Functions workflows, agent API`,
    config,
    projectRoot,
    entryDir: props.entryDir ?? join(projectRoot, 'lambdas', 'entry'),
    workflowsDir: props.workflowsDir ?? join(projectRoot, 'workflows'),
    tags: { project: 'xpu-reboot-coordinator', stage: config.stage },
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { app, stack, config };
}

if (import.meta.main) {
  buildApp().app.synth();
}
