// Issue s8 (AWS audit): invariants of the synthesized twin that the local stack cannot show: every
// function that writes what it configures gets the configuration, each grant is one the code uses,
// and every error the workflows name is one the code throws.
import { Template } from 'aws-cdk-lib/assertions';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FETCH_EVERY_MS } from '../../agent/transport-mqtt.ts';
import { parseStageConfig } from '../../cdk/config.ts';
import { MAX_MESSAGE_BYTES as QUEUE_MESSAGE_LIMIT } from '../../cdk/constructs/ingest-queue.ts';
import { MAX_MESSAGE_BYTES as API_MESSAGE_LIMIT } from '../../lambdas/adapters/sqs-queue.ts';
import { LambdaEnv, PLATFORM_ENV } from '../../lambdas/entry/config.ts';
import { newRebootId } from '../../lambdas/core/ids.ts';
import { rolloutExecutionName } from '../../lambdas/core/rollout.ts';
import { lateRecoveryExecution } from '../../lambdas/handlers/effects.ts';
import { asArray, buildTestApp, policyStatements, REPO_ROOT } from './helpers.ts';

type Resources = Record<string, { Type: string; Properties: any }>;
let built: ReturnType<typeof buildTestApp>;
let resources: Resources;

const fnId = (name: keyof typeof built.stack.functions) =>
  built.stack.resolve((built.stack.functions[name].node.defaultChild as any).logicalId) as string;
const envOf = (name: keyof typeof built.stack.functions): Record<string, unknown> =>
  resources[fnId(name)].Properties.Environment?.Variables ?? {};
const statementsOf = (name: keyof typeof built.stack.functions) => {
  const role = resources[fnId(name)].Properties.Role['Fn::GetAtt'][0];
  return policyStatements(resources).filter((s) => asArray(resources[s.policy].Properties.Roles).some((r: any) => r.Ref === role));
};
const actionsOf = (name: keyof typeof built.stack.functions) => statementsOf(name).flatMap((s) => asArray(s.Action));

beforeAll(() => {
  built = buildTestApp({
    skipBundling: true,
    workflowsDir: join(REPO_ROOT, 'workflows'),
    config: { stage: 'audit', rebootRetentionDays: 30 },
  });
  resources = Template.fromStack(built.stack).toJSON().Resources;
}, 120_000);

describe('configuration follows the writes', () => {
  it('gives every function that writes reboots the stage retention (the TTL it stamps on an ended reboot)', () => {
    const writers = (Object.keys(built.stack.functions) as (keyof typeof built.stack.functions)[]).filter((name) =>
      actionsOf(name).includes('dynamodb:PutItem'),
    );
    expect(writers).toEqual(expect.arrayContaining(['api', 'ingest', 'workflow-await', 'workflow-step', 'reconciler']));
    for (const name of writers) expect(envOf(name).REBOOT_RETENTION_DAYS, name).toBe('30');
  });
});

describe('least privilege: each grant is one the code uses', () => {
  it('grants states:SendTaskHeartbeat to the api alone (agents heartbeat through it: handlers/api.ts)', () => {
    const holders = (Object.keys(built.stack.functions) as (keyof typeof built.stack.functions)[]).filter((name) =>
      actionsOf(name).includes('states:SendTaskHeartbeat'),
    );
    expect(holders).toEqual(['api']);
  });

  it('lets the reconciler describe executions of the reboot workflows only (it never reads a rollout execution)', () => {
    expect(
      Object.keys(envOf('reconciler'))
        .filter((k) => k.endsWith('_WORKFLOW_ARN'))
        .sort(),
    ).toEqual(['HOST_WORKFLOW_ARN', 'XPU_WORKFLOW_ARN']);
    const describe = statementsOf('reconciler').filter((s) => asArray(s.Action).includes('states:DescribeExecution'));
    const text = JSON.stringify(describe.map((s) => s.Resource));
    expect(text).toMatch(/XpuReboot/);
    expect(text).toMatch(/HostReboot/);
    expect(text).not.toMatch(/Rollout/);
  });
});

