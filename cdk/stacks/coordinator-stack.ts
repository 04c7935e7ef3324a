// The whole AWS deployment of the coordinator in one env-agnostic stack: the production twin of `npm start`.
import { Annotations, CfnOutput, Duration, Stack, TimeZone, Validations, type StackProps } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { Schedule, ScheduleExpression } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import type { Construct } from 'constructs';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseMapping } from '../../lambdas/core/redfish/mapping.ts';
import type { StageConfig } from '../config.ts';
import { coordinatorFunction, type CoordinatorFunctionProps } from '../constructs/coordinator-function.ts';
import { grantEnv, grantStartByName, grantTaskCallbacks } from '../constructs/grant-env.ts';
import { CoordinatorHttpApi, LONG_POLL_MAX_SECONDS } from '../constructs/http-api.ts';
import { DLQ_RETENTION, IngestQueue } from '../constructs/ingest-queue.ts';
import { Monitoring } from '../constructs/monitoring.ts';
import { PushChannel } from '../constructs/push-channel.ts';
import { nagArn } from '../constructs/nag.ts';
import { ReportBucket } from '../constructs/report-bucket.ts';
import { Tables } from '../constructs/tables.ts';
import { Workflows } from '../constructs/workflows.ts';
import { REBOOT_WORKFLOWS, type WorkflowKind } from '../../lambdas/core/workflow-io.ts';

/** The ASL placeholders and the functions whose ARNs fill them (the local stack fills the same names). */
export const PLACEHOLDER_FUNCTIONS = { AwaitFunctionArn: 'workflow-await', StepFunctionArn: 'workflow-step' } as const;

/** Where the operator's mapping file lands in the api function's bundle. */
export const OPERATOR_MAPPING_PATH = 'config/operator-redfish-mapping.yaml';

/**
 * The operator's Redfish mapping file (stage config `redfishMappingFile`), checked at synth so a
 * bad file fails the deploy rather than the API's cold start; shipped in the bundle, so the env
 * var that names it needs no grant.
 */
export function operatorMappingFile(
  config: StageConfig,
  projectRoot: string,
): { files: { from: string; to: string }[]; env: Record<string, string> } {
  if (!config.redfishMappingFile) return { files: [], env: {} };
  const from = resolve(projectRoot, config.redfishMappingFile);
  parseMapping(readFileSync(from, 'utf8'), config.redfishMappingFile);
  return { files: [{ from, to: OPERATOR_MAPPING_PATH }], env: { REDFISH_MAPPING_FILE: `/var/task/${OPERATOR_MAPPING_PATH}` } };
}

/** The report function writes `reports/<name>` (lambdas/entry/report.ts) and may write nothing else. */
export const REPORT_KEY_PREFIX = 'reports/';

/** Workflows the ingest function expects; a missing file is a synth warning, not an error. */
export const EXPECTED_WORKFLOWS = REBOOT_WORKFLOWS;

/** workflows/rollout.asl.json: started by the API (POST /v1/rollouts), its Tasks served by the two workflow functions. */
export const ROLLOUT_WORKFLOW: WorkflowKind = 'rollout';

export interface CoordinatorStackProps extends StackProps {
  config: StageConfig;
  /** Repository root (esbuild working directory, lock file). */
  projectRoot: string;
  /** Folder of the Lambda entries, `<name>.ts` each. */
  entryDir: string;
  /** Folder of the `*.asl.json` workflow definitions. */
  workflowsDir: string;
}

export class CoordinatorStack extends Stack {
  readonly config: StageConfig;
  readonly functions: Record<CoordinatorFunctionProps['name'], NodejsFunction>;
  readonly tables: Tables;
  readonly ingestQueue: IngestQueue;
  readonly reports: ReportBucket;
  readonly workflows: Workflows;
  readonly httpApi: CoordinatorHttpApi;
  readonly monitoring: Monitoring;
  readonly pushChannel: PushChannel;

