// Contract 7.2 boot reports against the real stack and real agents: a changed boot id at start
// becomes `xpu.ready` / `host.ready` from that agent; the first start and a restart in the same boot say nothing.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  OPERATOR_TOKEN,
  api,
  startAgent,
  startStackProcess,
  tempDir,
  waitFor,
  writeHooks,
  writeInventory,
  type RunningStack,
} from '../support/stack.ts';

const INVENTORY = `
nodes:
  - id: node-a
    trusted: true
    agentToken: host-a-token-boot
    xpus: [{ id: dpu0, agentToken: dpu-a-token-boot }]
  - id: node-h
    agentToken: host-h-token-boot
`;

let dir: string;
let stack: RunningStack;
let hooks: string;

beforeAll(async () => {
  dir = tempDir('boot-report');
  hooks = writeHooks(join(dir, 'hooks'), {});
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
});

afterAll(async () => {
  await stack?.stop();
});

/** Runs the agent until it has started polling (it logs so), then stops it. */
async function startOnce(agent: string, token: string, bootId: string) {
  const file = join(dir, `boot_id-${agent}`);
  writeFileSync(file, `${bootId}\n`);
  const a = startAgent({ url: stack.url, agent, token, hooks, state: join(dir, 'state'), env: { REBOOT_BOOT_ID_FILE: file } });
  try {
    await waitFor(`${agent} to settle its boot report`, async () => /boot report: /.test(a.output()));
  } finally {
    await a.stop();
  }
  return a.output();
}

async function reboot(id: string) {
  return (await api(stack.url, `/v1/reboots/${id}`, { token: OPERATOR_TOKEN })).json;
}

describe('boot reports', () => {
  it("an xPU agent started in a new boot posts xpu.ready itself, which ends its xPU's reboot", async () => {
    // First start ever: only remembers the boot.
    const first = await startOnce('node-a.dpu0', 'dpu-a-token-boot', 'boot-1');
    expect(first).toMatch(/boot report: first start/);
    const pending = await api(stack.url, '/v1/events', {
      token: 'dpu-a-token-boot',
      body: { id: 'p1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0', data: { reason: 'fw' } },
    });
    expect(pending.status).toBe(202);
    const r = await waitFor('the reboot', async () =>
      (await api(stack.url, '/v1/reboots?node=node-a', { token: OPERATOR_TOKEN })).json.items.find((x: any) => x.xpu === 'dpu0'),
    );
    // A restart in the same boot says nothing.
    const same = await startOnce('node-a.dpu0', 'dpu-a-token-boot', 'boot-1');
    expect(same).toMatch(/boot report: same boot/);
    expect((await reboot(r.id)).readyAt).toBeUndefined();
    // The xPU rebooted: its agent reports the return, though no BMC said anything.
    const back = await startOnce('node-a.dpu0', 'dpu-a-token-boot', 'boot-2');
    expect(back).toMatch(/reported this boot/);
    const after = await waitFor('xpu.ready applied', async () => ((await reboot(r.id)).readyAt ? reboot(r.id) : undefined));
    expect(after.history.find((h: any) => h.detail.includes('event boot-node-a.dpu0-boot-2)'))?.by).toBe('agent:node-a.dpu0');
    expect(readFileSync(join(dir, 'state', 'node-a.dpu0', 'boot-id'), 'utf8').trim()).toBe('boot-2');
  });

  it('a host agent started in a new boot posts host.ready for its host reboot', async () => {
    await startOnce('node-h', 'host-h-token-boot', 'h-boot-1');
    const req = await api(stack.url, '/v1/events', {
      token: 'host-h-token-boot',
      body: { id: 'h1', type: 'host.reboot.requested', node: 'node-h', data: { method: 'shell' } },
    });
    expect(req.status).toBe(202);
    const hr = await waitFor('the host reboot to wait for the host', async () =>
      (await api(stack.url, '/v1/reboots?node=node-h', { token: OPERATOR_TOKEN })).json.items.find(
        (x: any) => x.kind === 'host' && x.status === 'rebooting',
      ),
    );
    expect(hr.hostReadyAt).toBeUndefined();
    const out = await startOnce('node-h', 'host-h-token-boot', 'h-boot-2');
    expect(out).toMatch(/reported this boot/);
    const after = await waitFor('host.ready applied', async () => ((await reboot(hr.id)).hostReadyAt ? reboot(hr.id) : undefined));
    expect(after.history.find((h: any) => h.detail.includes('event boot-node-h-h-boot-2)'))?.by).toBe('agent:node-h');
  });
});
