// Alarms on everything that means a reboot went wrong or an event was lost, an encrypted SNS topic, and a dashboard.
import { Duration } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  MathExpression,
  TreatMissingData,
  type IMetric,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import type { IHttpApi } from 'aws-cdk-lib/aws-apigatewayv2';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { removalPolicyOf, type StageConfig } from '../config.ts';
import { METRICS_NAMESPACE, serviceName } from './coordinator-function.ts';
import type { Workflow } from './workflows.ts';

export interface MonitoringProps {
  config: StageConfig;
  deadLetterQueue: IQueue;
  ingest: IFunction;
  api: IFunction;
  workflows: readonly Workflow[];
  /** Every function, by name: each throttle alarms (reserved concurrency reached). */
  functions?: Readonly<Record<string, IFunction>>;
  /** The HTTP API: 5xx answers alarm (authorizer or store unavailable, function errors). */
  httpApi?: IHttpApi;
  /** The ingest queue: events waiting too long alarm (ingest throttled, failing or too slow). */
  ingestQueue?: IQueue;
  /** How long the DLQ keeps a message: an event parked that long is deleted by SQS, so it alarms before. */
  deadLetterRetention?: Duration;
  /** Functions run on a schedule, by name: each failed run alarms (the scheduler drops it after its retries). */
  scheduled?: Readonly<Record<string, IFunction>>;
}

/** An event older than this in the ingest queue has used 40 % of a default 300 s notice. */
export const OLDEST_EVENT_ALARM_SECONDS = 120;
/** Days before a parked event expires from the DLQ that IngestDlqExpiring alarms. */
export const DLQ_EXPIRY_WARNING_DAYS = 3;
/** 5xx answers within 5 minutes that alarm: a single retried authorizer timeout does not. */
export const API_5XX_ALARM_COUNT = 5;

export class Monitoring extends Construct {
  readonly topic: Topic;
  readonly alarms: Alarm[] = [];
  readonly dashboard: Dashboard;
  private readonly config: StageConfig;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    this.config = props.config;
    const { config } = props;