describe('the workflows name only errors the code throws', () => {
  const files = readdirSync(join(REPO_ROOT, 'workflows')).filter((f) => f.endsWith('.asl.json'));
  const source = (dir: string): string =>
    readdirSync(join(REPO_ROOT, dir), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => readFileSync(join(REPO_ROOT, dir, f), 'utf8'))
      .join('\n');
  const code = source('lambdas');
  /** Error names the functions raise: `name = 'X'` on an Error class, or `error: 'X'` of a SendTaskFailure outcome. */
  const thrown = new Set([...code.matchAll(/(?:readonly name = |\berror: )'([A-Za-z]+)'/g)].map((m) => m[1]));

  function errorNames(states: Record<string, any>, out: Map<string, { retried: boolean; caught: boolean }>) {
    for (const s of Object.values(states)) {
      for (const [field, key] of [
        ['Retry', 'retried'],
        ['Catch', 'caught'],
      ] as const)
        for (const r of s[field] ?? [])
          for (const e of r.ErrorEquals as string[]) out.set(e, { ...(out.get(e) ?? { retried: false, caught: false }), [key]: true });
      for (const b of s.Branches ?? []) errorNames(b.States, out);
      if (s.ItemProcessor) errorNames(s.ItemProcessor.States, out);
    }
    return out;
  }

  it.each(files)('%s: every ErrorEquals is a States./Lambda. error or one the functions throw', (file) => {
    const names = errorNames(JSON.parse(readFileSync(join(REPO_ROOT, 'workflows', file), 'utf8')).States, new Map());
    const unknown = [...names.keys()].filter((e) => !/^(States|Lambda)\./.test(e) && !thrown.has(e));
    expect(unknown).toEqual([]);
  });

  it('retries ConcurrentUpdate (a lost optimistic race) in every workflow that calls the functions', () => {
    expect(thrown.has('ConcurrentUpdate')).toBe(true);
    for (const file of files) {
      const names = errorNames(JSON.parse(readFileSync(join(REPO_ROOT, 'workflows', file), 'utf8')).States, new Map());
      expect(names.get('ConcurrentUpdate')?.retried, file).toBe(true);
    }
  });
});

