// The rollout workflow in AWS: its own Standard state machine, started by the API alone, its Tasks on the two workflow functions.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { asArray, buildTestApp, policyStatements, REPO_ROOT } from './helpers.ts';

const { stack } = buildTestApp({ workflowsDir: join(REPO_ROOT, 'workflows'), skipBundling: true });
const template = Template.fromStack(stack);
const resources = template.toJSON().Resources as Record<string, { Type: string; Properties: any }>;
const idOf = (type: string, prefix: string) => Object.keys(resources).find((k) => resources[k].Type === type && k.startsWith(prefix))!;

describe('rollout state machine', () => {
  const machineId = idOf('AWS::StepFunctions::StateMachine', 'WorkflowsRollout');

  it('is a Standard state machine of workflows/rollout.asl.json with both function ARNs substituted', () => {
    expect(machineId).toBeDefined();
    const props = resources[machineId].Properties;
    expect(props.StateMachineType).toBe('STANDARD');
    expect(props.DefinitionString).toBe(readFileSync(join(REPO_ROOT, 'workflows/rollout.asl.json'), 'utf8'));
    expect(Object.keys(props.DefinitionSubstitutions).sort()).toEqual(['AwaitFunctionArn', 'StepFunctionArn']);
    expect(props.DefinitionSubstitutions.StepFunctionArn['Fn::GetAtt'][0]).toMatch(/^WorkflowStepFunction/);
    expect(props.DefinitionSubstitutions.AwaitFunctionArn['Fn::GetAtt'][0]).toMatch(/^WorkflowAwaitFunction/);
  });

  it('is started by the API function (env + states:StartExecution on it), not by ingest', () => {
    const api = resources[idOf('AWS::Lambda::Function', 'ApiFunction')].Properties.Environment.Variables;
    expect(api.ROLLOUT_WORKFLOW_ARN).toEqual({ Ref: machineId });
    const ingest = resources[idOf('AWS::Lambda::Function', 'IngestFunction')].Properties.Environment.Variables;
    expect(ingest.ROLLOUT_WORKFLOW_ARN).toBeUndefined();
    const starts = policyStatements(resources).filter((s) => asArray(s.Action).includes('states:StartExecution'));
    const startersOfRollout = starts.filter((s) => asArray(s.Resource as any).some((r: any) => r.Ref === machineId));
    expect(startersOfRollout.map((s) => asArray(resources[s.policy].Properties.Roles)[0].Ref)).toEqual([
      expect.stringMatching(/^ApiFunctionServiceRole/),
    ]);
  });

  it('routes /v1/rollouts and /v1/fleet behind the authorizer and /ui without it', () => {
    const routes = Object.values(resources)
      .filter((r) => r.Type === 'AWS::ApiGatewayV2::Route')
      .map((r) => r.Properties);
    const byKey = new Map(routes.map((r) => [r.RouteKey, r]));
    for (const key of ['POST /v1/rollouts', 'GET /v1/rollouts', 'GET /v1/rollouts/{id}', 'POST /v1/rollouts/{id}/cancel', 'GET /v1/fleet'])
      expect(byKey.get(key)?.AuthorizationType, key).toBe('CUSTOM');
    expect(byKey.get('GET /ui')?.AuthorizationType).toBe('NONE');
  });
});
