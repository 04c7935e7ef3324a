// The real `rebootctl agent` with its warm gate: used and replenished, never journaled while idle, gone when the agent
// stops or dies, and a crash between the journal and "go" reported exactly as the cold path's.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WARM_GATE_NAME } from '../../agent/warm-gate.ts';
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
  const s = await new FakeServer({ tokens: { 'tok-a': 'node-a' } }).start();
  servers.push(s);
  return s;
}

function agent(ws: Workspace, server: FakeServer, env: Record<string, string> = {}): RunningAgent {
  const a = startAgent(
    ws,
    [
      ...['--server', server.url, '--agent', 'node-a', '--hooks', ws.hooks, '--state', ws.state, '--wait', '1'],
      ...['--heartbeat-seconds', '0.2', '--kill-grace-seconds', '0.5', '--backoff-initial-seconds', '0.05'],
      ...['--backoff-max-seconds', '0.3', '--request-timeout-seconds', '2', '--deliver-timeout-seconds', '3'],
    ],
    { REBOOT_AGENT_TOKEN: 'tok-a', ...env },
  );
  agents.push(a);
  return a;
}

/** The agent's idle gate shells, from /proc: its children whose command line ends in the gate's name. */
function idleGates(agentPid: number): number[] {
  const found: number[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) !== agentPid || state === 'Z') continue;
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(WARM_GATE_NAME)) found.push(Number(p));
    } catch {
      // gone while we looked
    }
  }
  return found;
}

const oneIdleGate = (a: RunningAgent, not?: number) =>
  waitFor(() => {
    const g = idleGates(a.child.pid!);
    return g.length === 1 && g[0] !== not ? g[0] : undefined;
  });

const spawnedPid = (ws: Workspace, id: string) => journalLines(ws).find((l) => l.t === 'spawned' && l.id === id)?.pid;

describe('rebootctl agent: warm gate', () => {
  it('keeps one idle gate (not journaled, not reported), runs each command in the gate forked before it came, and replenishes it', async () => {
    const ws = workspace();
    const server = await fakeServer();
    writeHook(ws, 'migrate-workloads', 'echo "$COMMAND_ID $$ $(pwd -P) $(cat)"');
    const a = agent(ws, server);
    const first = await oneIdleGate(a);
    await waitFor(() => server.polls.length >= 2); // idle for a poll or two
    expect(journalLines(ws).filter((l) => l.t !== 'journal')).toEqual([]);
    expect(a.logs.filter((l) => l.msg === 'hook started')).toEqual([]);

    server.enqueue('node-a', command('w1', 'migrate-workloads'));
    const r1 = await waitFor(() => server.finalResults('w1')[0]);
    expect(spawnedPid(ws, 'w1')).toBe(first);
    expect(r1.status).toBe('succeeded');
    expect(r1.output).toMatch(new RegExp(`^w1 ${first} ${ws.hooks} \\{.*"id":"w1".*\\}\\n$`));

    const second = await oneIdleGate(a, first); // forked after w1's hook started, before w2 exists
    server.enqueue('node-a', command('w2', 'migrate-workloads'));
    await waitFor(() => server.finalResults('w2')[0]);
    expect(spawnedPid(ws, 'w2')).toBe(second);
    expect(a.logs.filter((l) => l.msg === 'hook started').map((l) => [l.command, l.pid, l.gate])).toEqual([
      ['w1', first, 'warm'],
      ['w2', second, 'warm'],
    ]);

    // Stopping closes the idle gate: nothing of the agent is left behind.
    const third = await oneIdleGate(a, second);
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    await waitFor(() => !isAlive(third));
  });

  it('an idle gate exits on EOF when the agent is killed -9', async () => {
    const ws = workspace();
    const server = await fakeServer();
    const a = agent(ws, server);
    const gate = await oneIdleGate(a);
    a.child.kill('SIGKILL');
    await a.exited;
    await waitFor(() => !isAlive(gate));
  });

  /**
   * Kills the agent right after the `spawned` record's fsync, before it writes to the gate (a preload wraps the
   * journal's writeSync/fsyncSync), then restarts it. Returns the reported output and whether the gate was the idle one.
   */
  async function crashBetweenJournalAndGo(ws: Workspace): Promise<{ output: string; usedIdleGate: boolean }> {
    const server = await fakeServer();
    writeHook(ws, 'migrate-workloads', 'echo run >> "$REC/runs"');
    const preload = join(ws.dir, 'crash-after-spawned.cjs');
    writeFileSync(
      preload,
      `const fs = require('fs');
const { writeSync, fsyncSync } = fs;
let armed = false;
fs.writeSync = function (fd, data, ...rest) {
  if (typeof data === 'string' && data.includes('"t":"spawned"')) armed = true;
  return writeSync.call(this, fd, data, ...rest);
};
fs.fsyncSync = function (fd) {
  fsyncSync(fd);
  if (armed) process.kill(process.pid, 'SIGKILL');
};
`,
    );
    const first = agent(ws, server, { NODE_OPTIONS: `--require ${preload}` });
    const idle = await oneIdleGate(first);
    server.enqueue('node-a', command('x1', 'migrate-workloads'));
    await first.exited;
    expect(first.child.signalCode).toBe('SIGKILL');
    const journaled = spawnedPid(ws, 'x1') as number;
    expect(journaled).toBeGreaterThan(0);
    await waitFor(() => !isAlive(journaled)); // the gate it journaled saw EOF and exited: no hook ran

    const second = agent(ws, server);
    const final = await waitFor(() => server.finalResults('x1')[0]);
    await new Promise((r) => setTimeout(r, 300)); // a few more polls: nothing may run it
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(readRec(ws, 'runs')).toBe('');
    expect(final.status).toBe('failed');
    return { output: final.output!.replace(/\(started [^)]*\)/, '(started T)'), usedIdleGate: journaled === idle };
  }

  it('a kill -9 between the journal and "go" runs no hook, and the restart reports it interrupted as for a cold spawn', async () => {
    const warm = await crashBetweenJournalAndGo(workspace());
    // A hooks directory whose name has a newline: the gate's lines cannot carry it, so the same agent spawns cold.
    const ws = workspace();
    const odd = { ...ws, hooks: join(ws.dir, 'hooks\nodd') };
    mkdirSync(odd.hooks);
    const cold = await crashBetweenJournalAndGo(odd);
    expect(warm.usedIdleGate).toBe(true);
    expect(cold.usedIdleGate).toBe(false);
    expect(warm.output).toBe('interrupted: agent restarted while the hook ran (started T); not run again');
    expect(cold.output).toBe(warm.output);
  });
});
