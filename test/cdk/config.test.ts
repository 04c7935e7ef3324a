// Stage config: defaults, context strings from `-c key=value`, validation, and its effect on the stack.
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { parseStageConfig } from '../../cdk/config.ts';
import { buildTestApp } from './helpers.ts';

describe('stage config', () => {
  it('defaults to a retained dev stage', () => {
    expect(parseStageConfig({})).toEqual({
      stage: 'dev',
      logRetentionDays: 30,
      ingestMaxConcurrency: 10,
      apiThrottleRate: 500,
      apiThrottleBurst: 1000,
      removalPolicy: 'retain',
      reportSchedule: 'cron(0 6 * * ? *)',
      reportTimeZone: 'UTC',
      logLevel: 'INFO',
      rebootRetentionDays: 90,
      reservedConcurrency: {
        api: 100,
        authorizer: 50,
        ingest: 10,
        'workflow-await': 20,
        'workflow-step': 20,
        report: 1,
        watchdog: 1,
        reconciler: 1,
        'iot-authorizer': 20,
      },
    });
  });

  it('accepts the strings the CLI passes as context', () => {
    const config = parseStageConfig({ ingestMaxConcurrency: '4', reservedConcurrency: '{"ingest":"4","report":1}' });
    expect(config.ingestMaxConcurrency).toBe(4);
    expect(config.reservedConcurrency).toMatchObject({ ingest: 4, report: 1 });
  });

  it('names every bad key', () => {
    const bad = { stage: 'Prod', logRetentionDays: 31, ingestMaxConcurrency: 1, alarmEmail: 'nope', colour: 'red' };
    const message = (() => {
      try {
        parseStageConfig(bad);
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    })();
    for (const key of ['at stage', 'at logRetentionDays', 'at ingestMaxConcurrency', 'at alarmEmail', '"colour"']) {
      expect(message).toContain(key);
    }
    expect(() => parseStageConfig({ reportSchedule: '0 6 * * *' })).toThrow(/reportSchedule/);
  });

  it('refuses reserving less ingest concurrency than the event source may use', () => {
    expect(() => parseStageConfig({ ingestMaxConcurrency: 10, reservedConcurrency: { ingest: 5 } })).toThrow(
      /reservedConcurrency\.ingest must be at least ingestMaxConcurrency/,
    );
  });
});

describe('stage config in the stack', () => {
  it('reads CDK context, prefixes names with the stage and lets a throwaway stage be destroyed', () => {
    const { stack } = buildTestApp({
      skipBundling: true,
      context: { stage: 'sandbox', removalPolicy: 'destroy', ingestMaxConcurrency: '3', reservedConcurrency: '{"watchdog":1}' },
    });
    expect(stack.stackName).toBe('XpuRebootCoordinator-sandbox');
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', { StateMachineName: 'sandbox-XpuReboot' });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { ScalingConfig: { MaximumConcurrency: 3 } });
    template.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: 1 });
    for (const table of Object.values(template.findResources('AWS::DynamoDB::Table'))) {
      expect(table.DeletionPolicy).toBe('Delete');
      expect(table.Properties.DeletionProtectionEnabled).toBe(false);
    }
    for (const bucket of Object.values(template.findResources('AWS::S3::Bucket'))) expect(bucket.DeletionPolicy).toBe('Delete');
    template.resourceCountIs('AWS::SNS::Subscription', 0);
  });
});
