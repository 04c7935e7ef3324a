// The host reboot workflow through the real local stack process with real agents: deny, then free, return, re-provision.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  api,
  NODE,
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

// Short bounds: real time passes here. dpu0 loses power with the host, dpu1 keeps it.
const INVENTORY = `
policy:
  xpuReboot:
    noticeSeconds: 20
    heartbeatSeconds: 5
    recoverySeconds: 20
    commandSeconds: 10
  hostReboot:
    denyWhile: [xpu-rebooting]
    returnSeconds: 20
    commandSeconds: 10
    heartbeatSeconds: 5
nodes:
  - id: node-h
    tenant: t1
    trusted: true
    agentToken: agent-token-node-h
    xpus:
      - id: dpu0
        persistentPower: false
      - id: dpu1
        persistentPower: true
  - id: node-g
    tenant: t1
    agentToken: agent-token-node-g
    policy:
      hostReboot:
        returnSeconds: 3
    xpus:
      - id: dpu0
        persistentPower: true
`;
const token = 'agent-token-node-h';
const HOST_HOOKS = ['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads', 'deny-host-reboot'];
const XPU_HOOKS = ['proceed-reboot', 'free-host-context', 'reprovision'];

/** Reads the command JSON on stdin and prints its args, compact (the project's own Node: no jq needed). */
const PRINT_ARGS = `${NODE} -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.stringify(JSON.parse(s).args)))'`;

/** Each hook logs its name, agent, reboot and the command's args (from the command JSON on stdin). */
function loggingHooks(dir: string, log: string, names: string[]): string {
  return writeHooks(
    dir,
    Object.fromEntries(names.map((n) => [n, `args=$(${PRINT_ARGS})\necho "${n} $NODE_ID\${XPU_ID:+.$XPU_ID} $REBOOT_ID $args" >> ${log}`])),
  );
}

function ran(log: string): Array<{ hook: string; agent: string; reboot: string; args: any }> {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [hook, agent, reboot, ...rest] = l.split(' ');
      return { hook, agent, reboot, args: JSON.parse(rest.join(' ')) };
    });
}

let stack: RunningStack | undefined;
const agents: RunningAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  await stack?.stop();
  stack = undefined;
});

const post = (url: string, body: Record<string, unknown>) => api(url, '/v1/events', { token, body });
const reboot = async (url: string, id: string) => (await api(url, `/v1/reboots/${id}`, { token: OPERATOR_TOKEN })).json;
const until = (url: string, id: string, status: string) =>
  waitFor(`reboot ${id} ${status}`, async () => {
    const r = await reboot(url, id);
    return r?.status === status ? r : undefined;
  });
async function newest(url: string, kind: string) {
  return waitFor(`a ${kind} reboot`, async () =>
    (await api(url, '/v1/reboots?node=node-h', { token })).json.items.find((r: any) => r.kind === kind),
  );
}