describe('a long rollout continues in a new execution (25,000 history events per execution)', () => {
  const rollout = JSON.parse(readFileSync(join(REPO_ROOT, 'workflows', 'rollout.asl.json'), 'utf8'));

  it('tells the tick which execution runs, and ends an execution the tick handed over', () => {
    expect(rollout.States.StartNextReboots.Parameters['execution.$']).toBe('$$.Execution.Name');
    const route = rollout.States.RouteRollout.Choices.find((c: any) => c.StringEquals === 'continued');
    expect(rollout.States[route?.Next]?.Type).toBe('Succeed');
  });

  it('lets the workflow-step function (the tick) start the rollout state machine, by its fixed name', () => {
    const env = envOf('workflow-step');
    expect(JSON.stringify(env.ROLLOUT_WORKFLOW_ARN)).toMatch(/:stateMachine:audit-Rollout/);
    const start = statementsOf('workflow-step').filter((s) => asArray(s.Action).includes('states:StartExecution'));
    expect(start).toHaveLength(1);
    expect(JSON.stringify(start[0].Resource)).toMatch(/:stateMachine:audit-Rollout"/);
    expect(JSON.stringify(start[0].Resource)).not.toMatch(/Reboot/);
  });
});

describe('the ingest queue', () => {
  it('sets its message size limit to what the API checks before queuing (not the service default), and so does its DLQ', () => {
    const queues = Object.values(resources).filter((r) => r.Type === 'AWS::SQS::Queue');
    expect(queues).toHaveLength(2);
    for (const q of queues) expect(q.Properties.MaximumMessageSize).toBe(QUEUE_MESSAGE_LIMIT);
    expect(QUEUE_MESSAGE_LIMIT).toBe(API_MESSAGE_LIMIT);
  });
});

describe('alarms', () => {
  it.each(['report', 'watchdog', 'reconciler'] as const)(
    'alarms when the scheduled %s function fails (EventBridge Scheduler drops a failed run after its retries, silently)',
    (name) => {
      const alarms = Object.values(resources).filter(
        (r) =>
          r.Type === 'AWS::CloudWatch::Alarm' &&
          r.Properties.MetricName === 'Errors' &&
          r.Properties.Namespace === 'AWS/Lambda' &&
          (r.Properties.Dimensions ?? []).some((d: any) => d.Name === 'FunctionName' && d.Value?.Ref === fnId(name)),
      );
      expect(alarms).toHaveLength(1);
      expect(alarms[0].Properties.AlarmActions).toHaveLength(1);
    },
  );
});

describe('the HTTP API stage throttle at fleet scale', () => {
  it('lets the fleet’s periodic fetches through by default, with room for wake-ups, results and events', () => {
    // docs/aws-fleet-scale.md: 10,000 hosts with 2 xPUs each, an agent on each, each fetching every 3 minutes.
    const agents = 10_000 * 3;
    const periodic = agents / (FETCH_EVERY_MS / 1000);
    const defaults = parseStageConfig({});
    expect(defaults.apiThrottleRate).toBeGreaterThanOrEqual(2 * periodic);
    // The api function's reserved concurrency serves that rate at well under a second a request.
    expect(defaults.reservedConcurrency.api! * 5).toBeGreaterThanOrEqual(defaults.apiThrottleRate);
  });
});

describe('removal policies of stateful resources', () => {
  it('retains the ingest queue and its DLQ (events not yet processed) in a retained stage, and deletes them in a destroyable one', () => {
    const queues = (rs: Record<string, { Type: string; DeletionPolicy?: string }>) =>
      Object.values(rs)
        .filter((r) => r.Type === 'AWS::SQS::Queue')
        .map((r) => r.DeletionPolicy);
    expect(queues(resources as never)).toEqual(['Retain', 'Retain']);
    const destroyable = buildTestApp({
      skipBundling: true,
      workflowsDir: join(REPO_ROOT, 'workflows'),
      config: { stage: 'gone', removalPolicy: 'destroy' },
    });
    expect(queues(Template.fromStack(destroyable.stack).toJSON().Resources)).toEqual(['Delete', 'Delete']);
  });
});

describe('the DLQ', () => {
  it('alarms days before a parked event expires from it (SQS deletes it silently at the end of its retention)', () => {
    const dlq = Object.entries(resources).find(([, r]) => r.Type === 'AWS::SQS::Queue' && !r.Properties.RedrivePolicy)![0];
    const retention = resources[dlq].Properties.MessageRetentionPeriod as number;
    const expiring = Object.values(resources).filter(
      (r) =>
        r.Type === 'AWS::CloudWatch::Alarm' &&
        r.Properties.MetricName === 'ApproximateAgeOfOldestMessage' &&
        JSON.stringify(r.Properties.Dimensions).includes(dlq),
    );
    expect(expiring).toHaveLength(1);
    expect(expiring[0].Properties.Threshold).toBeLessThanOrEqual(retention - 2 * 86400);
    expect(expiring[0].Properties.Threshold).toBeGreaterThan(86400);
  });
});

describe('each function’s environment is what its config (zod) reads', () => {
  const names = () => Object.keys(built.stack.functions) as (keyof typeof built.stack.functions)[];
  // CloudFormation references (table names, queue URLs, ARNs) stand in as text.
  const asText = (vars: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, typeof v === 'string' ? v : 'ref']));

  it.each([
    'api',
    'authorizer',
    'ingest',
    'workflow-await',
    'workflow-step',
    'report',
    'watchdog',
    'reconciler',
    'iot-authorizer',
  ] as const)('%s: every variable CDK sets is one the config reads, and the config parses it', (name) => {
    expect(names()).toContain(name);
    const vars = asText(envOf(name));
    const unknown = Object.keys(vars).filter((k) => !PLATFORM_ENV.test(k) && !(k in LambdaEnv.shape));
    expect(unknown).toEqual([]);
    expect(() => LambdaEnv.parse(vars)).not.toThrow();
  });

  it('the entries read their environment through the config only (parsed once, frozen)', () => {
    const dir = join(REPO_ROOT, 'lambdas', 'entry');
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'config.ts')) {
      const reads = [...readFileSync(join(dir, file), 'utf8').matchAll(/process\.env\.([A-Z0-9_]+)/g)].map((m) => m[1]);
      expect(
        reads.filter((v) => !PLATFORM_ENV.test(v)),
        file,
      ).toEqual([]);
    }
  });
});

describe('Step Functions limits the local engine does not enforce', () => {
  it('names every execution within 80 characters of [A-Za-z0-9_-] (reboots, late recoveries, rollouts and their successors)', () => {
    const names = [
      newRebootId('xpu', new Date()),
      newRebootId('host', new Date()),
      lateRecoveryExecution(newRebootId('xpu', new Date())),
      rolloutExecutionName(`ro-${'0'.repeat(26)}`, 1),
      rolloutExecutionName(`ro-${'0'.repeat(26)}`, 99_999),
    ];
    for (const n of names) expect(n, n).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
  });

  it('retries Lambda throttling (Lambda.TooManyRequestsException) on every Task that invokes a function', () => {
    for (const file of readdirSync(join(REPO_ROOT, 'workflows')).filter((f) => f.endsWith('.asl.json'))) {
      const states = JSON.parse(readFileSync(join(REPO_ROOT, 'workflows', file), 'utf8')).States as Record<string, any>;
      for (const [name, s] of Object.entries(states)) {
        if (s.Type !== 'Task') continue;
        const retried = (s.Retry ?? []).some((r: any) => r.ErrorEquals.includes('Lambda.TooManyRequestsException') && r.MaxAttempts > 0);
        expect(retried, `${file} ${name}`).toBe(true);
      }
    }
  });
});
