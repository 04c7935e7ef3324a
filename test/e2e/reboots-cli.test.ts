// `rebootctl reboots list|show` against a real stack: the operator's first look at what is going on.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
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
let id: string;

beforeAll(async () => {
  const dir = tempDir('reboots-cli');
  stack = await startStackProcess({
    dataDir: join(dir, 'data'),
    nodesFile: writeInventory(
      dir,
      'nodes:\n  - id: node-a\n    trusted: true\n    agentToken: agent-token-node-a\n    xpus: [{ id: dpu0 }]\n',
    ),
  });
  await api(stack.url, '/v1/events', {
    token: 'agent-token-node-a',
    body: { id: 'cli-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0', data: { reason: 'fw' } },
  });
  id = await waitFor('the reboot', async () => (await api(stack.url, '/v1/reboots', { token: OPERATOR_TOKEN })).json.items[0]?.id);
  await api(stack.url, `/v1/reboots/${id}/extensions`, { token: 'agent-token-node-a', body: { seconds: 60, reason: 'slow drain' } });
});

afterAll(async () => {
  await stack?.stop();
});

function cli(...args: string[]) {
  return spawnSync(NODE, [join(ROOT, 'cli/rebootctl.js'), 'reboots', ...args], {
    env: childEnv({ REBOOT_OPERATOR_TOKEN: OPERATOR_TOKEN }),
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('rebootctl reboots', () => {
  it('lists reboots newest first, filtered by node', () => {
    const res = cli('list', '--server', stack.url, '--node', 'node-a');
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toMatch(new RegExp(`${id}\\s+xpu\\s+node-a\\s+dpu0\\s+extended`));
    const json = JSON.parse(cli('list', '--server', stack.url, '--json').stdout);
    expect(json.items[0].id).toBe(id);
  });

  it('shows one reboot with its extension and history', () => {
    const res = cli('show', id, '--server', stack.url);
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toContain('extension +60s of 60s asked');
    expect(res.stdout).toMatch(/history:\n\s+\S+\s+notified/);
  });

  it('shows who did each step of the history, and what a failed command said (docs/operations.md)', async () => {
    const cmds = (await api(stack.url, '/v1/agents/node-a/commands?wait=0', { token: 'agent-token-node-a' })).json;
    const migrate = cmds.find((c: { type: string }) => c.type === 'migrate-workloads');
    await api(stack.url, `/v1/agents/node-a/commands/${migrate.id}`, {
      token: 'agent-token-node-a',
      body: { status: 'failed', output: 'draining\nkubectl drain: node busy' },
    });
    const res = cli('show', id, '--server', stack.url);
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/notified\s+agent:node-a\.dpu0\s+xPU dpu0 announced/);
    expect(res.stdout).toMatch(/extended\s+agent:node-a\s+granted 60s/);
    expect(res.stdout).toMatch(/migrate-workloads\s+node-a\s+failed\n\s+draining\n\s+kubectl drain: node busy/);
  });

  it('says who forced a reboot an operator hurried, instead of calling it forced at the deadline', async () => {
    const forced = await api(stack.url, `/v1/reboots/${id}/force`, { token: OPERATOR_TOKEN, body: { reason: 'hurry' } });
    expect(forced.status).toBe(200);
    const res = cli('show', id, '--server', stack.url);
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout.split('\n')[0]).toMatch(/: rebooting \(forced by operator\)$/);
    // The list marks it with a `!`, and says what the mark means.
    const list = cli('list', '--server', stack.url, '--node', 'node-a');
    expect(list.stdout).toMatch(new RegExp(`${id}\\s+xpu\\s+node-a\\s+dpu0\\s+rebooting!`));
    expect(list.stdout).toMatch(/^!: forced \(at its deadline or by an operator: rebootctl reboots show says which\)$/m);
  });

  it('pages with --cursor, the cursor a page prints when there is more', async () => {
    // A host reboot request beside the xPU reboot: a second reboot of node-a (allowed or denied, it is listed).
    await api(stack.url, '/v1/events', {
      token: 'agent-token-node-a',
      body: { id: 'cli-host-1', type: 'host.reboot.requested', node: 'node-a', data: { method: 'shell' } },
    });
    await waitFor('two reboots', async () => (await api(stack.url, '/v1/reboots', { token: OPERATOR_TOKEN })).json.items.length >= 2);
    const idsOf = (out: string) =>
      out
        .split('\n')
        .filter((l) => /^(xr|hr)-/.test(l))
        .map((l) => l.split(' ')[0]);
    const first = cli('list', '--server', stack.url, '--limit', '1');
    expect(first.status, first.stderr).toBe(0);
    const cursor = first.stdout.match(/\(more: --cursor (\S+)\)/)?.[1];
    expect(cursor, first.stdout).toBeDefined();
    const second = cli('list', '--server', stack.url, '--limit', '1', '--cursor', cursor!);
    expect(second.status, second.stderr).toBe(0);
    const all = JSON.parse(cli('list', '--server', stack.url, '--json').stdout).items.map((r: { id: string }) => r.id);
    expect([...idsOf(first.stdout), ...idsOf(second.stdout)]).toEqual(all.slice(0, 2));
  });

  it('says why when the server refuses, and exits non-zero', () => {
    const res = spawnSync(
      NODE,
      [join(ROOT, 'cli/rebootctl.js'), 'reboots', 'show', 'xr-nope', '--server', stack.url, '--token', 'wrong-token'],
      {
        env: childEnv(),
        encoding: 'utf8',
      },
    );
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/401 Unauthorized/);
    expect(cli('show', 'xr-nope', '--server', stack.url).stderr).toMatch(/404 NotFound/);
  });
});
