// xPU reboot scenarios through the real local stack process with real agents: extension, forced, crash.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
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

// Real time passes here: the notice is long against a loaded machine's start-up (a reboot, a workflow,
// an agent's poll and a hook may each take seconds at load 20 on 2 cores), so nothing a test does in
// the notice phase races its deadline; a test that needs "the old deadline passed" waits for what
// shows it (the hook still alive after it), and the forced reboot is checked against the reboot's
// own recorded deadline and times, never against the test's clock.
const NOTICE_SECONDS = 15;
const inventory = (maxExtensionSeconds = 4) => `
policy:
  xpuReboot:
    noticeSeconds: ${NOTICE_SECONDS}
    maxExtensionSeconds: ${maxExtensionSeconds}
    maxExtensions: 2
    heartbeatSeconds: 5
    recoverySeconds: 20
    coredumpSeconds: 60
    commandSeconds: 60
nodes:
  - id: node-s
    tenant: t1
    trusted: true
    agentToken: agent-token-node-s
    xpus:
      - id: dpu0
`;
const token = 'agent-token-node-s';

let stack: RunningStack | undefined;
const agents: RunningAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  await stack?.stop();
  stack = undefined;
});

function lines(log: string): string[] {
  return existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : [];
}

const post = (url: string, body: Record<string, unknown>) => api(url, '/v1/events', { token, body });
const reboot = async (url: string, id: string) => (await api(url, `/v1/reboots/${id}`, { token: OPERATOR_TOKEN })).json;
/** Every wait here is long: it returns once its condition holds, and a loaded machine may take a minute. */
const WAIT = 90_000;
const wait = <T>(what: string, fn: () => Promise<T | undefined | null | false>) => waitFor(what, fn, WAIT);
const until = (url: string, id: string, status: string) =>
  waitFor(
    `reboot ${id} ${status}`,
    async () => {
      const r = await reboot(url, id);
      return r?.status === status ? r : undefined;
    },
    WAIT,
  );
async function theReboot(url: string) {
  return waitFor('the reboot', async () => (await api(url, '/v1/reboots?node=node-s', { token })).json.items[0], WAIT);
}

/** Starts the stack and both agents; `hostHooks` and `xpuHooks` are shell bodies by hook name, each logging what it does. */
async function start(
  prefix: string,
  hostHooks: Record<string, string> | ((dir: string) => Record<string, string>),
  xpuHooks: Record<string, string>,
  maxExtensionSeconds?: number,
) {
  const dir = tempDir(prefix);
  const log = join(dir, 'hooks.log');
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, inventory(maxExtensionSeconds)) });
  const withLog = (hooks: Record<string, string>) =>
    Object.fromEntries(
      Object.entries(hooks).map(([n, body]) => [n, `cat > /dev/null\necho "${n} start" >> ${log}\n${body}\necho "${n} end" >> ${log}`]),
    );
  const fast = ['--heartbeat-seconds', '1'];
  agents.push(
    startAgent({
      url: stack.url,
      agent: 'node-s',
      token,
      hooks: writeHooks(join(dir, 'h'), withLog(typeof hostHooks === 'function' ? hostHooks(dir) : hostHooks)),
      state: join(dir, 's-h'),
      args: fast,
    }),
  );
  agents.push(
    startAgent({
      url: stack.url,
      agent: 'node-s.dpu0',
      token,
      hooks: writeHooks(join(dir, 'x'), withLog(xpuHooks)),
      state: join(dir, 's-x'),
      args: fast,
    }),
  );
  return { url: stack.url, log, dir };
}

