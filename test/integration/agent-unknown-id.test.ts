// An agent with its node's valid token but an agent id the inventory does not have (a mistyped xPU id):
// real `rebootctl agent` processes against the real local stack. The daemon says so in one error line that
// names the id and the node's agents, and keeps trying slowly (not at its unreachable-server backoff);
// `--once` exits 4. A --server that is not the coordinator's API is told apart from an unknown id.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNKNOWN_AGENT_RETRY } from '../../agent/agent.ts';
import {
  childEnv,
  NODE,
  ROOT,
  startAgent,
  startStackProcess,
  tempDir,
  waitFor,
  writeHooks,
  writeInventory,
  type RunningAgent,
  type RunningStack,
} from '../support/stack.ts';

const INVENTORY = `nodes:
  - id: u1
    trusted: true
    agentToken: agent-token-u1
    xpus:
      - id: dpu0
      - id: dpu1
`;

let dir: string;
let stack: RunningStack;
let agent: RunningAgent | undefined;

beforeAll(async () => {
  dir = tempDir('agent-unknown-id');
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await stack?.stop();
});

const records = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: string; msg: string; retryInSeconds?: number });

function once(agentId: string, server: string) {
  return spawnSync(
    NODE,
    [
      join(ROOT, 'cli/rebootctl.js'),
      'agent',
      '--once',
      '--server',
      server,
      '--agent',
      agentId,
      '--hooks',
      writeHooks(join(dir, 'hooks'), {}),
      '--state',
      join(dir, `state-once-${agentId}`),
    ],
    { cwd: ROOT, env: childEnv({ REBOOT_AGENT_TOKEN: 'agent-token-u1' }), encoding: 'utf8', timeout: 30_000 },
  );
}

describe('an agent id the inventory does not have', () => {
  it('the daemon logs one line naming the id and what the inventory has, stays up, and tries again slowly', async () => {
    agent = startAgent({
      url: stack.url,
      agent: 'u1.dpu9',
      token: 'agent-token-u1',
      hooks: writeHooks(join(dir, 'hooks-u1.dpu9'), {}),
      state: join(dir, 'state-u1.dpu9'),
      // The backoff for an unreachable server is short here: the unknown id must not use it.
      args: ['--backoff-initial-seconds', '0.2', '--backoff-max-seconds', '1'],
    });
    const line = await waitFor(
      'the unknown-agent line',
      async () => records(agent!.output()).find((r) => /unknown agent/.test(r.msg)),
      30_000,
      100,
    );
    expect(line.level).toBe('error');
    expect(line.msg).toContain('unknown agent u1.dpu9');
    expect(line.msg).toContain('node u1 has no xPU dpu9 (its agents: u1, u1.dpu0, u1.dpu1)');
    expect(line.msg).toContain('fix --agent (REBOOT_AGENT_ID) or the inventory');
    // Equal jitter on a 30 s first step: at least half of it, whatever --backoff-max-seconds says.
    expect(line.retryInSeconds).toBeGreaterThanOrEqual(UNKNOWN_AGENT_RETRY.initialMs / 2000);
    expect(line.retryInSeconds).toBeLessThanOrEqual(UNKNOWN_AGENT_RETRY.initialMs / 1000);
    // Not mistaken for an unreachable server, and not an exit: systemd's Restart= would only loop it.
    expect(agent.output()).not.toMatch(/server unreachable/);
    expect(agent.proc.exitCode).toBeNull();
  }, 60_000);

  it('--once exits 4 with that line; a --server that is not the API says so instead', () => {
    const res = once('u1.dpu9', stack.url);
    expect(res.status).toBe(4);
    expect(res.stderr).toContain('node u1 has no xPU dpu9 (its agents: u1, u1.dpu0, u1.dpu1)');
    const wrongBase = once('u1.dpu0', `${stack.url}/not-the-api`);
    expect(wrongBase.status).toBe(4);
    expect(wrongBase.stderr).toContain(`${stack.url}/not-the-api is not the coordinator's API`);
    // `agent check` (the unit's ExecStartPre) names the same problem, with what the inventory has.
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'agent-token-u1\n', { mode: 0o600 });
    const check = spawnSync(
      NODE,
      [
        join(ROOT, 'cli/rebootctl.js'),
        'agent',
        'check',
        '--agent',
        'u1.dpu9',
        '--hooks',
        writeHooks(join(dir, 'hooks-check'), {}),
        '--server',
        stack.url,
        '--token-file',
        tokenFile,
      ],
      { cwd: ROOT, env: childEnv(), encoding: 'utf8', timeout: 30_000 },
    );
    expect(check.status).toBe(1);
    expect(check.stdout + check.stderr).toContain(
      "unknown agent u1.dpu9: the server's inventory does not have it (404: node u1 has no xPU dpu9 (its agents: u1, u1.dpu0, u1.dpu1))",
    );
    // The id the inventory has, with the same token: a normal round.
    const ok = once('u1.dpu0', stack.url);
    expect(ok.status).toBe(0);
  }, 60_000);
});
