// Builds the CDK app in-process for assertion tests, with cdk.json's feature flags as the CLI would pass them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp, type BuildAppProps, type BuiltApp } from '../../cdk/app.ts';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const FIXTURE_WORKFLOWS = join(REPO_ROOT, 'test', 'cdk', 'fixtures', 'workflows');

export function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')).context;
}

export interface TestBuildOptions extends Omit<BuildAppProps, 'appProps'> {
  /** Skip esbuild (CDK's own `aws:cdk:bundling-stacks` switch): for tests about anything but the code assets. */
  skipBundling?: boolean;
  context?: Record<string, unknown>;
}

export function buildTestApp(options: TestBuildOptions = {}): BuiltApp {
  const { skipBundling, context, ...props } = options;
  return buildApp({
    workflowsDir: FIXTURE_WORKFLOWS,
    ...props,
    appProps: {
      context: { ...cdkJsonContext(), ...(skipBundling ? { 'aws:cdk:bundling-stacks': [] } : {}), ...context },
    },
  });
}

type Statement = { Effect: string; Action: string | string[]; Resource: unknown };

/** Every IAM statement of the template, with the logical id of the policy holding it. */
export function policyStatements(resources: Record<string, { Type: string; Properties: any }>): (Statement & { policy: string })[] {
  return Object.entries(resources)
    .filter(([, r]) => r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy')
    .flatMap(([id, r]) => (r.Properties.PolicyDocument.Statement as Statement[]).map((s) => ({ ...s, policy: id })));
}

export const asArray = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);
