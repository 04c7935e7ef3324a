// One Lambda of the coordinator: lambdas/entry/<name>.ts bundled by esbuild as ESM for Node.js 24 on arm64.
import { type Duration, Validations } from 'aws-cdk-lib';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { LogLevel, NodejsFunction, OutputFormat, SourceMapMode } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { dirname, join } from 'node:path';
import { type FunctionName, removalPolicyOf, retentionOf, type StageConfig } from '../config.ts';

/** Namespace of every custom metric; alarms in monitoring.ts read the same one. */
export const METRICS_NAMESPACE = 'XpuRebootCoordinator';

/**
 * Powertools adds `service` as a dimension of every metric, and an alarm must match the
 * dimensions exactly: one service name per stage keeps RebootFailed / QuietBmcs alarmable
 * whichever function emits them (the function name is in every log line anyway).
 */
export function serviceName(config: StageConfig): string {
  return `xpu-reboot-coordinator-${config.stage}`;
}

// esbuild's ESM output has no `require`; CommonJS dependencies (parts of the SDK, Powertools) need one.
const REQUIRE_BANNER = "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);";

export interface CoordinatorFunctionProps {
  name: FunctionName;
  /** Folder holding `<name>.ts` (lambdas/entry). */
  entryDir: string;
  /** Repository root: esbuild's working directory and the lock file's folder. */
  projectRoot: string;
  config: StageConfig;
  description: string;
  timeout: Duration;
  memorySize?: number;
  /**
   * Files the code reads at run time: a repository path is copied into the bundle at the same
   * relative path (so `$LAMBDA_TASK_ROOT/config/redfish-mapping.yaml` for `config/redfish-mapping.yaml`);
   * `{ from, to }` copies any file (absolute `from`) to `to` in the bundle.
   */
  files?: Array<string | { from: string; to: string }>;
}

export function coordinatorFunction(scope: Construct, id: string, props: CoordinatorFunctionProps): NodejsFunction {
  const { config } = props;
  // The log group is ours (not created on first invocation) so retention and removal follow the stage.
  const logGroup = new LogGroup(scope, `${id}Logs`, {
    retention: retentionOf(config),
    removalPolicy: removalPolicyOf(config),
  });
  const fn = new NodejsFunction(scope, id, {
    entry: join(props.entryDir, `${props.name}.ts`),
    handler: 'handler',
    projectRoot: props.projectRoot,
    depsLockFilePath: join(props.projectRoot, 'package-lock.json'),
    description: props.description,
    runtime: Runtime.NODEJS_24_X,
    architecture: Architecture.ARM_64,
    memorySize: props.memorySize ?? 256,
    timeout: props.timeout,
    tracing: Tracing.ACTIVE,
    logGroup,
    reservedConcurrentExecutions: config.reservedConcurrency[props.name],
    environment: {
      POWERTOOLS_SERVICE_NAME: serviceName(config),
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      POWERTOOLS_LOG_LEVEL: config.logLevel,
      // Stack traces point into the TypeScript sources through the bundled source map.
      NODE_OPTIONS: '--enable-source-maps',
    },
    bundling: {
      format: OutputFormat.ESM,
      target: 'node24',
      mainFields: ['module', 'main'],
      banner: REQUIRE_BANNER,
      minify: true,
      sourceMap: true,
      sourceMapMode: SourceMapMode.DEFAULT,
      // Lines and names only: embedding the sources would quadruple the map that Node parses at start.
      sourcesContent: false,
      // The SDK is bundled, not taken from the runtime: the version the tests ran is the one deployed.
      externalModules: [],
      logLevel: LogLevel.WARNING,
      commandHooks: {
        beforeBundling: () => [],
        beforeInstall: () => [],
        afterBundling: (inputDir: string, outputDir: string) =>
          (props.files ?? [])
            .map((f) => (typeof f === 'string' ? { from: `${inputDir}/${f}`, to: f } : f))
            .map(({ from, to }) => `mkdir -p "${outputDir}/${dirname(to)}" && cp "${from}" "${outputDir}/${to}"`),
      },
    },
  });
  Validations.of(fn).acknowledge(
    {
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason: 'The AWS managed basic execution policy only lets the function write its own CloudWatch logs.',
    },
    {
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions.',
    },
  );
  return fn;
}