describe('xPU reboot scenarios through the real local stack', () => {
  it('forced at the moved deadline, not the old one, with what the host left undone; then recovers', { timeout: 240_000 }, async () => {
    const { url, log } = await start(
      'forced',
      { 'migrate-workloads': 'sleep 300', 'protect-pcie': 'true', 'restore-pcie': 'true', 'resume-workloads': 'true' },
      { 'proceed-reboot': 'true' },
    );
    await post(url, { id: 'f-1', type: 'xpu.reboot.pending', node: 'node-s', xpu: 'dpu0' });
    const r = await theReboot(url);
    expect(r.noticeSeconds).toBe(NOTICE_SECONDS);
    // Asked at once: granting needs only the notice phase, not the hook; the agent learns of it either way.
    const ext = await api(url, `/v1/reboots/${r.id}/extensions`, { token, body: { seconds: 2, reason: 'draining' } });
    expect({ status: ext.status, json: ext.json }).toEqual({
      status: 200,
      json: { granted: 2, deadline: new Date(Date.parse(r.deadline) + 2000).toISOString() },
    });
    // Trimmed to the cap (4 s in all, 2 granted: 2 of 20), then refused at maxExtensions.
    expect((await api(url, `/v1/reboots/${r.id}/extensions`, { token, body: { seconds: 20 } })).json.granted).toBe(2);
    const third = await api(url, `/v1/reboots/${r.id}/extensions`, { token, body: { seconds: 1 } });
    expect({ status: third.status, error: third.json.error }).toEqual({ status: 409, error: 'MaxExtensions' });
    const deadline = Date.parse(r.deadline) + 4_000;
    expect((await reboot(url, r.id)).deadline).toBe(new Date(deadline).toISOString());
    await wait('the migration to start', async () => lines(log).includes('migrate-workloads start'));

    const forced = await until(url, r.id, 'rebooting');
    expect(forced.forced).toBe(true);
    expect(forced.rebootingAt).toBe(new Date(deadline).toISOString());
    expect(forced.outstanding.some((o: string) => o.startsWith('migrate-workloads'))).toBe(true);
    const story = forced.history.find((h: any) => h.phase === 'forced');
    expect(Date.parse(story.at)).toBeGreaterThanOrEqual(deadline);
    expect(forced.history.filter((h: any) => h.phase === 'extended')).toHaveLength(2);
    expect(forced.history.filter((h: any) => h.phase === 'extension-refused')).toHaveLength(1);
    expect(lines(log)).not.toContain('proceed-reboot start'); // the watchdog rebooted it, not an early go

    await post(url, { id: 'f-2', type: 'xpu.down', node: 'node-s', xpu: 'dpu0' });
    await post(url, { id: 'f-3', type: 'xpu.ready', node: 'node-s', xpu: 'dpu0' });
    await until(url, r.id, 'completed');
    expect(lines(log)).toEqual(expect.arrayContaining(['restore-pcie end', 'resume-workloads end']));
  });

  it('a crash protects PCIe, lets the xPU take its core dump, then recovers', { timeout: 240_000 }, async () => {
    const { url, log } = await start(
      'crash',
      { 'protect-pcie': 'true', 'restore-pcie': 'true', 'resume-workloads': 'true' },
      { 'allow-coredump': 'sleep 1' },
    );
    await post(url, { id: 'c-1', type: 'xpu.crashed', node: 'node-s', xpu: 'dpu0', data: { reason: 'watchdog NMI' } });
    const r = await theReboot(url);
    await wait('the core dump', async () => lines(log).includes('allow-coredump end'));
    // protect-pcie (the host agent) and allow-coredump (the xPU agent) go out at once: which of the two
    // agents' processes polls and ends its hook first is theirs to decide (one may still be starting).
    await wait('PCIe protected', async () => lines(log).includes('protect-pcie end'));
    await wait('waiting for the xPU', async () =>
      (await reboot(url, r.id)).history.some((h: any) => h.phase === 'command-succeeded' && /allow-coredump/.test(h.detail)),
    );
    await post(url, { id: 'c-2', type: 'xpu.ready', node: 'node-s', xpu: 'dpu0' });
    const done = await until(url, r.id, 'completed');
    expect(done).toMatchObject({ mode: 'crash', forced: false });
    const ends = lines(log).filter((l) => l.endsWith(' end'));
    // Both crash commands ended before recovery began; restore-pcie, then resume-workloads (docs/reboot-model.md).
    expect(ends.slice(0, 2).sort()).toEqual(['allow-coredump end', 'protect-pcie end']);
    expect(ends.slice(2)).toEqual(['restore-pcie end', 'resume-workloads end']);
  });

  // docs/api.md: a redelivery after an extension carries the moved deadline, also to a running hook.
  it('an extension reaches the running migration hook before its old deadline kills it', { timeout: 240_000 }, async () => {
    const { url, log, dir } = await start(
      'ext',
      (d) => ({
        // Alive past its old deadline, and done once the test says so: it notes the time while it waits.
        'migrate-workloads': `for i in $(seq 1200); do [ -f ${join(d, 'go')} ] && break; date +%s%3N > ${join(d, 'alive')}; sleep 0.1; done`,
        'protect-pcie': 'true',
        'restore-pcie': 'true',
        'resume-workloads': 'true',
      }),
      { 'proceed-reboot': 'true' },
      // Room to see the hook alive well past its old deadline before the moved one kills it.
      30,
    );
    const alive = join(dir, 'alive');
    await post(url, { id: 'e-1', type: 'xpu.reboot.pending', node: 'node-s', xpu: 'dpu0' });
    const r = await theReboot(url);
    const oldDeadline = Date.parse(r.deadline);
    await wait('the migration to start', async () => lines(log).includes('migrate-workloads start'));
    const ext = await api(url, `/v1/reboots/${r.id}/extensions`, { token, body: { seconds: 30 } });
    expect({ status: ext.status, json: ext.json }).toEqual({
      status: 200,
      json: { granted: 30, deadline: new Date(oldDeadline + 30_000).toISOString() },
    });
    // The old deadline passed with the hook alive: it noted a time a second past it (the kill would have stopped it).
    await wait(
      'the hook alive past its old deadline',
      async () => existsSync(alive) && Number(readFileSync(alive, 'utf8')) >= oldDeadline + 1000,
    );
    expect(lines(log)).not.toContain('migrate-workloads end');
    writeFileSync(join(dir, 'go'), '');
    await wait('proceed-reboot', async () => lines(log).includes('proceed-reboot end'));
    const after = await reboot(url, r.id);
    expect(after.history.filter((h: any) => h.phase === 'command-failed')).toEqual([]);
    expect(after.forced).toBe(false);
    expect(lines(log)).toContain('migrate-workloads end');
  });
});
