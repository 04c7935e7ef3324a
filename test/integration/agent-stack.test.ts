// Issue 7 against the real thing: the real `rebootctl agent` process and the real local stack process
// (`node local/main.ts`): heartbeat, deadline kill of a process group, exactly-once across kill -9 of
// the agent, results delivered after the server was down, 403 for another node's token.
import { REQUIRED_HOOKS, roleOf } from '../../agent/roles.ts';
import { existsSync, readFileSync } from 'node:fs';
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

interface NodeSpec {
  id: string;
  noticeSeconds: number;
  heartbeatSeconds: number;
}

const tokenOf = (node: string) => `agent-token-${node}`;

/** Short bounds in each node's own policy: real time passes here. */
function inventory(nodes: NodeSpec[]): string {
  return `nodes:\n${nodes
    .map(
      (n) => `  - id: ${n.id}
    tenant: t1
    trusted: true
    agentToken: ${tokenOf(n.id)}
    policy:
      xpuReboot:
        noticeSeconds: ${n.noticeSeconds}
        heartbeatSeconds: ${n.heartbeatSeconds}
        commandSeconds: 10
        recoverySeconds: 30
    xpus:
      - id: dpu0
`,
    )
    .join('')}`;
}

let stack: RunningStack | undefined;
const agents: RunningAgent[] = [];
const pidFiles: string[] = [];

afterEach(async () => {
  for (const a of agents) {
    try {
      a.proc.kill('SIGCONT'); // a paused agent cannot act on SIGTERM
    } catch {}
  }
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  await stack?.stop();
  stack = undefined;
  // Hooks this file started (and their children) must not outlive it, whatever failed.
  for (const f of pidFiles.splice(0)) if (existsSync(f)) kill(Number(readFileSync(f, 'utf8')));
});

function kill(pid: number) {
  try {
    if (pid > 0) process.kill(pid, 'SIGKILL');
  } catch {}
}

/** Running: `kill(pid, 0)` succeeds and it is no zombie waiting for a reaper. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function lines(log: string): string[] {
  return existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : [];
}
const count = (log: string, line: string) => lines(log).filter((l) => l === line).length;

/** Each hook logs "<type> start" and "<type> end" around its body. */
function logged(log: string, hooks: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(hooks).map(([n, body]) => [n, `cat > /dev/null\necho "${n} start" >> ${log}\n${body}\necho "${n} end" >> ${log}`]),
  );
}

/** A real agent with short intervals: heartbeats every second, a short kill grace and backoff. */
function agent(
  url: string,
  id: string,
  dir: string,
  hooks: Record<string, string>,
  opts: { token?: string; state?: string } = {},
): RunningAgent {
  const a = startAgent({
    url,
    agent: id,
    token: opts.token ?? tokenOf(id.split('.')[0]),
    // Required hooks (docs/edge-kit.md) that a scenario does not care about succeed silently.
    hooks: writeHooks(join(dir, `hooks-${id}`), {
      ...Object.fromEntries(REQUIRED_HOOKS[roleOf(id)].map((t) => [t, 'cat > /dev/null'])),
      ...hooks,
    }),
    state: opts.state ?? join(dir, `state-${id}`),
    args: ['--heartbeat-seconds', '1', '--kill-grace-seconds', '1', '--backoff-initial-seconds', '0.2', '--backoff-max-seconds', '1'],
  });
  agents.push(a);
  return a;
}

function exitOf(a: RunningAgent): Promise<number | null> {
  if (a.proc.exitCode !== null || a.proc.signalCode !== null) return Promise.resolve(a.proc.exitCode);
  return new Promise((r) => a.proc.once('exit', (code) => r(code)));
}

const post = (url: string, node: string, body: Record<string, unknown>) =>
  api(url, '/v1/events', { token: tokenOf(node), body: { node, xpu: 'dpu0', ...body } });
const reboot = async (url: string, id: string) => (await api(url, `/v1/reboots/${id}`, { token: OPERATOR_TOKEN })).json;
const theReboot = (url: string, node: string) =>
  waitFor(`the reboot of ${node}`, async () => (await api(url, `/v1/reboots?node=${node}`, { token: OPERATOR_TOKEN })).json?.items?.[0]);
