// Workflow discovery: every ASL file becomes a state machine, every placeholder must be one CDK can fill.
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { aslFilesIn, pascalName, placeholdersOf, workflowArnEnvName } from '../../cdk/constructs/workflows.ts';
import { PLACEHOLDER_FUNCTIONS } from '../../cdk/stacks/coordinator-stack.ts';
import { buildTestApp, REPO_ROOT } from './helpers.ts';

const REAL_WORKFLOWS = join(REPO_ROOT, 'workflows');
const realFiles = aslFilesIn(REAL_WORKFLOWS);
const emptyDir = mkdtempSync(join(tmpdir(), 'no-workflows-'));
afterAll(() => rmSync(emptyDir, { recursive: true, force: true }));

describe('names derived from the file name', () => {
  it('names state machines and their ingest env vars after the file stem', () => {
    expect(pascalName('xpu-reboot')).toBe('XpuReboot');
    expect(pascalName('host-reboot')).toBe('HostReboot');
    expect(workflowArnEnvName('xpu-reboot')).toBe('XPU_WORKFLOW_ARN');
    expect(workflowArnEnvName('host-reboot')).toBe('HOST_WORKFLOW_ARN');
    expect(workflowArnEnvName('drain-rack')).toBe('DRAIN_RACK_WORKFLOW_ARN');
  });

  it('finds each placeholder once', () => {
    expect(placeholdersOf('{"a":"${StepFunctionArn}","b":"${AwaitFunctionArn}","c":"${StepFunctionArn}"}')).toEqual([
      'AwaitFunctionArn',
      'StepFunctionArn',
    ]);
  });
});

describe('the shipped workflows/ folder', () => {
  it('is there: the repository ships its workflows', () => {
    expect(realFiles.map((f) => f.slice(REAL_WORKFLOWS.length + 1))).toEqual(
      expect.arrayContaining(['xpu-reboot.asl.json', 'host-reboot.asl.json']),
    );
  });

  it('uses only placeholders CDK substitutes', () => {
    for (const file of realFiles) {
      const unknown = placeholdersOf(readFileSync(file, 'utf8')).filter((p) => !(p in PLACEHOLDER_FUNCTIONS));
      expect(unknown, file).toEqual([]);
    }
  });

  it('becomes one state machine per file, each with its substitutions', () => {
    const { stack } = buildTestApp({ workflowsDir: REAL_WORKFLOWS, skipBundling: true });
    const machines = Object.values(Template.fromStack(stack).findResources('AWS::StepFunctions::StateMachine'));
    expect(machines).toHaveLength(realFiles.length);
    for (const file of realFiles) {
      const text = readFileSync(file, 'utf8');
      const machine = machines.find((m) => m.Properties.DefinitionString === text);
      expect(machine, file).toBeDefined();
      expect(Object.keys(machine!.Properties.DefinitionSubstitutions).sort()).toEqual(placeholdersOf(text));
    }
  });
});

describe('refusals', () => {
  it('refuses an ASL file with a placeholder no function fills', () => {
    const dir = join(REPO_ROOT, 'test', 'cdk', 'fixtures', 'bad-workflows');
    expect(() => buildTestApp({ workflowsDir: dir, skipBundling: true })).toThrow(
      /rogue\.asl\.json: no substitution for \$\{AdminFunctionArn\}/,
    );
  });

  it('warns, and starts nothing, when a workflow the ingest function expects is missing', () => {
    const { stack } = buildTestApp({ workflowsDir: emptyDir, skipBundling: true });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 0);
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('xpu-reboot.asl.json is missing'));
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(template.toJSON())).not.toContain('states:StartExecution');
  });
});