describe('host reboot through the real local stack', () => {
  it('denies while an xPU reboots, then frees, waits for the host and the unpowered xPU, and re-provisions for the next tenant', async () => {
    const dir = tempDir('host-e2e');
    const log = join(dir, 'hooks.log');
    stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
    const { url } = stack;
    agents.push(startAgent({ url, agent: 'node-h', token, hooks: loggingHooks(join(dir, 'h'), log, HOST_HOOKS), state: join(dir, 's-h') }));
    for (const x of ['dpu0', 'dpu1'])
      agents.push(
        startAgent({ url, agent: `node-h.${x}`, token, hooks: loggingHooks(join(dir, x), log, XPU_HOOKS), state: join(dir, `s-${x}`) }),
      );

    // 1. An xPU reboot runs: the host reboot is denied, the POST is still 202, the host agent hears why.
    expect((await post(url, { id: 'x-1', type: 'xpu.reboot.pending', node: 'node-h', xpu: 'dpu0' })).status).toBe(202);
    const xr = await newest(url, 'xpu');
    await waitFor('proceed-reboot', async () => ran(log).some((r) => r.hook === 'proceed-reboot'));
    expect((await post(url, { id: 'h-1', type: 'host.reboot.requested', node: 'node-h', data: { method: 'shell' } })).status).toBe(202);
    const denied = await until(url, (await newest(url, 'host')).id, 'denied');
    expect(denied.denyReason).toMatch(/xpu-rebooting: dpu0/);
    const deny = await waitFor('deny-host-reboot ran', async () => ran(log).find((r) => r.hook === 'deny-host-reboot'));
    expect(deny).toMatchObject({ agent: 'node-h', reboot: denied.id, args: { reason: denied.denyReason } });

    // The xPU comes back; its reboot completes.
    await post(url, { id: 'x-2', type: 'xpu.ready', node: 'node-h', xpu: 'dpu0' });
    await until(url, xr.id, 'completed');

    // 2. Now the host may reboot: free-host-context on both xPUs.
    await post(url, { id: 'h-2', type: 'host.reboot.requested', node: 'node-h', data: { method: 'ipmi' } });
    const hr = await waitFor('the allowed host reboot', async () =>
      (await api(url, '/v1/reboots?node=node-h', { token })).json.items.find((r: any) => r.kind === 'host' && r.status !== 'denied'),
    );
    await waitFor(
      'free-host-context on both xPUs',
      async () => ran(log).filter((r) => r.hook === 'free-host-context' && r.reboot === hr.id).length === 2,
    );
    await waitFor('waiting for the host', async () => (await reboot(url, hr.id)).status === 'rebooting');

    // The host goes down and comes back for another tenant; dpu0 lost power and boots again.
    await post(url, { id: 'h-3', type: 'host.down', node: 'node-h' });
    await post(url, { id: 'h-4', type: 'host.ready', node: 'node-h', data: { tenant: 't2' } });
    await waitFor('waiting for dpu0', async () => (await reboot(url, hr.id)).status === 'recovering');
    expect(ran(log).some((r) => r.hook === 'reprovision')).toBe(false);
    await post(url, { id: 'h-5', type: 'xpu.ready', node: 'node-h', xpu: 'dpu0' });

    const done = await until(url, hr.id, 'completed');
    const reprovisioned = ran(log).filter((r) => r.hook === 'reprovision');
    expect(reprovisioned.map((r) => [r.agent, r.args.tenant]).sort()).toEqual([
      ['node-h.dpu0', 't2'],
      ['node-h.dpu1', 't2'],
    ]);
    expect(done.nextTenant).toBe('t2');
    expect(done.xpuReadyAt).toHaveProperty('dpu0');
    expect(done.xpuReadyAt).not.toHaveProperty('dpu1');
    expect(done.history.map((h: any) => h.phase)).toEqual(
      expect.arrayContaining(['requested', 'host-down', 'host-ready', 'xpu-ready', 'completed']),
    );
    // Nothing ran twice.
    const keys = ran(log).map((r) => `${r.hook} ${r.agent} ${r.reboot}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('fails a host reboot whose host never comes back, and frees the node for the next one', async () => {
    const dir = tempDir('host-lost');
    const log = join(dir, 'hooks.log');
    stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
    const { url } = stack;
    const g = 'agent-token-node-g';
    agents.push(
      startAgent({ url, agent: 'node-g.dpu0', token: g, hooks: loggingHooks(join(dir, 'g'), log, XPU_HOOKS), state: join(dir, 's-g') }),
    );
    await api(url, '/v1/events', { token: g, body: { id: 'g-1', type: 'host.reboot.requested', node: 'node-g' } });
    const hr = await waitFor('the host reboot', async () => (await api(url, '/v1/reboots?node=node-g', { token: g })).json.items[0]);
    await waitFor('free-host-context', async () => ran(log).some((r) => r.hook === 'free-host-context'));
    const failed = await until(url, hr.id, 'failed');
    expect(failed.history.at(-1).detail).toMatch(/host did not come back/);
    expect(Date.parse(failed.endedAt) - Date.parse(failed.notifiedAt)).toBeGreaterThanOrEqual(3000);
    await api(url, '/v1/events', { token: g, body: { id: 'g-2', type: 'host.reboot.requested', node: 'node-g' } });
    await waitFor('a second host reboot, allowed', async () =>
      (await api(url, '/v1/reboots?node=node-g', { token: g })).json.items.find((r: any) => r.id !== hr.id && r.status !== 'denied'),
    );
  });
});
