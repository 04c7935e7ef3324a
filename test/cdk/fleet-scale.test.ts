// The AWS twin at fleet scale , as synthesized: grants scoped, retries and retention consistent,
// alarms wired, stacks that redeploy and destroy cleanly, the operator's mapping deployable, concurrency reserved.
import { Template } from 'aws-cdk-lib/assertions';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTION_NAMES, parseStageConfig, RESERVED_CONCURRENCY } from '../../cdk/config.ts';
import { OPERATOR_MAPPING_PATH } from '../../cdk/stacks/coordinator-stack.ts';
import { OLDEST_EVENT_ALARM_SECONDS } from '../../cdk/constructs/monitoring.ts';
import { asArray, buildTestApp, policyStatements, REPO_ROOT } from './helpers.ts';

type Resources = Record<string, { Type: string; Properties: any; DeletionPolicy?: string }>;
let built: ReturnType<typeof buildTestApp>;
let template: Template;
let resources: Resources;

const ofType = (type: string, rs: Resources = resources) => Object.entries(rs).filter(([, r]) => r.Type === type);
const fnId = (name: keyof typeof built.stack.functions) =>
  built.stack.resolve((built.stack.functions[name].node.defaultChild as any).logicalId) as string;

beforeAll(() => {
  built = buildTestApp({ skipBundling: true, config: { stage: 'fleet' } });
  template = Template.fromStack(built.stack);
  resources = template.toJSON().Resources;
}, 120_000);

describe('grants', () => {
  it('scopes states:SendTask* to the coordinator state machines', () => {
    const machines = ofType('AWS::StepFunctions::StateMachine')
      .map(([, sm]) => sm.Properties.StateMachineName)
      .sort();
    expect(machines).toEqual(['fleet-HostReboot', 'fleet-XpuReboot']);
    const callbacks = policyStatements(resources).filter((s) => asArray(s.Action).some((a) => a.startsWith('states:SendTask')));
    expect(callbacks.length).toBeGreaterThanOrEqual(4);
    for (const s of callbacks) {
      // Fn::Join of [arn:, partition, :states:, region, :, account, :stateMachine:<name>]
      const names = asArray(s.Resource as unknown).map((r: any) => {
        const parts = r['Fn::Join'][1] as unknown[];
        return String(parts[parts.length - 1]).replace(/^:stateMachine:/, '');
      });
      expect(names.sort(), JSON.stringify(s.Resource)).toEqual(machines);
    }
    expect(JSON.stringify(callbacks)).not.toMatch(/"Resource":"\*"/);
  });
});

describe('the reconciler', () => {
  it('may query the sparse index of reboots not ended (gsi3) it reads instead of the fleet listing', () => {
    const [tableId] = ofType('AWS::DynamoDB::Table').find(([, t]) =>
      (t.Properties.GlobalSecondaryIndexes ?? []).some((g: any) => g.IndexName === 'gsi3'),
    )!;
    const role = resources[fnId('reconciler')].Properties.Role['Fn::GetAtt'][0];
    const queries = Object.values(resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((x: any) => x.Ref === role))
      .flatMap((r) => r.Properties.PolicyDocument.Statement as any[])
      .filter((s) => asArray(s.Action).includes('dynamodb:Query'));
    const resourcesQueried = queries.flatMap((s) => asArray(s.Resource)).map((r) => JSON.stringify(r));
    expect(resourcesQueried).toContain(JSON.stringify({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [tableId, 'Arn'] }, '/index/*']] }));
  });
});

