// A rollout started over xPUs that a cancelled rollout is still rebooting: through the HTTP API of the real
// local stack, with real agents. The new rollout is accepted (201), sends no reboot-xpu to an xPU whose reboot
// is still under way, counts those reboots against its maxUnavailable, and goes on as they end.
// The xPUs' reboot-xpu hook announces (with the rollout's id); the test ends each reboot itself (xpu.down,
// xpu.ready), so it decides how long each one stays in flight.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
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

const NODES = ['p1', 'p2'];
const INVENTORY = `policy:
  xpuReboot:
    noticeSeconds: 120
    heartbeatSeconds: 30
nodes:
${NODES.map(
  (id) => `  - id: ${id}
    rack: rq
    zone: z1
    trusted: true
    agentToken: agent-token-${id}
    xpus:
      - id: dpu0
`,
).join('')}`;

let dir: string;
let log: string;
let stack: RunningStack;
const agents: RunningAgent[] = [];

beforeAll(async () => {
  dir = tempDir('rollout-after-cancel');
  log = join(dir, 'hooks.log');
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
  const args = ['--heartbeat-seconds', '1', '--backoff-initial-seconds', '0.2', '--backoff-max-seconds', '1'];
  for (const n of NODES) {
    const host = Object.fromEntries(
      ['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads'].map((h) => [h, 'cat > /dev/null']),
    );
    const announce =
      `curl -sf --retry 20 --retry-connrefused -o /dev/null -X POST "${stack.url}/v1/events" ` +
      `-H "authorization: Bearer agent-token-${n}" -H "content-type: application/json" ` +
      `-d "{\\"id\\":\\"ann-$COMMAND_ID\\",\\"type\\":\\"xpu.reboot.pending\\",\\"node\\":\\"${n}\\",\\"xpu\\":\\"dpu0\\",\\"data\\":{\\"reason\\":\\"rollout\\",\\"rolloutId\\":\\"$REBOOT_ID\\"}}"`;
    // No proceed-reboot hook: the reboot stays in flight until the test ends it.
    const xpu = { 'reboot-xpu': `cat > /dev/null\necho "${n} reboot-xpu $REBOOT_ID" >> ${log}\n${announce}` };
    for (const [agent, hooks] of [
      [n, host],
      [`${n}.dpu0`, xpu],
    ] as const)
      agents.push(
        startAgent({
          url: stack.url,
          agent,
          token: `agent-token-${n}`,
          hooks: writeHooks(join(dir, `hooks-${agent}`), hooks),
          state: join(dir, `state-${agent}`),
          args,
        }),
      );
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await stack?.stop();
});

const asked = (rolloutId: string) =>
  (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [])
    .filter((l) => l.endsWith(` reboot-xpu ${rolloutId}`))
    .map((l) => l.split(' ')[0]);
const rollout = async (id: string) => (await api(stack.url, `/v1/rollouts/${id}`, { token: OPERATOR_TOKEN })).json;
const until = (id: string, what: string, ok: (r: any) => boolean) =>
  waitFor(
    `rollout ${id}: ${what}`,
    async () => {
      const r = await rollout(id);
      return r && ok(r) ? r : undefined;
    },
    60_000,
    200,
  ).catch(async (err) => {
    throw new Error(
      `${(err as Error).message}\n${JSON.stringify(await rollout(id))}\nhooks:\n${existsSync(log) ? readFileSync(log, 'utf8') : ''}`,
    );
  });
const item = (r: any, node: string) => [...r.done, ...r.pending, ...r.failed].find((it: any) => it.node === node);

/** Ends the reboot of `node`'s xPU as its firmware would: down, then ready; waits until it completed. */
async function endReboot(node: string, rebootId: string) {
  for (const type of ['xpu.down', 'xpu.ready']) {
    const res = await api(stack.url, '/v1/events', {
      token: `agent-token-${node}`,
      body: { id: `${type}-${rebootId}`, type, node, xpu: 'dpu0' },
    });
    expect(res.status).toBe(202);
  }
  await waitFor(
    `${rebootId} completed`,
    async () => (await api(stack.url, `/v1/reboots/${rebootId}`, { token: OPERATOR_TOKEN })).json?.status === 'completed',
    60_000,
    200,
  );
}

describe('a rollout over xPUs a cancelled rollout is still rebooting', () => {
  it('is accepted, waits for those reboots (they count against maxUnavailable), then reboots each xPU once more', {
    timeout: 240_000,
  }, async () => {
    const start = (maxUnavailable: number, reason: string) =>
      api(stack.url, '/v1/rollouts', { token: OPERATOR_TOKEN, body: { selector: { rack: 'rq' }, maxUnavailable, reason } });
    const first = await start(2, 'firmware 1 (bad)');
    expect(first.status).toBe(201);
    const a = first.json.id as string;
    // Both xPUs announced: two reboots in flight for A.
    const running = await until(a, 'both xPUs rebooting', (r) => r.pending.filter((it: any) => it.state === 'rebooting').length === 2);
    const rebootOfA = Object.fromEntries(NODES.map((n) => [n, item(running, n).rebootId as string]));

    // While A runs, its xPUs are its own: the overlap is refused, as before.
    const overlap = await start(1, 'too early');
    expect(overlap.status).toBe(409);
    expect(overlap.json.error).toBe('RolloutOverlap');

    const cancel = await api(stack.url, `/v1/rollouts/${a}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'bad image' } });
    expect(cancel.status).toBe(200);
    expect(cancel.json.inFlight).toBe(2);

    // B over the same xPUs, one at a time: accepted, but both xPUs are still rebooting for A.
    const second = await start(1, 'firmware 2');
    expect(second.status).toBe(201);
    const b = second.json.id as string;
    const waiting = await until(b, 'waiting for p1', (r) =>
      /^p1\/dpu0: its reboot for rollout .* \(cancelled\) is still under way/.test(r.blocked ?? ''),
    );
    expect(waiting.blocked).toContain(a);
    expect(waiting.inFlight).toBe(0);
    expect(asked(b)).toEqual([]);

    // p1's reboot ends. p2 still reboots for A and takes B's one slot: B asks nothing yet.
    await endReboot('p1', rebootOfA.p1);
    await until(a, 'p1 done', (r) => item(r, 'p1').state === 'done');
    await until(b, 'waiting for p2', (r) => /^p2\/dpu0: its reboot for rollout .* is still under way/.test(r.blocked ?? ''));
    expect(asked(b)).toEqual([]);
    expect(item(await rollout(b), 'p1').state).toBe('pending');

    // p2's reboot ends too: A has ended, and B goes, in plan order, one at a time.
    await endReboot('p2', rebootOfA.p2);
    await until(a, 'ended', (r) => r.status === 'cancelled' && r.inFlight === 0 && r.done.length === 2);
    const p1 = await until(b, 'p1 rebooting', (r) => item(r, 'p1').state === 'rebooting');
    expect(asked(b)).toEqual(['p1']);
    const p1Reboot = item(p1, 'p1').rebootId as string;
    expect(p1Reboot).not.toBe(rebootOfA.p1); // a reboot of its own, not a join of A's
    await endReboot('p1', p1Reboot);
    const p2 = await until(b, 'p2 rebooting', (r) => item(r, 'p2').state === 'rebooting');
    expect(asked(b)).toEqual(['p1', 'p2']);
    await endReboot('p2', item(p2, 'p2').rebootId);
    const done = await until(b, 'completed', (r) => r.status === 'completed');
    expect(done.done.map((it: any) => it.node)).toEqual(['p1', 'p2']);
    expect(done.failed).toEqual([]);
    // Each xPU was asked once by each rollout.
    expect(asked(a).sort()).toEqual(['p1', 'p2']);
  });
});