    // CloudWatch alarms cannot publish to a topic under the AWS managed SNS key (its policy is
    // fixed), so the topic gets a customer managed key that lets CloudWatch use it.
    const key = new Key(this, 'AlarmTopicKey', {
      description: `${config.stage} xpu-reboot-coordinator alarm topic`,
      enableKeyRotation: true,
      removalPolicy: removalPolicyOf(config),
    });
    key.grant(new ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
    this.topic = new Topic(this, 'AlarmTopic', {
      displayName: `${config.stage} xPU reboot coordinator alarms`,
      masterKey: key,
      enforceSSL: true,
    });
    if (config.alarmEmail) this.topic.addSubscription(new EmailSubscription(config.alarmEmail));

    const fiveMinutes = Duration.minutes(5);
    // Custom metrics through Metrics Insights: an alarm on a plain metric matches one exact
    // dimension set, but Powertools adds `service` to every metric and callers add their own
    // (RebootFailed carries `reason`). The query folds every dimension set of the stage's service.
    const custom = (metricName: string, aggregate: 'SUM' | 'MAX') =>
      new MathExpression({
        expression: `SELECT ${aggregate}(${metricName}) FROM ${METRICS_NAMESPACE} WHERE service = '${serviceName(config)}'`,
        usingMetrics: {},
        label: metricName,
        period: fiveMinutes,
      });

    const dlqDepth = props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
      period: Duration.minutes(1),
      statistic: 'Maximum',
    });
    this.alarm('IngestDlqNotEmpty', dlqDepth, 'Events reached the ingest DLQ: they were not processed after 5 tries.');
    const ingestErrors = props.ingest.metricErrors({ period: fiveMinutes, statistic: 'Sum' });
    this.alarm('IngestErrors', ingestErrors, 'The ingest function failed (whole invocations, not single records).');
    const rebootFailed = custom('RebootFailed', 'SUM');
    this.alarm('RebootFailed', rebootFailed, 'A reboot ended as failed.');
    const reconciled = custom('RebootsReconciled', 'SUM');
    this.alarm('RebootsReconciled', reconciled, 'The reconciler ended reboots whose workflow execution had ended, failed or was gone.');
    const lostWakeups = custom('LostWakeupsRecovered', 'SUM');
    this.alarm(
      'LostWakeupsRecovered',
      lostWakeups,
      'The reconciler woke a workflow wait whose condition had already happened: a wake-up was lost.',
    );
    const quietBmcs = custom('QuietBmcs', 'MAX');
    this.alarm('QuietBmcs', quietBmcs, 'BMCs sent nothing within their interval: reboots on those nodes go unseen.');

    const throttles: IMetric[] = [];
    for (const [name, fn] of Object.entries(props.functions ?? {})) {
      const id = name.replace(/(^|-)([a-z])/g, (_m, _d, c: string) => c.toUpperCase());
      const t = fn.metricThrottles({ period: fiveMinutes, statistic: 'Sum' });
      this.alarm(`${id}Throttles`, t, `The ${name} function was throttled: its reserved concurrency is used up.`);
      throttles.push(t.with({ label: name }));
    }
    for (const [name, fn] of Object.entries(props.scheduled ?? {})) {
      const id = name.replace(/(^|-)([a-z])/g, (_m, _d, c: string) => c.toUpperCase());
      this.alarm(
        `${id}Errors`,
        fn.metricErrors({ period: fiveMinutes, statistic: 'Sum' }),
        `A scheduled run of the ${name} function failed: nothing retries it before its next run.`,
      );
    }
    if (props.httpApi) {
      const errors = props.httpApi.metricServerError({ period: fiveMinutes, statistic: 'Sum' });
      this.alarm('Api5xx', errors, `The HTTP API answered 5xx more than ${API_5XX_ALARM_COUNT} times in 5 minutes.`, API_5XX_ALARM_COUNT);
    }
    if (props.ingestQueue) {
      const age = props.ingestQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' });
      this.alarm(
        'IngestOldestEvent',
        age,
        `An event waited more than ${OLDEST_EVENT_ALARM_SECONDS} s in the ingest queue.`,
        OLDEST_EVENT_ALARM_SECONDS,
      );
    }
    if (props.deadLetterRetention) {
      // IngestDlqNotEmpty fires once and stays in alarm; this one fires while there is still time to redrive.
      const expiresIn = DLQ_EXPIRY_WARNING_DAYS * 86400;
      this.alarm(
        'IngestDlqExpiring',
        props.deadLetterQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5), statistic: 'Maximum' }),
        `An event has waited in the ingest DLQ for more than ${props.deadLetterRetention.toDays() - DLQ_EXPIRY_WARNING_DAYS} days: SQS deletes it after ${props.deadLetterRetention.toDays()}. Redrive it (rebootctl dlq redrive) or note why not.`,
        props.deadLetterRetention.toSeconds() - expiresIn,
      );
    }

    const failed: IMetric[] = [];
    const timedOut: IMetric[] = [];
    for (const wf of props.workflows) {
      const name = wf.stateMachine.node.id;
      // Labels only on the dashboard: a labelled metric turns an alarm into metric math.
      const f = wf.stateMachine.metricFailed({ period: fiveMinutes, statistic: 'Sum' });
      const t = wf.stateMachine.metricTimedOut({ period: fiveMinutes, statistic: 'Sum' });
      this.alarm(`${name}ExecutionsFailed`, f, `A ${name} execution failed.`);
      this.alarm(`${name}ExecutionsTimedOut`, t, `A ${name} execution timed out.`);
      failed.push(f.with({ label: `${name} failed` }));
      timedOut.push(t.with({ label: `${name} timed out` }));
    }

    this.dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: `${config.stage}-xpu-reboot-coordinator`,
      defaultInterval: Duration.hours(24),
    });
    this.dashboard.addWidgets(new AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 4 }));
    this.dashboard.addWidgets(
      new GraphWidget({ title: 'Reboots failed / quiet BMCs', left: [rebootFailed], right: [quietBmcs], width: 12 }),
      new GraphWidget({ title: 'Workflow executions failed / timed out', left: [...failed, ...timedOut], width: 12 }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Ingest',
        left: [ingestErrors, props.ingest.metricInvocations({ period: fiveMinutes, statistic: 'Sum' })],
        right: [dlqDepth],
        width: 12,
      }),
      new GraphWidget({ title: 'Throttles', left: throttles, width: 12 }),
      new GraphWidget({
        title: 'API function',
        left: [props.api.metricErrors({ period: fiveMinutes, statistic: 'Sum' })],
        right: [props.api.metricDuration({ period: fiveMinutes, statistic: 'p99' })],
        width: 12,
      }),
    );
  }

  /** Anything above `threshold` (zero) alarms; no data (nothing happened) is fine. */
  private alarm(id: string, metric: IMetric, description: string, threshold = 0): Alarm {
    const alarm = new Alarm(this, id, {
      alarmName: `${this.config.stage}-xpu-reboot-coordinator-${id}`,
      alarmDescription: description,
      metric,
      threshold,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new SnsAction(this.topic));
    alarm.addOkAction(new SnsAction(this.topic));
    this.alarms.push(alarm);
    return alarm;
  }
}
