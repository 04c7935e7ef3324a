// Rollouts against the real local stack with real agents: a rack in order, a failure that pauses, and kill -9 mid-way.
// Each xPU agent's reboot-xpu hook announces the reboot (curl, with the rollout's id); its proceed-reboot hook
// "reboots": it posts xpu.down and xpu.ready, as the xPU's firmware would.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
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

const node = (id: string, rack: string, extra = '') => `  - id: ${id}
    rack: ${rack}
    zone: z1
    trusted: true
    agentToken: agent-token-${id}
${extra}    xpus:
      - id: dpu0
`;

// e's xPU never comes back: its reboot fails after 3 s.
const INVENTORY = `policy:
  xpuReboot:
    noticeSeconds: 60
    heartbeatSeconds: 30
nodes:
${node('a', 'r1')}${node('b', 'r1')}${node('c', 'r1')}${node('d', 'r2')}${node('e', 'r2', '    policy:\n      xpuReboot:\n        recoverySeconds: 3\n')}${node('f', 'r2')}`;

let dir: string;
let dataDir: string;
let nodesFile: string;
let port: string;
let url: string;
let log: string;
let stack: RunningStack | undefined;
const agents: RunningAgent[] = [];

beforeAll(async () => {
  dir = tempDir('rollout-stack');
  dataDir = join(dir, 'data');
  nodesFile = writeInventory(dir, INVENTORY);
  log = join(dir, 'hooks.log');
  // A fixed port: the hooks and the agents find the stack again after its restart.
  port = String(await freePort());
  stack = await startStackProcess({ dataDir, nodesFile, env: { PORT: port } });
  url = stack.url;
});

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
});

afterAll(async () => {
  await stack?.stop();
});

/** A POST of one native event that keeps trying while the stack is down (it may be killed mid-hook). */
const postEvent = (n: string, type: string, id: string, data = '{}') =>
  `curl -sf --retry 60 --retry-connrefused --retry-all-errors --retry-delay 1 -o /dev/null -X POST "${url}/v1/events" ` +
  `-H "authorization: Bearer agent-token-${n}" -H "content-type: application/json" ` +
  `-d "{\\"id\\":\\"${id}\\",\\"type\\":\\"${type}\\",\\"node\\":\\"${n}\\",\\"xpu\\":\\"dpu0\\",\\"data\\":${data}}"`;

function startNode(n: string, opts: { neverReady?: boolean } = {}) {
  const args = ['--heartbeat-seconds', '1', '--backoff-initial-seconds', '0.2', '--backoff-max-seconds', '1'];
  const hostHooks = Object.fromEntries(
    ['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads'].map((h) => [
      h,
      `cat > /dev/null\necho "${n} ${h}" >> ${log}`,
    ]),
  );
  const xpuHooks = {
    // $REBOOT_ID is the rollout's id on a reboot-xpu command (no reboot exists before the announce).
    'reboot-xpu': `cat > /dev/null\necho "${n} reboot-xpu $REBOOT_ID" >> ${log}\n${postEvent(n, 'xpu.reboot.pending', 'ann-$COMMAND_ID', '{\\"reason\\":\\"rollout\\",\\"rolloutId\\":\\"$REBOOT_ID\\"}')}`,
    'proceed-reboot': `cat > /dev/null\necho "${n} rebooted" >> ${log}\n${postEvent(n, 'xpu.down', 'down-$COMMAND_ID')}\nsleep 0.2\n${
      opts.neverReady ? 'true' : postEvent(n, 'xpu.ready', 'ready-$COMMAND_ID')
    }`,
  };
  agents.push(
    startAgent({
      url,
      agent: n,
      token: `agent-token-${n}`,
      hooks: writeHooks(join(dir, `hooks-${n}`), hostHooks),
      state: join(dir, `state-${n}`),
      args,
    }),
  );
  agents.push(
    startAgent({
      url,
      agent: `${n}.dpu0`,
      token: `agent-token-${n}`,
      hooks: writeHooks(join(dir, `hooks-${n}.dpu0`), xpuHooks),
      state: join(dir, `state-${n}.dpu0`),
      args,
    }),
  );
}

