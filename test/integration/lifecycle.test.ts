// `npm start`'s life: clean SIGTERM with nothing lost, one stack per DATA_DIR, bad inventories refused.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  api,
  childEnv,
  freePort,
  NODE,
  OPERATOR_TOKEN,
  ROOT,
  startStackProcess,
  tempDir,
  waitFor,
  writeInventory,
  type RunningStack,
} from '../support/stack.ts';

const INVENTORY = `
nodes:
  - id: node-a
    trusted: true
    agentToken: agent-token-node-a
    xpus: [{ id: dpu0 }]
`;

const running: RunningStack[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop('SIGKILL')));
});

describe('local stack lifecycle', () => {
  it('stops cleanly on SIGTERM and processes after restart what it accepted before', async () => {
    const dir = tempDir('life');
    const nodesFile = writeInventory(dir, INVENTORY);
    const dataDir = join(dir, 'data');
    const port = String(await freePort());
    const first = await startStackProcess({ dataDir, nodesFile, env: { PORT: port } });
    running.push(first);
    const posted = await api(first.url, '/v1/events', {
      token: 'agent-token-node-a',
      body: { id: 't-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0' },
    });
    expect(posted.status).toBe(202);
    const code = await first.stop('SIGTERM');
    expect(code, first.output()).toBe(0);
    expect(first.output()).toContain('stopped');

    const second = await startStackProcess({ dataDir, nodesFile, env: { PORT: port } });
    running.push(second);
    const reboot = await waitFor('the reboot accepted before SIGTERM', async () => {
      const items = (await api(second.url, '/v1/reboots', { token: OPERATOR_TOKEN })).json.items;
      return items.length === 1 && items[0].status === 'preparing' ? items[0] : undefined;
    });
    expect(reboot.node).toBe('node-a');
  });

  it('refuses a second stack on the same DATA_DIR', async () => {
    const dir = tempDir('lock');
    const nodesFile = writeInventory(dir, INVENTORY);
    const first = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile });
    running.push(first);
    const second = spawnSync(NODE, [join(ROOT, 'local/main.ts')], {
      env: childEnv({ PORT: '0', DATA_DIR: join(dir, 'data'), NODES_FILE: nodesFile, OPERATOR_TOKEN }),
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(second.status).not.toBe(0);
    expect(second.stderr).toMatch(/in use by process/);
    expect((await api(first.url, '/healthz')).status).toBe(200);
  });

  it('does not start with an unknown inventory key, and says where it is', () => {
    const dir = tempDir('badinv');
    const nodesFile = writeInventory(dir, INVENTORY.replace('    trusted: true\n', '    trusted: true\n    colour: blue\n'));
    const res = spawnSync(NODE, [join(ROOT, 'local/main.ts')], {
      env: childEnv({ PORT: '0', DATA_DIR: join(dir, 'data'), NODES_FILE: nodesFile, OPERATOR_TOKEN }),
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(new RegExp(`${nodesFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5: unknown key 'colour'`));
  });
});