  constructor(scope: Construct, id: string, props: CoordinatorStackProps) {
    super(scope, id, props);
    const { config } = props;
    this.config = config;
    const fn = (
      name: CoordinatorFunctionProps['name'],
      id: string,
      rest: Pick<CoordinatorFunctionProps, 'description' | 'timeout' | 'memorySize' | 'files'>,
    ) => coordinatorFunction(this, id, { name, config, entryDir: props.entryDir, projectRoot: props.projectRoot, ...rest });

    const operatorMapping = operatorMappingFile(config, props.projectRoot);
    this.tables = new Tables(this, 'Data', { config });
    const { reboots, idempotency } = this.tables;

    const api = fn('api', 'ApiFunction', {
      description: 'HTTP API (hono): webhook, events, reboots, agent long polls, reports',
      // Above API Gateway's 30 s integration limit, so a long poll (capped at 25 s) never dies mid-write.
      timeout: Duration.seconds(35),
      memorySize: 512,
      // The shipped Redfish → native event mapping, read at start (lambdas/core/redfish/mapping.ts),
      // and the operator's own, when the stage names one.
      files: ['config/redfish-mapping.yaml', ...operatorMapping.files],
    });
    for (const [name, value] of Object.entries(operatorMapping.env)) api.addEnvironment(name, value);
    const authorizer = fn('authorizer', 'AuthorizerFunction', {
      description: 'HTTP API authorizer: bearer or ?access_token= against SHA-256 token hashes',
      timeout: Duration.seconds(5),
    });
    const ingest = fn('ingest', 'IngestFunction', {
      description: 'SQS consumer: maps events, deduplicates, starts and signals workflows',
      // A batch of 10 events takes well under a second; the timeout bounds the retry delay (ingest-queue.ts).
      timeout: Duration.seconds(20),
      memorySize: 512,
    });
    const workflowAwait = fn('workflow-await', 'WorkflowAwaitFunction', {
      description: 'Callback Tasks (.waitForTaskToken): sends a command and parks the token',
      timeout: Duration.seconds(30),
    });
    const workflowStep = fn('workflow-step', 'WorkflowStepFunction', {
      description: 'Plain workflow Tasks: records phases and decisions',
      timeout: Duration.seconds(30),
    });
    const report = fn('report', 'ReportFunction', {
      description: 'Daily compliance report (JSON + HTML) into the report bucket',
      timeout: Duration.minutes(5),
      memorySize: 1024,
    });
    const watchdog = fn('watchdog', 'WatchdogFunction', {
      description: 'Every 5 minutes: counts BMCs quiet for longer than their interval (QuietBmcs)',
      timeout: Duration.minutes(1),
    });
    const reconciler = fn('reconciler', 'ReconcilerFunction', {
      description: 'Every 5 minutes: ends reboots whose workflow execution ended, failed or is gone (RebootsReconciled)',
      timeout: Duration.minutes(5),
    });
    const iotAuthorizer = fn('iot-authorizer', 'IotAuthorizerFunction', {
      description: 'IoT Core custom authorizer of the agents push channel: agent id + token against the token hashes',
      timeout: Duration.seconds(5),
    });
    this.functions = {
      api,
      authorizer,
      ingest,
      'workflow-await': workflowAwait,
      'workflow-step': workflowStep,
      report,
      watchdog,
      reconciler,
      'iot-authorizer': iotAuthorizer,
    };

    this.ingestQueue = new IngestQueue(this, 'Ingest', { consumerTimeout: ingest.timeout ?? Duration.seconds(30), config });
    this.reports = new ReportBucket(this, 'Reports', { config });

    this.workflows = new Workflows(this, 'Workflows', {
      directory: props.workflowsDir,
      functions: Object.fromEntries(
        Object.entries(PLACEHOLDER_FUNCTIONS).map(([placeholder, name]) => [placeholder, this.functions[name]]),
      ),
      config,
    });
    const found = new Set(this.workflows.workflows.map((w) => w.stem));
    for (const stem of EXPECTED_WORKFLOWS.filter((s) => !found.has(s))) {
      Annotations.of(this).addWarningV2(
        'xpu-reboot-coordinator:MissingWorkflow',
        `${stem}.asl.json is missing from ${props.workflowsDir}: the ingest function gets no ARN for it`,
      );
    }

    const machines = this.workflows.workflows.map((w) => w.stateMachineName);
    // Each env var and the permission behind it, in one line (grant-env.ts).
    grantEnv(api, 'TABLE_NAME', reboots, 'readWrite');
    grantEnv(api, 'QUEUE_URL', this.ingestQueue.queue, 'send');
    // `rebootctl dlq list|redrive`: peek at parked events and move them back to the ingest queue.
    grantEnv(api, 'DLQ_URL', this.ingestQueue.deadLetterQueue, 'drain');
    api.addEnvironment('LONG_POLL_MAX_SECONDS', String(LONG_POLL_MAX_SECONDS));
    grantTaskCallbacks(api, ['SendTaskSuccess', 'SendTaskFailure', 'SendTaskHeartbeat'], machines);
    // POST /v1/rollouts starts the rollout workflow (its cancel wakes it through the callbacks above).
    const rollout = this.workflows.workflows.find((w) => w.stem === ROLLOUT_WORKFLOW);
    if (rollout) grantEnv(api, rollout.envName, rollout.stateMachine, 'start');

    grantEnv(authorizer, 'TABLE_NAME', reboots, 'read');
    grantEnv(iotAuthorizer, 'TABLE_NAME', reboots, 'read');
    this.pushChannel = new PushChannel(this, 'PushChannel', {
      config,
      authorizer: iotAuthorizer,
      publishers: [api, ingest, workflowAwait, workflowStep],
    });

    grantEnv(ingest, 'TABLE_NAME', reboots, 'readWrite');
    grantEnv(ingest, 'IDEMPOTENCY_TABLE_NAME', idempotency, 'readWrite');
    // An event redriven from the DLQ on its last day must still be recognised as processed.
    ingest.addEnvironment('IDEMPOTENCY_TTL_SECONDS', String(this.ingestQueue.idempotencyTtl.toSeconds()));
    // Events start reboots; rollouts are started by the API alone.
    for (const wf of this.workflows.workflows.filter((w) => w.stem !== ROLLOUT_WORKFLOW))
      grantEnv(ingest, wf.envName, wf.stateMachine, 'start');
    // SendTaskFailure: a wake-up that routes through a Catch (deps.ts wakeIfReady, `error` outcomes).
    // No SendTaskHeartbeat: agents' heartbeats reach a waiting Task through the API alone.
    grantTaskCallbacks(ingest, ['SendTaskSuccess', 'SendTaskFailure'], machines);
    ingest.addEventSource(
      new SqsEventSource(this.ingestQueue.queue, {
        batchSize: 10,
        maxBatchingWindow: Duration.seconds(1),
        reportBatchItemFailures: true,
        maxConcurrency: config.ingestMaxConcurrency,
      }),
    );

    grantEnv(workflowAwait, 'TABLE_NAME', reboots, 'readWrite');
    grantTaskCallbacks(workflowAwait, ['SendTaskSuccess', 'SendTaskFailure'], machines);
    grantEnv(workflowStep, 'TABLE_NAME', reboots, 'readWrite');
    // The rollout's tick hands a long rollout to a new execution of it (core/rollout.ts TICKS_PER_EXECUTION).
    if (rollout) grantStartByName(workflowStep, rollout.envName, rollout.stateMachineName);
    // Every change to a reboot may satisfy its waiting Task, so the step that made it wakes it.
    grantTaskCallbacks(workflowStep, ['SendTaskSuccess', 'SendTaskFailure'], machines);

    // Every writer of reboots stamps the TTL of those it ends; the reconciler ends reboots too.
    for (const writer of [api, ingest, workflowAwait, workflowStep, reconciler])
      writer.addEnvironment('REBOOT_RETENTION_DAYS', String(config.rebootRetentionDays));
    // Signals of an xPU's next outage kept on the reboot that still held it go back to the ingest
    // queue when it lets go of the xPU (model.ts `defer`): whoever ends or advances a reboot sends them.
    for (const releaser of [ingest, workflowAwait, workflowStep, reconciler])
      grantEnv(releaser, 'QUEUE_URL', this.ingestQueue.queue, 'send');

    grantEnv(report, 'TABLE_NAME', reboots, 'read');
    grantEnv(report, 'REPORT_BUCKET', this.reports.bucket, 'put', REPORT_KEY_PREFIX);
    grantEnv(watchdog, 'TABLE_NAME', reboots, 'read');
    grantEnv(reconciler, 'TABLE_NAME', reboots, 'readWrite');
    // The reboots' executions only (reconciler.ts WORKFLOW_OF): it never reads a rollout's.
    for (const wf of this.workflows.workflows.filter((w) => w.stem !== ROLLOUT_WORKFLOW))
      grantEnv(reconciler, wf.envName, wf.stateMachine, 'describe');
    // A running wait whose condition already happened (its wake-up was lost) is woken by the reconciler.
    grantTaskCallbacks(reconciler, ['SendTaskSuccess', 'SendTaskFailure'], machines);

    this.schedule('DailyReport', report, {
      description: 'Daily compliance report',
      expression: ScheduleExpression.expression(config.reportSchedule, TimeZone.of(config.reportTimeZone)),
      retryAttempts: 3,
      maxEventAge: Duration.hours(6),
    });
    this.schedule('Watchdog', watchdog, {
      description: 'Quiet-BMC watchdog',
      expression: ScheduleExpression.rate(Duration.minutes(5)),
      // A late run is worthless: the next one is 5 minutes away.
      retryAttempts: 0,
      maxEventAge: Duration.minutes(5),
    });

    this.schedule('Reconciler', reconciler, {
      description: 'Reboots reconciled with their workflow executions',
      expression: ScheduleExpression.rate(Duration.minutes(5)),
      retryAttempts: 0,
      maxEventAge: Duration.minutes(5),
    });

    this.httpApi = new CoordinatorHttpApi(this, 'Http', { config, handler: api, authorizer });

    this.monitoring = new Monitoring(this, 'Monitoring', {
      config,
      deadLetterQueue: this.ingestQueue.deadLetterQueue,
      deadLetterRetention: DLQ_RETENTION,
      ingest,
      api,
      workflows: this.workflows.workflows,
      functions: this.functions,
      httpApi: this.httpApi.api,
      ingestQueue: this.ingestQueue.queue,
      scheduled: { report, watchdog, reconciler },
    });

    new CfnOutput(this, 'ApiUrl', { value: this.httpApi.url, description: 'Base URL of the HTTP API' });
    new CfnOutput(this, 'TableName', { value: reboots.tableName });
    new CfnOutput(this, 'AgentAuthorizerName', {
      value: this.pushChannel.authorizerName,
      description: 'IoT custom authorizer: wss://<iot endpoint>/mqtt?x-amz-customauthorizer-name=<this>',
    });
    new CfnOutput(this, 'ReportBucketName', { value: this.reports.bucket.bucketName });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.monitoring.topic.topicArn });
    for (const wf of this.workflows.workflows) {
      new CfnOutput(this, `${wf.stateMachine.node.id}Arn`, { value: wf.stateMachine.stateMachineArn });
    }
  }

  /** An EventBridge Scheduler schedule invoking `target`, with a role that may invoke only it. */
  private schedule(
    id: string,
    target: NodejsFunction,
    opts: { description: string; expression: ScheduleExpression; retryAttempts: number; maxEventAge: Duration },
  ): Schedule {
    const role = new Role(this, `${id}ScheduleRole`, {
      assumedBy: new ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    });
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagArn(target)}:*]`,
      reason: 'The scheduler target role may invoke this one function, by any version or alias.',
    });
    return new Schedule(this, id, {
      description: opts.description,
      schedule: opts.expression,
      target: new LambdaInvoke(target, { role, retryAttempts: opts.retryAttempts, maxEventAge: opts.maxEventAge }),
    });
  }
}