describe('retries and retention', () => {
  it('keeps idempotency records longer than an event can wait in the queue and the DLQ', () => {
    const queues = ofType('AWS::SQS::Queue');
    const dlq = queues.find(([, q]) => !q.Properties.RedrivePolicy)![1];
    const ingestQueue = queues.find(([, q]) => q.Properties.RedrivePolicy)![1];
    const ttl = Number(resources[fnId('ingest')].Properties.Environment.Variables.IDEMPOTENCY_TTL_SECONDS);
    expect(dlq.Properties.MessageRetentionPeriod).toBe(14 * 86400);
    expect(ttl).toBeGreaterThanOrEqual(dlq.Properties.MessageRetentionPeriod + ingestQueue.Properties.MessageRetentionPeriod);
  });

  it('retries a failed event well within a notice: the visibility timeout is under 180 s yet outlasts an invocation and its retry', () => {
    const ingestQueue = ofType('AWS::SQS::Queue').find(([, q]) => q.Properties.RedrivePolicy)![1];
    const timeout = resources[fnId('ingest')].Properties.Timeout as number;
    expect(ingestQueue.Properties.VisibilityTimeout).toBeLessThan(180);
    expect(ingestQueue.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(2 * timeout);
    // The 6x guidance covers throttled batches; the event source never runs more than ingest reserves.
    const mapping = ofType('AWS::Lambda::EventSourceMapping')[0][1];
    expect(resources[fnId('ingest')].Properties.ReservedConcurrentExecutions).toBeGreaterThanOrEqual(
      mapping.Properties.ScalingConfig.MaximumConcurrency,
    );
  });

  it('gives every function that writes reboots the retention of ended reboots', () => {
    for (const name of ['api', 'ingest', 'workflow-await', 'workflow-step'] as const) {
      expect(resources[fnId(name)].Properties.Environment.Variables.REBOOT_RETENTION_DAYS).toBe('90');
    }
  });
});

describe('alarms', () => {
  const actionsToTopic = (alarm: any) => {
    const [topic] = ofType('AWS::SNS::Topic');
    expect(alarm.Properties.AlarmActions).toEqual([{ Ref: topic[0] }]);
  };

  it('alarms on the throttles of every function', () => {
    for (const name of FUNCTION_NAMES) {
      const alarm = ofType('AWS::CloudWatch::Alarm').find(
        ([, a]) => a.Properties.MetricName === 'Throttles' && a.Properties.Dimensions?.[0]?.Value?.Ref === fnId(name),
      );
      expect(alarm, name).toBeDefined();
      actionsToTopic(alarm![1]);
    }
  });

  it('alarms on 5xx answers of the HTTP API and on old events in the ingest queue', () => {
    const fivexx = ofType('AWS::CloudWatch::Alarm').find(
      ([, a]) => a.Properties.MetricName === '5xx' && a.Properties.Namespace === 'AWS/ApiGateway',
    );
    expect(fivexx).toBeDefined();
    actionsToTopic(fivexx![1]);
    const age = ofType('AWS::CloudWatch::Alarm').find(([, a]) => a.Properties.MetricName === 'ApproximateAgeOfOldestMessage');
    expect(age![1].Properties).toMatchObject({ Threshold: OLDEST_EVENT_ALARM_SECONDS, Statistic: 'Maximum' });
    actionsToTopic(age![1]);
  });
});

describe('redeploy and destroy', () => {
  it('names no log group of a state machine: a retained one cannot block the next deploy', () => {
    for (const [, sm] of ofType('AWS::StepFunctions::StateMachine')) {
      const group = sm.Properties.LoggingConfiguration.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn['Fn::GetAtt'][0];
      expect(resources[group].Properties.LogGroupName).toBeUndefined();
    }
  });

  it('empties the buckets of a destroyable stage, and keeps the objects of a retained one', () => {
    const destroyable = Template.fromStack(
      buildTestApp({ skipBundling: true, config: { stage: 'throwaway', removalPolicy: 'destroy' } }).stack,
    ).toJSON().Resources as Resources;
    const buckets = ofType('AWS::S3::Bucket', destroyable).map(([id]) => id);
    expect(buckets.length).toBe(2);
    const autoDelete = ofType('Custom::S3AutoDeleteObjects', destroyable)
      .map(([, r]) => r.Properties.BucketName.Ref)
      .sort();
    expect(autoDelete).toEqual(buckets.sort());
    expect(ofType('Custom::S3AutoDeleteObjects')).toHaveLength(0);
  });
});

describe('operator mapping file', () => {
  it('ships the file named in the stage config with the api function and names it in REDFISH_MAPPING_FILE', () => {
    const { stack } = buildTestApp({
      skipBundling: true,
      config: { stage: 'mapped', redfishMappingFile: 'test/fixtures/redfish/operator-mapping.yaml' },
    });
    const api = Template.fromStack(stack).toJSON().Resources[stack.resolve((stack.functions.api.node.defaultChild as any).logicalId)];
    expect(api.Properties.Environment.Variables.REDFISH_MAPPING_FILE).toBe(`/var/task/${OPERATOR_MAPPING_PATH}`);
    expect(resources[fnId('api')].Properties.Environment.Variables.REDFISH_MAPPING_FILE).toBeUndefined();
  });

  it('refuses to synthesize with an invalid mapping file', () => {
    expect(() =>
      buildTestApp({
        skipBundling: true,
        config: { stage: 'badmap', redfishMappingFile: join(REPO_ROOT, 'test/fixtures/redfish/bad-mapping.yaml') },
      }),
    ).toThrow(/bad-mapping\.yaml/);
  });
});

describe('reserved concurrency', () => {
  it('reserves concurrency for every function, the workflow Lambdas included, within a default account limit', () => {
    for (const name of FUNCTION_NAMES) {
      expect(resources[fnId(name)].Properties.ReservedConcurrentExecutions, name).toBeGreaterThan(0);
    }
    const total = FUNCTION_NAMES.reduce((n, f) => n + resources[fnId(f)].Properties.ReservedConcurrentExecutions, 0);
    // AWS keeps 100 unreserved of the default limit of 1,000.
    expect(total).toBeLessThanOrEqual(900);
    expect(resources[fnId('workflow-step')].Properties.ReservedConcurrentExecutions).toBe(RESERVED_CONCURRENCY['workflow-step']);
  });

  it('merges given values over the defaults; "none" reserves nothing', () => {
    expect(parseStageConfig({ reservedConcurrency: '{"api":300}' }).reservedConcurrency).toMatchObject({
      api: 300,
      'workflow-step': 20,
      ingest: 10,
    });
    expect(parseStageConfig({ reservedConcurrency: 'none' }).reservedConcurrency).toEqual({});
    expect(parseStageConfig({ ingestMaxConcurrency: 25 }).reservedConcurrency.ingest).toBe(25);
  });
});

describe('push channel', () => {
  it('authorizes agents on IoT Core with the iot-authorizer function, which IoT alone may invoke', () => {
    const [[, authorizer]] = ofType('AWS::IoT::Authorizer');
    expect(authorizer.Properties).toMatchObject({ AuthorizerName: 'fleet-xpu-reboot-agents', SigningDisabled: true, Status: 'ACTIVE' });
    expect(authorizer.Properties.AuthorizerFunctionArn).toEqual({ 'Fn::GetAtt': [fnId('iot-authorizer'), 'Arn'] });
    const permission = ofType('AWS::Lambda::Permission').find(([, p]) => p.Properties.Principal === 'iot.amazonaws.com')![1];
    expect(permission.Properties.FunctionName).toEqual({ 'Fn::GetAtt': [fnId('iot-authorizer'), 'Arn'] });
    // No data endpoint configured: nothing publishes.
    expect(JSON.stringify(policyStatements(resources))).not.toContain('iot:Publish');
  });

  it('lets the functions that write commands publish on the wake-up topics only, with the endpoint configured', () => {
    const endpoint = 'abc123xyz-ats.iot.eu-west-1.amazonaws.com';
    const { stack } = buildTestApp({ skipBundling: true, config: { stage: 'push', iotDataEndpoint: endpoint } });
    const rs = Template.fromStack(stack).toJSON().Resources as Resources;
    const id = (n: keyof typeof stack.functions) => stack.resolve((stack.functions[n].node.defaultChild as any).logicalId) as string;
    for (const n of ['api', 'ingest', 'workflow-await', 'workflow-step'] as const)
      expect(rs[id(n)].Properties.Environment.Variables.IOT_DATA_ENDPOINT).toBe(endpoint);
    const publish = policyStatements(rs).filter((s) => asArray(s.Action).includes('iot:Publish'));
    expect(publish).toHaveLength(4);
    for (const s of publish) expect(JSON.stringify(s.Resource)).toContain(':topic/xpu-reboot/agents/*');
  });
});