const lines = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : []);
const count = (line: string) => lines().filter((l) => l === line).length;
const rollout = async (id: string) => (await api(url, `/v1/rollouts/${id}`, { token: OPERATOR_TOKEN })).json;
const until = (id: string, what: string, ok: (r: any) => boolean, ms = 60_000) =>
  waitFor(
    `rollout ${id}: ${what}`,
    async () => {
      const r = await rollout(id);
      return r && ok(r) ? r : undefined;
    },
    ms,
    250,
  ).catch(async (err) => {
    // What the rollout, the hooks and the stack said: enough to tell where it stuck.
    throw new Error(
      `${(err as Error).message}\n${JSON.stringify(await rollout(id).catch(() => null))}\nhooks:\n${lines().join('\n')}\nstack:\n${stack?.output().slice(-2000)}`,
    );
  });

async function start(rack: string): Promise<string> {
  const res = await api(url, '/v1/rollouts', {
    token: OPERATOR_TOKEN,
    body: { selector: { rack }, maxUnavailable: 1, reason: `firmware for ${rack}` },
  });
  expect(res.status).toBe(201);
  return res.json.id;
}

describe('rollouts through the real local stack and real agents', () => {
  it('reboots a rack of 3 xPUs one at a time, in order, each after the previous completed', { timeout: 120_000 }, async () => {
    for (const n of ['a', 'b', 'c']) startNode(n);
    const id = await start('r1');
    const done = await until(id, 'completed', (r) => r.status === 'completed');
    expect(done.done.map((d: any) => d.node)).toEqual(['a', 'b', 'c']);
    expect(done.failed).toEqual([]);
    // One at a time: each xPU was asked only after the previous one had been rebooted and recovered.
    const order = lines()
      .filter((l) => / (reboot-xpu|rebooted|resume-workloads)/.test(l))
      .map((l) => l.split(' ').slice(0, 2).join(' '));
    expect(order).toEqual(['a', 'b', 'c'].flatMap((n) => [`${n} reboot-xpu`, `${n} rebooted`, `${n} resume-workloads`]));
    for (const d of done.done)
      expect((await api(url, `/v1/reboots/${d.rebootId}`, { token: OPERATOR_TOKEN })).json.status).toBe('completed');
  });

  it('pauses after the first failed reboot and asks no further xPU', { timeout: 120_000 }, async () => {
    startNode('d');
    startNode('e', { neverReady: true });
    startNode('f');
    const id = await start('r2');
    const paused = await until(id, 'paused', (r) => r.status === 'paused');
    expect(paused.done.map((d: any) => d.node)).toEqual(['d']);
    expect(paused.failed).toEqual([expect.objectContaining({ node: 'e', reason: 'reboot failed' })]);
    expect(paused.pending).toEqual([expect.objectContaining({ node: 'f', state: 'pending' })]);
    expect(count(`f reboot-xpu ${id}`)).toBe(0);
  });

  it('survives kill -9 of the stack mid-way: after the restart it completes, and no xPU reboots twice', { timeout: 150_000 }, async () => {
    for (const n of ['a', 'b', 'c']) startNode(n);
    // The xPUs of r1 may have been rebooted by an earlier test of this file: count from here.
    const before = Object.fromEntries(['a', 'b', 'c'].map((n) => [n, count(`${n} rebooted`)]));
    const id = await start('r1');
    // Killed while the second xPU reboots (its hook is posting xpu.down / xpu.ready) and the rollout waits for it.
    await waitFor('b to reboot', async () => count('b rebooted') > before.b, 60_000, 20);
    await stack!.stop('SIGKILL');
    expect((await rollout(id).catch(() => null)) ?? 'down').toBe('down');
    stack = await startStackProcess({ dataDir, nodesFile, env: { PORT: port } });

    const done = await until(id, 'completed after the restart', (r) => r.status === 'completed', 90_000);
    expect(done.done.map((d: any) => d.node)).toEqual(['a', 'b', 'c']);
    for (const n of ['a', 'b', 'c']) {
      expect(count(`${n} reboot-xpu ${id}`), `${n} asked`).toBe(1);
    }
    for (const n of ['a', 'b', 'c']) expect(count(`${n} rebooted`) - before[n], `${n} rebooted`).toBe(1);
    const reboots = (await api(url, '/v1/reboots?limit=100', { token: OPERATOR_TOKEN })).json.items.filter((r: any) => r.rolloutId === id);
    expect(reboots.map((r: any) => r.node).sort()).toEqual(['a', 'b', 'c']);
  });
});