const until = (url: string, id: string, what: string, ok: (r: any) => boolean, ms = 30_000) =>
  waitFor(
    `reboot ${id}: ${what}`,
    async () => {
      const r = await reboot(url, id);
      return r && ok(r) ? r : undefined;
    },
    ms,
  );
const commandOf = (r: any, type: string) => Object.values(r.commands as Record<string, any>).find((c) => c.type === type);
const phases = (r: any): string[] => r.history.map((h: { phase: string }) => h.phase);

function journal(state: string, agentId: string): any[] {
  const file = join(state, agentId, 'journal.jsonl');
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .flatMap((l) => {
          try {
            return [JSON.parse(l)];
          } catch {
            return [];
          }
        })
    : [];
}

describe('the real agent against the real local stack', () => {
  // Notices are long against a loaded machine's start-up: node-b's host must be noticed silent before its deadline.
  it('heartbeats while a slow hook runs: the server holds the command running and the reboot keeps waiting; a silent agent is noticed', {
    timeout: 120_000,
  }, async () => {
    const dir = tempDir('agent-stack-hb');
    stack = await startStackProcess({
      dataDir: join(dir, 'data'),
      nodesFile: writeInventory(
        dir,
        inventory([
          { id: 'node-a', noticeSeconds: 40, heartbeatSeconds: 10 },
          { id: 'node-b', noticeSeconds: 25, heartbeatSeconds: 5 },
        ]),
      ),
    });
    const url = stack.url;
    const logA = join(dir, 'a.log');
    const logB = join(dir, 'b.log');
    const pidB = join(dir, 'b-hook.pid');
    pidFiles.push(pidB);
    // node-a's migration outlasts heartbeatSeconds: only the agent's heartbeats keep the host from counting as silent.
    // Its heartbeatSeconds (10) is ten of the agent's heartbeats: a loaded machine may delay a few, not all.
    agent(url, 'node-a', dir, logged(logA, { 'migrate-workloads': 'sleep 12', 'protect-pcie': 'true' }));
    const b = agent(url, 'node-b', dir, logged(logB, { 'migrate-workloads': `echo $$ > ${pidB}\nsleep 30`, 'protect-pcie': 'true' }));
    expect((await post(url, 'node-a', { id: 'hb-a', type: 'xpu.reboot.pending' })).status).toBe(202);
    expect((await post(url, 'node-b', { id: 'hb-b', type: 'xpu.reboot.pending' })).status).toBe(202);
    const ra = await theReboot(url, 'node-a');
    const rb = await theReboot(url, 'node-b');

    // node-b: once its hook runs and has sent a heartbeat or two, the agent is frozen (SIGSTOP): no more heartbeats.
    await waitFor('node-b migration to start', async () => lines(logB).includes('migrate-workloads start'));
    await until(url, rb.id, 'node-b migrate-workloads running', (r) => commandOf(r, 'migrate-workloads').status === 'running');
    b.proc.kill('SIGSTOP');

    // node-a: the heartbeats keep the reboot waiting for the slow host; then the early go, never forced.
    await waitFor('node-a migration to start', async () => lines(logA).includes('migrate-workloads start'));
    // The agent's heartbeat shows on the reboot while its hook runs.
    const whileRunning = await until(
      url,
      ra.id,
      'migrate-workloads running',
      (r) => commandOf(r, 'migrate-workloads').status === 'running',
    );
    expect(whileRunning.status).toBe('preparing');
    expect(lines(logA)).not.toContain('migrate-workloads end');
    const early = await until(url, ra.id, 'rebooting', (r) => r.status === 'rebooting', 60_000);
    expect(lines(logA)).toEqual(['migrate-workloads start', 'migrate-workloads end', 'protect-pcie start', 'protect-pcie end']);
    expect(early.forced).toBe(false);
    expect(commandOf(early, 'migrate-workloads').status).toBe('succeeded');
    expect(phases(early)).not.toContain('silent-host');
    expect(phases(early)).not.toContain('host-not-prepared');
    const prepared = Date.parse(early.history.find((h: any) => h.phase === 'preparing').at);
    const migrated = Date.parse(
      early.history.find((h: any) => h.phase === 'command-succeeded' && h.detail.startsWith('migrate-workloads')).at,
    );
    expect(migrated - prepared).toBeGreaterThan(10_000); // the hook outlasted heartbeatSeconds without the host counting as silent
    expect(Date.parse(early.rebootingAt)).toBeLessThan(Date.parse(early.deadline));

    // node-b: without heartbeats the host is noticed as silent, and the server's record of the command is
    // still `running` (what the heartbeats set) when the deadline forces the reboot.
    const forced = await until(url, rb.id, 'forced', (r) => r.forced === true, 60_000);
    const p = phases(forced);
    expect(p).toContain('silent-host');
    expect(p.indexOf('silent-host')).toBeLessThan(p.indexOf('forced'));
    expect(forced.outstanding).toContain('migrate-workloads (running)');
    expect(lines(logB)).not.toContain('migrate-workloads end');
  });

  // The notice is long against a loaded machine's start-up: the hook must start before the deadline kills it.
  it("kills the hook's whole process group at the reboot's deadline, reports it failed, and the reboot is forced at that deadline", {
    timeout: 120_000,
  }, async () => {
    const dir = tempDir('agent-stack-deadline');
    stack = await startStackProcess({
      dataDir: join(dir, 'data'),
      nodesFile: writeInventory(dir, inventory([{ id: 'node-a', noticeSeconds: 15, heartbeatSeconds: 5 }])),
    });
    const url = stack.url;
    const log = join(dir, 'hooks.log');
    const hookPid = join(dir, 'hook.pid');
    const grandchildPid = join(dir, 'grandchild.pid');
    pidFiles.push(hookPid, grandchildPid);
    const state = join(dir, 'state');
    agent(
      url,
      'node-a',
      dir,
      logged(log, {
        'migrate-workloads': `echo $$ > ${hookPid}\nsleep 300 &\necho $! > ${grandchildPid}\necho "draining..."\nsleep 300`,
        'protect-pcie': 'true',
      }),
      { state },
    );
    expect((await post(url, 'node-a', { id: 'dl-1', type: 'xpu.reboot.pending' })).status).toBe(202);
    const r = await theReboot(url, 'node-a');
    const deadline = Date.parse(r.deadline);

    await waitFor('the grandchild to start', async () => existsSync(grandchildPid) && Number(readFileSync(grandchildPid, 'utf8')) > 0);
    const hook = Number(readFileSync(hookPid, 'utf8'));
    const grandchild = Number(readFileSync(grandchildPid, 'utf8'));
    expect(running(grandchild)).toBe(true);
    expect(Date.now()).toBeLessThan(deadline);

    // Gone: `kill(pid, 0)` throws, or only a zombie is left for init to reap (the container's init may not).
    await waitFor('the hook and its grandchild to be killed', async () => !running(hook) && !running(grandchild), 60_000);
    expect(Date.now()).toBeGreaterThanOrEqual(deadline);
    expect(lines(log)).toEqual(['migrate-workloads start']); // never reached its end; protect-pcie never ran (past the deadline)

    const forced = await until(url, r.id, 'forced', (x) => x.forced === true, 20_000);
    expect(forced.status).toBe('rebooting');
    expect(forced.rebootingAt).toBe(r.deadline);
    expect(Date.parse(forced.history.find((h: any) => h.phase === 'forced').at)).toBeGreaterThanOrEqual(deadline);

    // The agent reported the kill: `failed`, saying the deadline was exceeded, with what the hook printed.
    const final = await until(url, r.id, 'the migration result', (x) => {
      const c = commandOf(x, 'migrate-workloads');
      return c.status === 'failed' || x.history.some((h: any) => h.phase === 'late-result' && h.detail.includes('migrate-workloads'));
    });
    const migrate = commandOf(final, 'migrate-workloads');
    if (migrate.status === 'failed') {
      expect(migrate.output).toMatch(/^deadline exceeded: /);
      expect(migrate.output).toContain('draining...');
    } else {
      // What happens in practice: the workflow's watchdog timer fires at the deadline too and closes the command
      // a few hundred ms before the agent's result arrives; the server keeps the late result and its output.
      expect(migrate.status).toBe('timed-out');
      expect(final.history.find((h: any) => h.phase === 'late-result' && h.detail.startsWith(migrate.id))?.detail).toMatch(
        new RegExp(`^${migrate.id} failed after the workflow stopped waiting for it`),
      );
      const late = await until(url, r.id, 'the late result kept', (x) => commandOf(x, 'migrate-workloads').lateStatus === 'failed');
      expect(commandOf(late, 'migrate-workloads').output).toMatch(/^deadline exceeded: /);
    }
    const reported = await waitFor('the result delivered', async () => {
      const j = journal(state, 'node-a');
      return j.some((e) => e.t === 'delivered' && e.id === migrate.id) && j.find((e) => e.t === 'finished' && e.id === migrate.id);
    });
    expect(reported.status).toBe('failed');
    expect(reported.output).toMatch(/^deadline exceeded: /);
    expect(reported.output).toContain('draining...');
  });

  it('runs a command exactly once across kill -9 of the agent: reported failed "interrupted", not run again; later commands run normally', async () => {
    const dir = tempDir('agent-stack-kill9');
    stack = await startStackProcess({
      dataDir: join(dir, 'data'),
      nodesFile: writeInventory(dir, inventory([{ id: 'node-a', noticeSeconds: 30, heartbeatSeconds: 5 }])),
    });
    const url = stack.url;
    const log = join(dir, 'hooks.log');
    const hookPid = join(dir, 'hook.pid');
    pidFiles.push(hookPid);
    const state = join(dir, 'state');
    const hooks = logged(log, {
      'migrate-workloads': 'true',
      'protect-pcie': `echo $$ > ${hookPid}\nsleep 300`,
      'restore-pcie': 'true',
      'resume-workloads': 'true',
    });
    const first = agent(url, 'node-a', dir, hooks, { state });
    expect((await post(url, 'node-a', { id: 'k9-1', type: 'xpu.reboot.pending' })).status).toBe(202);
    const r = await theReboot(url, 'node-a');

    await waitFor(
      'protect-pcie to be running',
      async () => lines(log).includes('protect-pcie start') && existsSync(hookPid) && readFileSync(hookPid, 'utf8').trim(),
    );
    const orphan = Number(readFileSync(hookPid, 'utf8'));
    first.proc.kill('SIGKILL');
    await exitOf(first);
    expect(running(orphan)).toBe(true); // its own process group outlived the agent

    agent(url, 'node-a', dir, hooks, { state }); // same --state: the same journal
    const failed = await until(url, r.id, 'protect-pcie failed', (x) => commandOf(x, 'protect-pcie')?.status === 'failed');
    expect(commandOf(failed, 'protect-pcie').output).toMatch(/^interrupted: agent restarted/);
    expect(commandOf(failed, 'migrate-workloads').status).toBe('succeeded');
    await waitFor('the leftover hook to be killed', async () => !running(orphan), 10_000);

    // Later commands run normally: the xPU comes back, the host restores PCIe and resumes its workloads.
    expect((await post(url, 'node-a', { id: 'k9-2', type: 'xpu.ready' })).status).toBe(202);
    const done = await until(url, r.id, 'completed', (x) => x.status === 'completed');
    expect(commandOf(done, 'restore-pcie').status).toBe('succeeded');
    expect(commandOf(done, 'resume-workloads').status).toBe('succeeded');
    expect(count(log, 'protect-pcie start')).toBe(1); // never run again
    expect(count(log, 'migrate-workloads start')).toBe(1);
    expect(lines(log)).toEqual(expect.arrayContaining(['restore-pcie end', 'resume-workloads end']));
    expect(lines(log)).not.toContain('protect-pcie end');
  });

  it('delivers a result finished while the server was down once the stack is back, and the workflow goes on', async () => {
    const dir = tempDir('agent-stack-down');
    const dataDir = join(dir, 'data');
    const nodesFile = writeInventory(dir, inventory([{ id: 'node-a', noticeSeconds: 30, heartbeatSeconds: 60 }]));
    const port = String(await freePort());
    stack = await startStackProcess({ dataDir, nodesFile, env: { PORT: port } });
    const url = stack.url;
    const log = join(dir, 'hooks.log');
    const state = join(dir, 'state');
    agent(
      url,
      'node-a',
      dir,
      logged(log, { 'migrate-workloads': 'sleep 4', 'protect-pcie': 'true', 'restore-pcie': 'true', 'resume-workloads': 'true' }),
      { state },
    );
    agent(url, 'node-a.dpu0', dir, logged(log, { 'proceed-reboot': 'true' }));
    expect((await post(url, 'node-a', { id: 'dn-1', type: 'xpu.reboot.pending' })).status).toBe(202);
    const r = await theReboot(url, 'node-a');
    const migrateId = `${r.id}.migrate-workloads`;

    await waitFor('the migration to start', async () => lines(log).includes('migrate-workloads start'));
    await stack.stop('SIGTERM');
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    await waitFor('the hooks to finish while the server is down', async () => lines(log).includes('protect-pcie end'), 20_000);
    const j = journal(state, 'node-a');
    expect(j.find((e) => e.t === 'finished' && e.id === migrateId)?.status).toBe('succeeded');
    expect(j.some((e) => e.t === 'delivered' && e.id === migrateId)).toBe(false); // journalled, not delivered
    await sleep(500); // a few more retries' worth of outage

    stack = await startStackProcess({ dataDir, nodesFile, env: { PORT: port } });
    // The agent re-sends its two journalled results one after the other: wait for both.
    const delivered = await until(
      url,
      r.id,
      'both journalled results delivered',
      (x) => commandOf(x, 'migrate-workloads')?.status === 'succeeded' && commandOf(x, 'protect-pcie')?.status === 'succeeded',
    );
    expect(commandOf(delivered, 'protect-pcie').status).toBe('succeeded');
    expect(journal(state, 'node-a').some((e) => e.t === 'delivered' && e.id === migrateId)).toBe(true);

    // The workflow goes on: the early go reaches the xPU, and after xpu.ready the host recovers.
    await waitFor('proceed-reboot on the xPU', async () => lines(log).includes('proceed-reboot end'), 20_000);
    const rebooting = await reboot(url, r.id);
    expect(rebooting.status).toBe('rebooting');
    expect(rebooting.forced).toBe(false);
    expect((await post(url, 'node-a', { id: 'dn-2', type: 'xpu.ready' })).status).toBe(202);
    await until(url, r.id, 'completed', (x) => x.status === 'completed');
    expect(count(log, 'migrate-workloads start')).toBe(1);
    expect(lines(log)).toEqual(expect.arrayContaining(['restore-pcie end', 'resume-workloads end']));
  });

  it('exits 3 with a clear 403 message when its token belongs to another node, and changes nothing on the server', async () => {
    const dir = tempDir('agent-stack-403');
    stack = await startStackProcess({
      dataDir: join(dir, 'data'),
      nodesFile: writeInventory(
        dir,
        inventory([
          { id: 'node-a', noticeSeconds: 30, heartbeatSeconds: 60 },
          { id: 'node-b', noticeSeconds: 30, heartbeatSeconds: 60 },
        ]),
      ),
    });
    const url = stack.url;
    const log = join(dir, 'hooks.log');
    const hooks = logged(log, { 'migrate-workloads': 'true', 'protect-pcie': 'true' });
    expect((await post(url, 'node-a', { id: 'fb-1', type: 'xpu.reboot.pending' })).status).toBe(202);
    const r = await theReboot(url, 'node-a');
    await until(url, r.id, 'commands sent', (x) => Object.keys(x.commands).length === 2);
    const before = (await api(url, '/v1/reboots', { token: OPERATOR_TOKEN })).json;

    const rogue = agent(url, 'node-a', dir, hooks, { token: tokenOf('node-b'), state: join(dir, 'rogue-state') });
    const code = await Promise.race([exitOf(rogue), sleep(20_000).then(() => 'still running')]);
    expect(code).toBe(3);
    expect(rogue.output()).toMatch(/refused agent node-a .*HTTP 403 .*a token of node node-b may not act as agent node-a/);
    expect(lines(log)).toEqual([]);
    expect((await api(url, '/v1/reboots', { token: OPERATOR_TOKEN })).json).toEqual(before);

    // Nothing was handed to the rogue: node-a's own agent gets both commands and runs them once.
    agent(url, 'node-a', dir, hooks);
    const prepared = await until(url, r.id, 'prepared', (x) => x.status === 'rebooting');
    expect(prepared.forced).toBe(false);
    expect(lines(log)).toEqual(['migrate-workloads start', 'migrate-workloads end', 'protect-pcie start', 'protect-pcie end']);
  });
});
