// The real `rebootctl agent` process against a fake coordinator: order, hooks, heartbeats, deadlines, exactly-once, outages, auth, stop.
import { afterEach, describe, expect, it } from 'vitest';
import { command, FakeServer } from '../fixtures/agent/fake-server.ts';
import {
  isAlive,
  journalLines,
  readRec,
  removeWorkspaces,
  startAgent,
  waitFor,
  workspace,
  writeHook,
  type RunningAgent,
  type Workspace,
} from '../fixtures/agent/harness.ts';

const TOKENS = { 'tok-a': 'node-a', 'tok-b': 'node-b' };
const servers: FakeServer[] = [];
const agents: RunningAgent[] = [];

afterEach(async () => {
  const running = agents.splice(0);
  for (const a of running) if (a.child.exitCode === null) a.child.kill('SIGKILL');
  for (const a of running) await a.exited;
  for (const s of servers.splice(0)) await s.stop();
  removeWorkspaces();
});

async function fakeServer(): Promise<FakeServer> {
  const s = await new FakeServer({ tokens: TOKENS }).start();
  servers.push(s);
  return s;
}

/** Short intervals so each scenario takes seconds, not minutes. */
function agent(ws: Workspace, server: FakeServer, extra: string[] = [], env: Record<string, string> = {}): RunningAgent {
  const a = startAgent(
    ws,
    [
      '--server',
      server.url,
      '--agent',
      'node-a',
      '--hooks',
      ws.hooks,
      '--state',
      ws.state,
      '--wait',
      '1',
      '--heartbeat-seconds',
      '0.2',
      '--kill-grace-seconds',
      '0.5',
      '--backoff-initial-seconds',
      '0.05',
      '--backoff-max-seconds',
      '0.3',
      '--request-timeout-seconds',
      '2',
      '--deliver-timeout-seconds',
      '3',
      ...extra,
    ],
    { REBOOT_AGENT_TOKEN: 'tok-a', ...env },
  );
  agents.push(a);
  return a;
}

const recordingHook = (extra = '') => `
echo "$COMMAND_ID start" >> "$REC/order"
cat > "$REC/$COMMAND_ID.stdin"
printf 'REBOOT_ID=%s\\nCOMMAND_ID=%s\\nNODE_ID=%s\\nXPU_ID=%s\\nDEADLINE=%s\\nSITE=%s\\n' "$REBOOT_ID" "$COMMAND_ID" "$NODE_ID" "$XPU_ID" "$DEADLINE" "$SITE" > "$REC/$COMMAND_ID.env"
${extra}
echo "$COMMAND_ID end" >> "$REC/order"`;

