// Issue 14: the DATA_DIR lock is an OS-level lock: two starts at once cannot both run, and a holder killed -9 (even
// a zombie not yet reaped) never keeps it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireDataDirLock, DataDirInUse } from '../../local/lock.ts';
import {
  childEnv,
  NODE,
  OPERATOR_TOKEN,
  ROOT,
  startStackProcess,
  tempDir,
  waitFor,
  writeInventory,
  api,
  type RunningStack,
} from '../support/stack.ts';

const INVENTORY = `
nodes:
  - id: node-a
    trusted: true
    agentToken: agent-token-node-a
    xpus: [{ id: dpu0 }]
`;
const HOLDER = join(ROOT, 'test/fixtures/lock/holder.ts');

const procs: ChildProcess[] = [];
const stacks: RunningStack[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) p.kill('SIGKILL');
  await Promise.all(stacks.splice(0).map((s) => s.stop('SIGKILL')));
});

function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const proc = spawn(cmd, args, { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, output: () => out, exited };
}

const procState = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return 'gone';
  }
};

describe('DATA_DIR lock', () => {
  it('lets exactly one of two stacks started at once run', async () => {
    const dir = tempDir('lock-race');
    const nodesFile = writeInventory(dir, INVENTORY);
    const env = { PORT: '0', HOST: '127.0.0.1', DATA_DIR: join(dir, 'data'), NODES_FILE: nodesFile, OPERATOR_TOKEN };
    const a = run(NODE, [join(ROOT, 'local/main.ts')], env);
    const b = run(NODE, [join(ROOT, 'local/main.ts')], env);
    const outcome = (p: typeof a) =>
      Promise.race([
        p.exited.then((code) => ({ code })),
        waitFor('ready', async () => /ready at/.test(p.output()), 60_000).then(() => ({ ready: true })),
      ]);
    const [ra, rb] = await Promise.all([outcome(a), outcome(b)]);
    const results = [ra, rb];
    // Both outputs on failure: a race of two starts under load is what this checks.
    expect(
      results.filter((r) => 'ready' in r),
      `A: ${a.output()}\nB: ${b.output()}`,
    ).toHaveLength(1);
    const loser = 'ready' in ra ? b : a;
    expect((results.find((r) => 'code' in r) as { code: number }).code).not.toBe(0);
    expect(loser.output()).toMatch(/in use by process/);
    const winner = 'ready' in ra ? a : b;
    const url = /ready at (http:\/\/\S+)/.exec(winner.output())![1];
    expect((await api(url, '/healthz')).status).toBe(200);
  });

  it('is taken over at once from a holder killed -9 that is still a zombie', async () => {
    const dataDir = join(tempDir('lock-zombie'), 'data');
    mkdirSync(dataDir, { recursive: true });
    // The holder's parent (sh exec'ing sleep) never reaps it: after kill -9 it stays a zombie.
    const sh = run('sh', ['-c', `"${NODE}" "${HOLDER}" "${dataDir}" & exec sleep 30`]);
    await waitFor('the holder to lock', async () => /locked \d+/.test(sh.output()), 30_000);
    const holder = Number(/locked (\d+)/.exec(sh.output())![1]);
    expect(() => acquireDataDirLock(dataDir)).toThrow(DataDirInUse);
    process.kill(holder, 'SIGKILL');
    await waitFor('the holder to be a zombie', async () => procState(holder) === 'Z', 10_000, 10);
    const release = acquireDataDirLock(dataDir);
    expect(procState(holder)).toBe('Z');
    release();
  });

  it('starts again one second after kill -9 of the stack', async () => {
    const dir = tempDir('lock-restart');
    const nodesFile = writeInventory(dir, INVENTORY);
    const dataDir = join(dir, 'data');
    const first = await startStackProcess({ dataDir, nodesFile });
    stacks.push(first);
    await first.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 1_000));
    const second = await startStackProcess({ dataDir, nodesFile });
    stacks.push(second);
    expect((await api(second.url, '/healthz')).status).toBe(200);
  });
});
