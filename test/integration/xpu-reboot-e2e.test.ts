// The walking skeleton end to end: real stack process, two real agents, one xPU reboot; and kill -9 twice.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  api,
  freePort,
  OPERATOR_TOKEN,
  startAgent,
  startStackProcess,
  tempDir,
  waitFor,
  writeHooks,
  writeInventory,
  type RunningAgent,
  type RunningStack,
} from '../support/stack.ts';

const INVENTORY = `
policy:
  xpuReboot:
    noticeSeconds: 120
    maxExtensionSeconds: 600
    maxExtensions: 2
nodes:
  - id: node-a
    rack: r1
    zone: z1
    tenant: t1
    trusted: true
    bmcToken: bmc-token-node-a
    agentToken: agent-token-node-a
    xpus:
      - id: dpu0
        persistentPower: false
`;

const HOST_HOOKS = ['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads'];

function hooksLoggingTo(dir: string, log: string, names: string[]): string {
  return writeHooks(dir, Object.fromEntries(names.map((n) => [n, `cat > /dev/null\necho "${n} $REBOOT_ID $COMMAND_ID" >> ${log}`])));
}

function ran(log: string): string[] {
  return existsSync(log)
    ? readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(' ')[0])
    : [];
}

let stack: RunningStack | undefined;
const agents: RunningAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  await stack?.stop();
  stack = undefined;
});

const agentToken = 'agent-token-node-a';

/** The host's agent and its xPU's agent, each hook logging to `log`; state under `dir` (kept across a stack restart). */
function startBothAgents(url: string, dir: string, log: string): void {
  agents.push(
    startAgent({
      url,
      agent: 'node-a',
      token: agentToken,
      hooks: hooksLoggingTo(join(dir, 'host-hooks'), log, HOST_HOOKS),
      state: join(dir, 'host-state'),
    }),
  );
  agents.push(
    startAgent({
      url,
      agent: 'node-a.dpu0',
      token: agentToken,
      hooks: hooksLoggingTo(join(dir, 'xpu-hooks'), log, ['proceed-reboot']),
      state: join(dir, 'xpu-state'),
    }),
  );
}

async function rebootOf(url: string) {
  const list = await api(url, '/v1/reboots?node=node-a', { token: OPERATOR_TOKEN });
  return list.json?.items?.[0];
}

describe('xPU reboot through the real local stack', () => {
  it('runs every command in order and completes', async () => {
    const dir = tempDir('e2e');
    const log = join(dir, 'hooks.log');
    stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
    const url = stack.url;
    startBothAgents(url, dir, log);

    const posted = await api(url, '/v1/events', {
      token: agentToken,
      body: { id: 'ev-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0', data: { reason: 'firmware update' } },
    });
    expect(posted.status).toBe(202);

    await waitFor('proceed-reboot on the xPU', async () => ran(log).includes('proceed-reboot'));
    const during = await rebootOf(url);
    expect(during.status).toBe('rebooting');
    expect(during.forced).toBe(false);

    expect(
      (await api(url, '/v1/events', { token: agentToken, body: { id: 'ev-2', type: 'xpu.down', node: 'node-a', xpu: 'dpu0' } })).status,
    ).toBe(202);
    expect(
      (await api(url, '/v1/events', { token: agentToken, body: { id: 'ev-3', type: 'xpu.ready', node: 'node-a', xpu: 'dpu0' } })).status,
    ).toBe(202);

    const done = await waitFor('reboot completed', async () => {
      const r = await rebootOf(url);
      return r?.status === 'completed' ? r : undefined;
    });
    expect(ran(log)).toEqual(['migrate-workloads', 'protect-pcie', 'proceed-reboot', 'restore-pcie', 'resume-workloads']);
    const phases = done.history.map((h: { phase: string }) => h.phase);
    expect(phases[0]).toBe('notified');
    expect(phases).toContain('rebooting');
    expect(phases).toContain('xpu-ready');
    expect(phases.at(-1)).toBe('completed');
    const detail = await api(url, `/v1/reboots/${done.id}`, { token: agentToken });
    expect(detail.status).toBe(200);
    expect(detail.json).toMatchObject({ id: done.id, kind: 'xpu', node: 'node-a', xpu: 'dpu0', status: 'completed', extensions: [] });
    expect(detail.text).not.toContain('taskToken');
  });

  it('loses nothing and runs no command twice across kill -9 right after a 202 and mid-reboot', async () => {
    const dir = tempDir('kill9');
    const log = join(dir, 'hooks.log');
    const nodesFile = writeInventory(dir, INVENTORY);
    const port = String(await freePort());
    const dataDir = join(dir, 'data');
    stack = await startStackProcess({ dataDir, nodesFile, env: { PORT: port } });
    const url = stack.url;

    // Killed right after the 202: the event must still be processed after the restart.
    const posted = await api(url, '/v1/events', {
      token: agentToken,
      body: { id: 'k-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0' },
    });
    expect(posted.status).toBe(202);
    await stack.stop('SIGKILL');

    stack = await startStackProcess({ dataDir, nodesFile, env: { PORT: port } });
    startBothAgents(url, dir, log);
    await waitFor('proceed-reboot after the first restart', async () => ran(log).includes('proceed-reboot'));

    // Killed mid-reboot, while the workflow waits for xpu.ready.
    await stack.stop('SIGKILL');
    stack = await startStackProcess({ dataDir, nodesFile, env: { PORT: port } });
    expect(
      (await api(url, '/v1/events', { token: agentToken, body: { id: 'k-2', type: 'xpu.ready', node: 'node-a', xpu: 'dpu0' } })).status,
    ).toBe(202);

    const done = await waitFor(
      'reboot completed after two kills',
      async () => {
        const r = await rebootOf(url);
        return r?.status === 'completed' ? r : undefined;
      },
      45_000,
    );
    expect(done.node).toBe('node-a');
    expect(ran(log)).toEqual(['migrate-workloads', 'protect-pcie', 'proceed-reboot', 'restore-pcie', 'resume-workloads']);
    const all = await api(url, '/v1/reboots', { token: OPERATOR_TOKEN });
    expect(all.json.items).toHaveLength(1);
  });
});