describe('rebootctl agent', () => {
  it('runs commands one at a time in the order received, with the command on stdin and its ids in the env (--once)', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'migrate-workloads', recordingHook('sleep 0.3; echo migrated'));
    writeHook(ws, 'protect-pcie', recordingHook('echo masked DPC'));
    writeHook(ws, 'resume-workloads', recordingHook('echo "cannot resume" >&2; exit 3'));
    writeHook(ws, 'reprovision', 'echo never', 0o644); // present but not executable
    const cmds = [
      command('c1', 'migrate-workloads', { args: { target: 'other-host' } }),
      command('c2', 'protect-pcie', { xpu: 'dpu0' }),
      command('c3', 'resume-workloads'),
      command('c4', 'restore-pcie'), // no hook
      command('c5', 'format-disks'), // not a command type of the contract
      command('c6', 'reprovision'),
    ];
    server.enqueue('node-a', ...cmds);

    const a = agent(ws, server, ['--once'], { SITE: 'lab-1' });
    expect(await a.exited).toBe(0);

    const results = server.finalResults();
    expect(results.map((r) => [r.id, r.status])).toEqual([
      ['c1', 'succeeded'],
      ['c2', 'succeeded'],
      ['c3', 'failed'],
      ['c4', 'failed'], // restore-pcie is required on a host (docs/edge-kit.md)
      ['c5', 'failed'],
      ['c6', 'skipped'],
    ]);
    expect(readRec(ws, 'order')).toBe('c1 start\nc1 end\nc2 start\nc2 end\nc3 start\n');
    expect(JSON.parse(readRec(ws, 'c1.stdin'))).toEqual(cmds[0]);
    expect(readRec(ws, 'c1.env')).toBe(
      `REBOOT_ID=rb-1\nCOMMAND_ID=c1\nNODE_ID=node-a\nXPU_ID=\nDEADLINE=${cmds[0].deadline}\nSITE=lab-1\n`,
    );
    expect(readRec(ws, 'c2.env')).toContain('XPU_ID=dpu0\n');
    expect(results[0].output).toBe('migrated\n');
    expect(results[2].output).toBe('hook exited with code 3\ncannot resume\n');
    expect(results[3].output).toMatch(/required hook missing: restore-pcie .*restore-pcie \(no such file\)/);
    expect(results[4].output).toMatch(/unknown command type "format-disks"/);
    expect(results[5].output).toMatch(/not executable/);
    expect(server.queues.get('node-a')).toEqual([]);
  });

  it('with --once and nothing to do, polls once without waiting and exits 0', async () => {
    const ws = workspace();
    const server = await fakeServer();
    const a = agent(ws, server, ['--once', '--wait', '0']);
    expect(await a.exited).toBe(0);
    expect(server.polls).toHaveLength(1);
    expect(server.polls[0].wait).toBe(0);
  });

  it('sends running heartbeats while a slow hook runs, then the result', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'migrate-workloads', 'sleep 1.2; echo done');
    server.enqueue('node-a', command('slow', 'migrate-workloads'));

    const a = agent(ws, server);
    await waitFor(() => server.finalResults('slow')[0]);
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);

    const beats = server.heartbeats('slow');
    const final = server.finalResults('slow')[0];
    expect(final.status).toBe('succeeded');
    expect(beats.length).toBeGreaterThanOrEqual(3);
    expect(beats.every((b) => b.at <= final.at)).toBe(true);
  });

  it('reports a hook that ends at once by its result alone, without a running heartbeat or a refresh poll', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'restore-pcie', 'echo rescanned');
    server.enqueue('node-a', command('quick', 'restore-pcie'));

    const a = agent(ws, server);
    await waitFor(() => server.finalResults('quick')[0]);
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);

    expect(server.finalResults('quick')[0]).toMatchObject({ status: 'succeeded' });
    expect(server.heartbeats('quick')).toEqual([]);
    expect(server.polls.filter((p) => p.wait === 0)).toEqual([]);
  });

  it("kills the hook's whole process group at the deadline and reports failed", async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'protect-pcie', 'sleep 60 &\necho $! > "$REC/grandchild.pid"\necho $$ > "$REC/hook.pid"\necho "unbinding..."\nsleep 60');
    const a = agent(ws, server);
    await waitFor(() => server.polls.length > 0); // deadlines are short: do not count the agent's start-up
    // 4 s, not 1.5: the hook must be handed over, spawned and have printed before the deadline kills it,
    // which at load takes more than a second; it sleeps 60, so the kill is still the deadline's.
    server.enqueue('node-a', command('late', 'protect-pcie', { inSeconds: 4 }));

    const final = await waitFor(() => server.finalResults('late')[0], 30_000);
    a.child.kill('SIGTERM');
    await a.exited;

    expect(final.status).toBe('failed');
    expect(final.output).toMatch(/^deadline exceeded: the command's deadline .* passed/);
    expect(final.output).toContain('unbinding...');
    const grandchild = Number(readRec(ws, 'grandchild.pid'));
    const hook = Number(readRec(ws, 'hook.pid'));
    expect(grandchild).toBeGreaterThan(0);
    await waitFor(
      () => !isAlive(grandchild) && !isAlive(hook),
      10_000,
      () => 'the hook and its grandchild to be gone',
    );
  });

  it('follows a deadline moved by a redelivery (an extension) while the hook runs', async () => {
    const ws = workspace();
    const server = await fakeServer();
    // The hook outlives the first deadline by 3 s, which leaves the test 5 s (not 2) to move it and the
    // agent to poll the moved one: at load a heartbeat and a poll can take a second each.
    writeHook(ws, 'migrate-workloads', 'sleep 8; echo migrated');
    const a = agent(ws, server);
    await waitFor(() => server.polls.length > 0);
    const cmd = command('ext', 'migrate-workloads', { inSeconds: 5 });
    server.enqueue('node-a', cmd);

    await waitFor(() => server.heartbeats('ext')[0]);
    cmd.deadline = new Date(Date.now() + 30_000).toISOString(); // the server now hands out the moved deadline
    const final = await waitFor(() => server.finalResults('ext')[0], 30_000);
    a.child.kill('SIGTERM');
    await a.exited;

    expect(final).toMatchObject({ status: 'succeeded', output: 'migrated\n' });
    expect(a.logs.some((l) => l.msg === 'deadline moved')).toBe(true);
  });

  it('after kill -9 mid-hook, reports that command failed "interrupted" on restart and never runs it again', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'migrate-workloads', 'echo run >> "$REC/runs"\necho $$ > "$REC/hook.pid"\nsleep 60');
    server.enqueue('node-a', command('mid', 'migrate-workloads'));

    const first = agent(ws, server);
    await waitFor(() => readRec(ws, 'hook.pid'));
    first.child.kill('SIGKILL');
    await first.exited;
    const orphan = Number(readRec(ws, 'hook.pid'));
    expect(isAlive(orphan)).toBe(true); // its own process group outlived the agent

    // The server still hands the command out (no final result yet).
    const second = agent(ws, server);
    const final = await waitFor(() => server.finalResults('mid')[0]);
    await new Promise((r) => setTimeout(r, 500)); // a few more polls: nothing may run again
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);

    expect(final.status).toBe('failed');
    expect(final.output).toMatch(/^interrupted: agent restarted/);
    expect(readRec(ws, 'runs')).toBe('run\n');
    expect(isAlive(orphan)).toBe(false); // the leftover hook was killed, not left to act on its own
  });

  it('delivers a result finished before a kill -9 after the restart, and never re-runs it although the server redelivers it', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'protect-pcie', 'echo run >> "$REC/runs"\necho "masked $COMMAND_ID"');
    server.failResultsWith = 503; // results do not get through; the server keeps redelivering
    server.enqueue('node-a', command('fin', 'protect-pcie'));

    const first = agent(ws, server);
    await waitFor(() => journalLines(ws).some((l) => l.t === 'finished' && l.id === 'fin'));
    const pollsBefore = server.polls.length;
    await waitFor(() => server.polls.length >= pollsBefore + 3); // redelivered again and again
    first.child.kill('SIGKILL');
    await first.exited;
    expect(readRec(ws, 'runs')).toBe('run\n');
    expect(server.finalResults('fin')).toEqual([]);

    server.failResultsWith = null;
    const second = agent(ws, server);
    const final = await waitFor(() => server.finalResults('fin')[0]);
    expect(final).toMatchObject({ status: 'succeeded', output: 'masked fin\n' });

    // Even a server that forgot it took the result gets it again, without a second run.
    server.enqueue('node-a', command('fin', 'protect-pcie'));
    await waitFor(() => server.finalResults('fin')[1]);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(server.finalResults('fin')[1].status).toBe('succeeded');
    expect(readRec(ws, 'runs')).toBe('run\n');
  });

  it('keeps results while the server is down and delivers them when it is back, logging the outage once', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'restore-pcie', 'sleep 0.8; echo rescanned');
    server.enqueue('node-a', command('down', 'restore-pcie'));

    const a = agent(ws, server);
    await waitFor(() => server.heartbeats('down')[0]);
    await server.stop();
    await waitFor(() => journalLines(ws).some((l) => l.t === 'finished' && l.id === 'down'));
    await new Promise((r) => setTimeout(r, 1500)); // many retries' worth of outage
    await server.start(); // same port
    const final = await waitFor(() => server.finalResults('down')[0]);
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);

    expect(final).toMatchObject({ status: 'succeeded', output: 'rescanned\n' });
    const outages = a.logs.filter((l) => l.msg.startsWith('server unreachable'));
    expect(outages).toHaveLength(1);
    expect(a.logs.some((l) => l.msg === 'server reachable again')).toBe(true);
  });

  it('exits non-zero with a clear message when the token belongs to another node (403) or is unknown (401)', async () => {
    const ws = workspace();
    const server = await fakeServer();
    const forbidden = agent(ws, server, ['--agent', 'node-b']); // tok-a is node-a's token
    expect(await forbidden.exited).toBe(3);
    const line = forbidden.logs.find((l) => l.level === 'error')!;
    expect(line.msg).toMatch(/HTTP 403 .*this token belongs to node node-a, not to agent node-b/);
    // The token may have come from a file (the recommended way): the hint names every place it comes from.
    expect(line.msg).toMatch(/Check the token \(--token-file, --token or REBOOT_AGENT_TOKEN\) and --agent/);

    const unknown = agent(workspace(), server, [], { REBOOT_AGENT_TOKEN: 'wrong' });
    expect(await unknown.exited).toBe(3);
    expect(unknown.logs.find((l) => l.level === 'error')!.msg).toMatch(/did not accept the agent token: HTTP 401/);
  });

  it('retries through 500s from an authorizer that could not read its store, unlike a 403', async () => {
    const ws = workspace();
    const server = await fakeServer();
    server.failPolls = 3;
    writeHook(ws, 'protect-pcie', 'echo protected');
    server.enqueue('node-a', command('after-500s', 'protect-pcie'));
    const a = agent(ws, server);
    await waitFor(
      () => server.finalResults().some((r) => r.id === 'after-500s' && r.status === 'succeeded'),
      20_000,
      () => 'the command after three 500s',
    );
    expect(server.failPolls).toBe(0);
    expect(a.child.exitCode).toBeNull();
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
  });

  it('caps the reported output and keeps its tail', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'allow-coredump', 'seq 1 100000\necho "dump written to /var/crash/core.1"');
    server.enqueue('node-a', command('big', 'allow-coredump'));

    const a = agent(ws, server, ['--once', '--max-output-bytes', '4096']);
    expect(await a.exited).toBe(0);
    const final = server.finalResults('big')[0];
    expect(final.status).toBe('succeeded');
    expect(Buffer.byteLength(final.output!)).toBeLessThanOrEqual(4096);
    expect(final.output).toMatch(/^\[output truncated: \d+ of \d+ bytes dropped, the tail is kept\]\n/);
    expect(final.output!.endsWith('100000\ndump written to /var/crash/core.1\n')).toBe(true);
  });

  it('on SIGTERM lets a running hook finish within the grace period, delivers its result and exits 0', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'resume-workloads', 'sleep 0.7; echo resumed');
    server.enqueue('node-a', command('grace', 'resume-workloads'));

    const a = agent(ws, server, ['--stop-grace-seconds', '10']);
    await waitFor(() => server.heartbeats('grace')[0]);
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(server.finalResults('grace')[0]).toMatchObject({ status: 'succeeded', output: 'resumed\n' });
  });

  it('on SIGTERM kills a hook that outlasts the grace period and reports it failed "agent stopping"', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'migrate-workloads', 'echo $$ > "$REC/hook.pid"\nsleep 60');
    server.enqueue('node-a', command('stuck', 'migrate-workloads'));

    const a = agent(ws, server, ['--stop-grace-seconds', '0.5']);
    await waitFor(() => readRec(ws, 'hook.pid'));
    const t0 = Date.now();
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(8000);
    const final = server.finalResults('stuck')[0];
    expect(final.status).toBe('failed');
    expect(final.output).toMatch(/^agent stopping/);
    expect(isAlive(Number(readRec(ws, 'hook.pid')))).toBe(false);
    // The next start has nothing left to report or run.
    expect(journalLines(ws).find((l) => l.t === 'delivered' && l.id === 'stuck')).toBeTruthy();
  });

  it('drops a result the server does not know (404) with a log line, and carries on with the next command', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'restore-pcie', 'sleep 0.5; echo rescanned');
    writeHook(ws, 'resume-workloads', 'echo resumed');
    server.enqueue('node-a', command('gone', 'restore-pcie'), command('next', 'resume-workloads'));

    const a = agent(ws, server);
    await waitFor(() => server.heartbeats('gone')[0]);
    // The coordinator forgets the command while its hook runs (e.g. the reboot was cancelled).
    server.queues.set(
      'node-a',
      server.queues.get('node-a')!.filter((c) => c.id !== 'gone'),
    );
    server.results.splice(0);
    const next = await waitFor(() => server.finalResults('next')[0]);
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);

    expect(next.status).toBe('succeeded');
    expect(server.finalResults('gone')).toEqual([]);
    expect(a.logs.find((l) => l.msg === 'result dropped' && l.command === 'gone')?.reason).toMatch(/404/);
    expect(journalLines(ws).find((l) => l.t === 'delivered' && l.id === 'gone')?.dropped).toMatch(/404/);
  });

  it('refuses to start a second agent on the same state directory', async () => {
    const ws = workspace();
    const server = await fakeServer();
    const first = agent(ws, server);
    await waitFor(() => server.polls.length > 0);
    const second = agent(ws, server);
    expect(await second.exited).toBe(1);
    expect(second.logs.find((l) => l.level === 'error')?.msg).toMatch(/another agent \(pid \d+\) is running/);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
  });

  it('refuses a bad configuration with a clear message and exit code 2', async () => {
    const ws = workspace();
    const server = await fakeServer();
    const a = agent(ws, server, ['--wait', '99']);
    expect(await a.exited).toBe(2);
    expect(a.stderr()).toMatch(/rebootctl agent: invalid configuration:\n {2}- wait \(--wait\): .*30/);
  });
});
