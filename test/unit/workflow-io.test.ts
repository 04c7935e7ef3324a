// lambdas/core/workflow-io.ts is the one home of what goes into and out of each workflow: its kinds are
// the ASL files, its env var names are CDK's, and every Task payload in the ASL is one its schemas take.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { workflowArnEnvName as cdkWorkflowArnEnvName } from '../../cdk/constructs/workflows.ts';
import * as ingest from '../../lambdas/handlers/ingest.ts';
import {
  AwaitInput,
  hostWorkflowInput,
  RolloutAwaitInput,
  RolloutFailInput,
  RolloutTickInput,
  StepInput,
  WORKFLOW_ARN_ENV,
  WORKFLOW_KINDS,
  WorkflowArnEnv,
  workflowArnEnvName,
  workflowArnsFrom,
  xpuWorkflowInput,
} from '../../lambdas/core/workflow-io.ts';
import { ROOT } from '../support/stack.ts';

const WORKFLOWS = join(ROOT, 'workflows');
const aslFiles = readdirSync(WORKFLOWS)
  .filter((f) => f.endsWith('.asl.json'))
  .sort();

/** Every Task state of a definition, nested ones (Parallel branches, Map iterators) included. */
function tasks(states: Record<string, any>): [string, any][] {
  return Object.entries(states).flatMap(([name, s]) => [
    ...(s.Type === 'Task' ? [[name, s] as [string, any]] : []),
    ...(s.Branches ?? []).flatMap((b: any) => tasks(b.States)),
    ...(s.ItemProcessor ? tasks(s.ItemProcessor.States) : s.Iterator ? tasks(s.Iterator.States) : []),
  ]);
}

/** The payload a Task hands its function, and which function (await: callback Tasks; step: the others). */
function payloadOf(task: any): { fn: 'await' | 'step'; payload: Record<string, unknown> } {
  const p = task.Parameters ?? {};
  if (p.FunctionName === '${AwaitFunctionArn}') return { fn: 'await', payload: p.Payload };
  if (p.FunctionName === '${StepFunctionArn}') return { fn: 'step', payload: p.Payload };
  if (task.Resource === '${StepFunctionArn}') return { fn: 'step', payload: p };
  if (task.Resource === '${AwaitFunctionArn}') return { fn: 'await', payload: p };
  throw new Error(`a Task calling neither workflow function: ${JSON.stringify(task).slice(0, 200)}`);
}

function schemaFor(fn: 'await' | 'step', action: unknown): z.ZodObject {
  if (action === 'rollout-tick') return RolloutTickInput;
  if (action === 'rollout-await') return RolloutAwaitInput;
  if (action === 'rollout-fail') return RolloutFailInput;
  return fn === 'await' ? AwaitInput : StepInput;
}

describe('workflow kinds and their ARN variables', () => {
  it('has one kind per workflows/*.asl.json', () => {
    expect(aslFiles.map((f) => f.replace(/\.asl\.json$/, ''))).toEqual([...WORKFLOW_KINDS].sort());
  });

  it('names the ARN variables by the one rule CDK uses, and the runtime reads exactly those', () => {
    expect(cdkWorkflowArnEnvName).toBe(workflowArnEnvName);
    for (const kind of WORKFLOW_KINDS) expect(WORKFLOW_ARN_ENV[kind], kind).toBe(workflowArnEnvName(kind));
    expect(Object.keys(WorkflowArnEnv.shape).sort()).toEqual(Object.values(WORKFLOW_ARN_ENV).sort());
    const env = WorkflowArnEnv.parse({ XPU_WORKFLOW_ARN: 'arn:x', ROLLOUT_WORKFLOW_ARN: 'arn:r', XPU_REBOOT_WORKFLOW_ARN: 'ignored' });
    expect(workflowArnsFrom(env)).toEqual({ 'xpu-reboot': 'arn:x', 'host-reboot': '', rollout: 'arn:r' });
  });

  it('ingest still exports the start inputs it used to define', () => {
    expect(ingest.xpuWorkflowInput).toBe(xpuWorkflowInput);
    expect(ingest.hostWorkflowInput).toBe(hostWorkflowInput);
  });
});

describe.each(aslFiles)('the Task payloads of %s', (file) => {
  const definition = JSON.parse(readFileSync(join(WORKFLOWS, file), 'utf8'));
  const all = tasks(definition.States);

  it('has Tasks', () => expect(all.length).toBeGreaterThan(0));

  it('name only fields the schemas know, with literal values the schemas accept', () => {
    for (const [name, task] of all) {
      const { fn, payload } = payloadOf(task);
      const schema = schemaFor(fn, payload.action);
      const fields = Object.keys(payload).map((k) => k.replace(/\.\$$/, ''));
      const unknown = fields.filter((f) => !(f in schema.shape));
      expect(unknown, `${file} ${name}: fields no ${fn} schema takes`).toEqual([]);
      for (const [k, v] of Object.entries(payload)) {
        if (k.endsWith('.$')) continue;
        const res = (schema.shape as Record<string, z.ZodType>)[k].safeParse(v);
        expect(res.success, `${file} ${name}: ${k} = ${JSON.stringify(v)}`).toBe(true);
      }
      const required = Object.entries(schema.shape as Record<string, z.ZodType>)
        .filter(([, s]) => !s.safeParse(undefined).success)
        .map(([k]) => k);
      expect(
        required.filter((k) => !fields.includes(k)),
        `${file} ${name}: required fields missing`,
      ).toEqual([]);
    }
  });
});
