// `npm run smoke` against the local stack: two real agents (on the push channel), one xPU reboot to completed.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  childEnv,
  NODE,
  OPERATOR_TOKEN,
  ROOT,
  startStackProcess,
  tempDir,
  waitFor,
  writeInventory,
  type RunningStack,
} from '../support/stack.ts';

let stack: RunningStack;

beforeAll(async () => {
  const dir = tempDir('smoke');
  const nodesFile = writeInventory(
    dir,
    'nodes:\n  - id: smoke-node\n    trusted: true\n    agentToken: smoke-agent-token\n    xpus: [{ id: dpu0 }]\n',
  );
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

it('drives one xPU reboot to completed with a host and an xPU agent', async () => {
  // Printed right after the ready line.
  const mqttUrl = await waitFor(
    'the push channel line',
    async () => /push channel \(MQTT\) at (mqtt:\/\/\S+)/.exec(stack.output())?.[1],
    10_000,
  );
  const proc = spawn(
    NODE,
    [
      join(ROOT, 'scripts/smoke.ts'),
      '--url',
      stack.url,
      '--operator-token',
      OPERATOR_TOKEN,
      '--node',
      'smoke-node',
      '--agent-token',
      'smoke-agent-token',
      '--mqtt-url',
      mqttUrl!,
      '--timeout',
      '90',
    ],
    { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((r) => proc.once('exit', r));
  expect(code, out).toBe(0);
  expect(out).toMatch(/smoke ok: reboot \S+ completed/);
  expect(out).toContain('restore-pcie on smoke-node: succeeded');
}, 120_000);
