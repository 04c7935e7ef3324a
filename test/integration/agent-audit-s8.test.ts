// Session-8 acceptance audit of the edge agent and kit (contract 5, 6, 7.2, 7.5), black box: real
// `rebootctl` processes against one real local stack, with the world misbehaving (kill -9 of the agent
// at chosen points, a lost response, the stack killed under parked polls, hooks that misbehave, tokens
// that are wrong, rotated or revoked). Scenarios already covered elsewhere (agent-stack, agent, identities,
// participants) are not repeated; see the file list in docs/edge-kit.md.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_OPTIONS } from '../../agent/options.ts';
import { REQUIRED_HOOKS, roleOf } from '../../agent/roles.ts';
import {
  api,
  childEnv,
  freePort,
  NODE,
  OPERATOR_TOKEN,
  ROOT,
  startAgent,
  startStackProcess,
  tempDir,
  waitFor,
  writeHooks,
  writeInventory,
  type RunningAgent,
  type RunningStack,
} from '../support/stack.ts';

const tokenOf = (node: string) => `agent-token-for-${node}`;
const NEXT = (node: string) => `${tokenOf(node)}-next`;
const XPU_TOKEN = (node: string) => `xpu-token-for-${node}-dpu0`;

/** Each scenario gets a node of its own; short policies because real time passes here. */
const NODES: Record<string, { notice: number; xpuToken?: boolean }> = {
  'n-ack': { notice: 60 },
  'n-gap': { notice: 60 },
  'n-lost': { notice: 60 },
  'n-out': { notice: 60 },
  'n-fork': { notice: 60 },
  'n-cancel': { notice: 60 },
  'n-tok': { notice: 60, xpuToken: true },
  'n-wd': { notice: 8 },
  'n-down': { notice: 60 },
  'n-rev': { notice: 60 },
  'n-gate': { notice: 60 },
  'n-hang': { notice: 6 },
  'n-roll': { notice: 60 },
  'n-ahead': { notice: 60 },
  'n-behind': { notice: 6 },
  'n-twice': { notice: 60 },
};

function inventory(revoked: string[] = []): string {
  return `nodes:\n${Object.entries(NODES)
    .map(
      ([id, n]) => `  - id: ${id}
    tenant: t1
    trusted: true
    agentToken: ${revoked.includes(id) ? `${tokenOf(id)}-replaced` : tokenOf(id)}
    agentTokenNext: ${NEXT(id)}${revoked.includes(id) ? '-replaced' : ''}
    bmcToken: bmc-token-for-${id}
    policy:
      xpuReboot:
        noticeSeconds: ${n.notice}
        maxExtensionSeconds: 600
        maxExtensions: 3
        heartbeatSeconds: 30
        commandSeconds: 20
        recoverySeconds: 60
    xpus:
      - id: dpu0${n.xpuToken ? `\n        agentToken: ${XPU_TOKEN(id)}` : ''}
`,
    )
    .join('')}`;
}

let dir: string;
let stack: RunningStack;
let port: string;
let nodesFile: string;
const agents: RunningAgent[] = [];
const pids: number[] = [];

beforeAll(async () => {
  dir = tempDir('agent-audit-s8');
  port = String(await freePort());
  nodesFile = writeInventory(dir, inventory());
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile, env: { PORT: port } });
}, 120_000);

afterAll(async () => {
  for (const a of agents) {
    try {
      a.proc.kill('SIGCONT');
    } catch {}
  }
  await Promise.all(agents.map((a) => a.stop('SIGKILL')));
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {}
  }
  await stack?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : [];
}

/** Each hook logs "<type> start" and "<type> end" around its body to `log`. */
function logged(log: string, hooks: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(hooks).map(([n, body]) => [n, `cat > /dev/null\necho "${n} start" >> ${log}\n${body}\necho "${n} end" >> ${log}`]),
  );
}

function agent(
  id: string,
  hooks: Record<string, string>,
  opts: { token?: string; state?: string; url?: string; hooksDir?: string; env?: Record<string, string> } = {},
): RunningAgent {
  const a = startAgent({
    url: opts.url ?? stack.url,
    agent: id,
    token: opts.token ?? tokenOf(id.split('.')[0]),
    hooks: writeHooks(opts.hooksDir ?? join(dir, `hooks-${id}`), {
      ...Object.fromEntries(REQUIRED_HOOKS[roleOf(id)].map((t) => [t, 'cat > /dev/null'])),
      ...hooks,
    }),
    state: opts.state ?? join(dir, `state-${id}`),
    args: ['--heartbeat-seconds', '1', '--kill-grace-seconds', '1', '--backoff-initial-seconds', '0.2', '--backoff-max-seconds', '1'],
    env: opts.env,
  });
  agents.push(a);
  return a;
}

function exitOf(a: RunningAgent, ms = 20_000): Promise<number | null | 'still running'> {
  if (a.proc.exitCode !== null || a.proc.signalCode !== null) return Promise.resolve(a.proc.exitCode);
  return Promise.race([
    new Promise<number | null>((r) => a.proc.once('exit', (code) => r(code))),
    sleep(ms).then(() => 'still running' as const),
  ]);
}

const notice = async (node: string, id: string) => {
  const res = await api(stack.url, '/v1/events', {
    token: `bmc-token-for-${node}`,
    body: { id, type: 'xpu.reboot.pending', node, xpu: 'dpu0' },
  });
  expect(res.status).toBe(202);
  return waitFor(
    `the reboot of ${node}`,
    async () => (await api(stack.url, `/v1/reboots?node=${node}`, { token: OPERATOR_TOKEN })).json?.items?.[0],
  );
};
const rebootOf = async (id: string) => (await api(stack.url, `/v1/reboots/${id}`, { token: OPERATOR_TOKEN })).json;
const until = (id: string, what: string, ok: (r: any) => boolean, ms = 40_000) =>
  waitFor(
    `reboot ${id}: ${what}`,
    async () => {
      const r = await rebootOf(id);
      return r && ok(r) ? r : undefined;
    },
    ms,
  );
const commandOf = (r: any, type: string) => Object.values(r.commands as Record<string, any>).find((c) => c.type === type);
/** History entries that record a final result of this command type (exactly once means one). */
const results = (r: any, type: string) =>
  r.history.filter((h: any) => /^command-(succeeded|failed|skipped)$/.test(h.phase) && h.detail.startsWith(`${type} on `));

function journal(state: string, agentId: string): any[] {
  const file = join(state, agentId, 'journal.jsonl');
  return lines(file).flatMap((l) => {
    try {
      return [JSON.parse(l)];
    } catch {
      return [];
    }
  });
}

/**
 * A pass-through HTTP proxy between an agent and the stack that can refuse a request (503, the server
 * "down" for it), lose the response of one it forwarded (502 after the stack took it), or hold that
 * response for ever (the agent never reads what the stack handed it).
 */
type Outcome = 'pass' | 'refuse' | 'lose' | 'hold';
async function proxy(target: string, rule: (method: string, path: string) => Outcome, opts: { shiftMs?: number } = {}) {
  const seen: { method: string; path: string; outcome: string; body?: string }[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const outcome = rule(req.method ?? 'GET', req.url ?? '/');
    seen.push({ method: req.method ?? 'GET', path: req.url ?? '/', outcome });
    if (outcome === 'refuse') {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"Unavailable","message":"proxy refuses"}');
      return;
    }
    try {
      const up = await fetch(target + req.url, {
        method: req.method,
        headers: { authorization: String(req.headers.authorization ?? ''), 'content-type': 'application/json' },
        body: chunks.length ? Buffer.concat(chunks) : undefined,
      });
      let body = await up.text();
      seen.at(-1)!.body = body;
      if (outcome === 'hold') return;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (opts.shiftMs) {
        // A server whose clock is shiftMs ahead of the agent's: its Date header and the deadlines it sends.
        const shift = (iso: string) => new Date(Date.parse(iso) + opts.shiftMs!).toISOString();
        headers.date = new Date(Date.parse(up.headers.get('date') ?? '') + opts.shiftMs).toUTCString();
        if (req.method === 'GET' && up.status === 200 && body.startsWith('['))
          body = JSON.stringify((JSON.parse(body) as any[]).map((c) => ({ ...c, deadline: shift(c.deadline) })));
      }
      if (outcome === 'lose') res.writeHead(502).end('lost');
      else res.writeHead(up.status, headers).end(body);
    } catch {
      res.writeHead(502).end('upstream down');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

describe('kill -9 of the agent at chosen points, then a restart on the same journal', () => {
  it('before it acknowledged a command it was handed: the restarted agent runs it once, its result is recorded once', async () => {
    const log = join(dir, 'ack.log');
    const state = join(dir, 'state-ack');
    // Polls pass until one carries a command; that answer the agent never gets (the stack handed it out).
    let held = false;
    const px = await proxy(stack.url, (m, p) => (m === 'GET' && p.includes('/commands?') && !held ? 'hold' : 'pass'));
    try {
      const hooks = logged(log, { 'migrate-workloads': 'true', 'protect-pcie': 'true' });
      const first = agent('n-ack', hooks, { state, url: px.url });
      const r = await notice('n-ack', 'ack-1');
      await waitFor('a poll answer carrying migrate-workloads', async () => px.seen.some((s) => s.body?.includes('.migrate-workloads"')));
      held = true;
      first.proc.kill('SIGKILL');
      await exitOf(first);
      expect(lines(log)).toEqual([]);
      expect(journal(state, 'n-ack').filter((e) => e.t === 'started')).toEqual([]);

      agent('n-ack', hooks, { state });
      const done = await until(r.id, 'both prepare commands succeeded', (x) =>
        ['migrate-workloads', 'protect-pcie'].every((t) => commandOf(x, t)?.status === 'succeeded'),
      );
      expect(lines(log)).toEqual(['migrate-workloads start', 'migrate-workloads end', 'protect-pcie start', 'protect-pcie end']);
      expect(results(done, 'migrate-workloads')).toHaveLength(1);
      expect(results(done, 'protect-pcie')).toHaveLength(1);
    } finally {
      await px.close();
    }
  });

  it('between the hook ending and the agent recording it: reported failed "interrupted", never run again, recorded once', async () => {
    const log = join(dir, 'gap.log');
    const state = join(dir, 'state-gap');
    const hooks = logged(log, { 'migrate-workloads': 'sleep 2' });
    const first = agent('n-gap', hooks, { state });
    const r = await notice('n-gap', 'gap-1');
    await waitFor('migrate-workloads to start', async () => lines(log).includes('migrate-workloads start'));
    first.proc.kill('SIGSTOP'); // the hook (its own group) runs on and ends; the agent never sees it end
    await waitFor('migrate-workloads to end', async () => lines(log).includes('migrate-workloads end'), 20_000);
    first.proc.kill('SIGKILL');
    await exitOf(first);
    expect(journal(state, 'n-gap').some((e) => e.t === 'finished')).toBe(false);

    agent('n-gap', hooks, { state });
    const done = await until(r.id, 'migrate-workloads reported', (x) => commandOf(x, 'migrate-workloads')?.status === 'failed');
    expect(commandOf(done, 'migrate-workloads').output).toMatch(/^interrupted: agent restarted/);
    await until(r.id, 'protect-pcie succeeded', (x) => commandOf(x, 'protect-pcie')?.status === 'succeeded');
    expect(lines(log).filter((l) => l === 'migrate-workloads start')).toHaveLength(1);
    expect(results(await rebootOf(r.id), 'migrate-workloads')).toHaveLength(1);
  });

  it('after the hook finished, with its result undelivered (server refusing, then a lost response): delivered after the restart, recorded once', async () => {
    const log = join(dir, 'lost.log');
    const state = join(dir, 'state-lost');
    let mode: 'refuse' | 'lose' | 'pass' = 'refuse';
    const isResult = (m: string, p: string) => m === 'POST' && /\/commands\/[^/?]+\.migrate-workloads$/.test(p);
    const px = await proxy(stack.url, (m, p) => (isResult(m, p) ? mode : 'pass'));
    try {
      const hooks = logged(log, { 'migrate-workloads': 'true' });
      const first = agent('n-lost', hooks, { state, url: px.url });
      const r = await notice('n-lost', 'lost-1');
      const id = `${r.id}.migrate-workloads`;
      await waitFor(
        'the result journalled and refused at least twice',
        async () =>
          journal(state, 'n-lost').some((e) => e.t === 'finished' && e.id === id) &&
          px.seen.filter((s) => isResult(s.method, s.path) && s.outcome === 'refuse').length >= 2,
      );
      first.proc.kill('SIGKILL');
      await exitOf(first);
      expect(commandOf(await rebootOf(r.id), 'migrate-workloads').status).not.toBe('succeeded');

      // The restarted agent's first try reaches the stack, but its answer is lost; the retry is a repeat.
      mode = 'lose';
      agent('n-lost', hooks, { state, url: px.url });
      await waitFor('a result forwarded and its answer lost', async () =>
        px.seen.some((s) => isResult(s.method, s.path) && s.outcome === 'lose'),
      );
      mode = 'pass';
      await waitFor('the agent to journal the delivery', async () =>
        journal(state, 'n-lost').some((e) => e.t === 'delivered' && e.id === id),
      );
      const done = await rebootOf(r.id);
      expect(commandOf(done, 'migrate-workloads').status).toBe('succeeded');
      expect(results(done, 'migrate-workloads')).toHaveLength(1);
      expect(lines(log).filter((l) => l === 'migrate-workloads start')).toHaveLength(1);
    } finally {
      await px.close();
    }
  });
});

describe('hooks that misbehave', () => {
  it('huge non-UTF-8 output with NULs from a failing hook: capped, tail kept, delivered and recorded', async () => {
    const state = join(dir, 'state-out');
    // ~3 MB of invalid UTF-8, NUL bytes and a cut sequence, then a last line.
    agent(
      'n-out',
      {
        'migrate-workloads': `cat > /dev/null\nhead -c 3000000 /dev/zero | tr '\\0' '\\377'\nhead -c 100 /dev/zero\nprintf '\\xc3\\n'\necho MIGRATE-TAIL\nexit 3`,
      },
      { state },
    );
    const r = await notice('n-out', 'out-1');
    const failed = await until(r.id, 'migrate-workloads failed', (x) => commandOf(x, 'migrate-workloads')?.status === 'failed');
    expect(commandOf(failed, 'migrate-workloads').output).toMatch(/MIGRATE-TAIL\n?$/);
    const j = journal(state, 'n-out');
    const fin = j.find((e) => e.t === 'finished' && e.id === `${r.id}.migrate-workloads`);
    expect(fin.output).toMatch(/^hook exited with code 3\n\[output truncated: \d+ of \d+ bytes dropped, the tail is kept\]\n/);
    expect(Buffer.byteLength(fin.output)).toBeLessThanOrEqual(65536);
    expect(fin.output).toContain('\uFFFD');
    const delivered = j.find((e) => e.t === 'delivered' && e.id === `${r.id}.migrate-workloads`);
    expect(delivered).toBeTruthy();
    expect(delivered.dropped).toBeUndefined();
  });

  it('a hook whose child outlives it (holding its output pipe): reported when the hook exits, the child left alone', async () => {
    const pidFile = join(dir, 'fork-child.pid');
    agent('n-fork', { 'protect-pcie': `cat > /dev/null\n(sleep 120; echo late) &\necho $! > ${pidFile}\necho protected` });
    const r = await notice('n-fork', 'fork-1');
    const done = await until(r.id, 'protect-pcie succeeded', (x) => commandOf(x, 'protect-pcie')?.status === 'succeeded');
    const child = Number(readFileSync(pidFile, 'utf8'));
    pids.push(child);
    expect(done.status).not.toBe('failed');
    expect(alive(child)).toBe(true); // reported while the child still holds the pipe
  });
});

describe('a hook that hangs past its deadline and ignores SIGTERM', () => {
  it('is killed with its group (SIGKILL after the grace) and reported failed "deadline exceeded"', async () => {
    const pidFile = join(dir, 'hang.pid');
    agent('n-hang', {
      'migrate-workloads': `cat > /dev/null\ntrap '' TERM\n(trap '' TERM; sleep 300) &\necho "$$ $!" > ${pidFile}\nwhile :; do sleep 1; done`,
    });
    const r = await notice('n-hang', 'hang-1');
    const [hook, child] = (await waitFor('the hook to start', async () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim()))
      .split(' ')
      .map(Number);
    pids.push(hook, child);
    // The coordinator stops waiting at the same deadline (timed-out); the agent's result still says why.
    const ended = await until(r.id, "the agent's result recorded", (x) => {
      const c = commandOf(x, 'migrate-workloads');
      return (c?.status === 'failed' || c?.lateStatus === 'failed') && c;
    });
    expect(commandOf(ended, 'migrate-workloads').output).toMatch(/^deadline exceeded: .*killed the hook's process group/);
    expect(alive(hook)).toBe(false);
    expect(alive(child)).toBe(false);
  });
});

describe('a rollout through the example reboot-xpu hook', () => {
  it('the hook announces with the token file the agent gives it (a --token agent too), and the rollout follows that reboot', async () => {
    const hooks = join(dir, 'hooks-n-roll.dpu0');
    mkdirSync(hooks, { recursive: true });
    for (const f of ['reboot-xpu', '_lib.sh']) copyFileSync(join(ROOT, 'agent/examples/hooks', f), join(hooks, f));
    const rebootctl = join(dir, 'rebootctl');
    writeFileSync(rebootctl, `#!/bin/sh\nexec ${NODE} ${join(ROOT, 'cli/rebootctl.js')} "$@"\n`);
    chmodSync(rebootctl, 0o755);
    agent('n-roll', {});
    agent('n-roll.dpu0', {}, { hooksDir: hooks, env: { REBOOTCTL: rebootctl, REBOOT_HOOK_CONFIG: '/dev/null' } });
    const started = await api(stack.url, '/v1/rollouts', {
      token: OPERATOR_TOKEN,
      body: { selector: { node: 'n-roll' }, maxUnavailable: 1, reason: 'firmware 1.2', noticeSeconds: 30 },
    });
    expect(started.status).toBe(201);
    const r = await waitFor(
      'the announced reboot',
      async () => (await api(stack.url, '/v1/reboots?node=n-roll', { token: OPERATOR_TOKEN })).json?.items?.[0],
    );
    expect(r.kind).toBe('xpu');
    expect(r.history[0].by).toBe('agent:n-roll.dpu0');
    const rollout = await waitFor('the rollout to follow it', async () => {
      const g = (await api(stack.url, `/v1/rollouts/${started.json.id}`, { token: OPERATOR_TOKEN })).json;
      return g.pending[0]?.state === 'rebooting' && g;
    });
    expect(rollout.status).toBe('running');
    expect(rollout.pending[0].rebootId).toBe(r.id);
    expect(rollout.failed).toEqual([]);
  });
});

describe("an agent whose clock is off by an hour (the coordinator's clock dates deadlines, contract 7.1)", () => {
  it('ahead: still runs the commands it is sent, instead of taking every deadline as passed', async () => {
    const px = await proxy(stack.url, () => 'pass', { shiftMs: -3_600_000 });
    try {
      const log = join(dir, 'ahead.log');
      agent('n-ahead', logged(log, { 'migrate-workloads': 'true', 'protect-pcie': 'true' }), { url: px.url });
      const r = await notice('n-ahead', 'ahead-1');
      const done = await until(r.id, 'prepared', (x) =>
        ['migrate-workloads', 'protect-pcie'].every((t) => ['succeeded', 'failed'].includes(commandOf(x, t)?.status)),
      );
      expect(commandOf(done, 'migrate-workloads')).toMatchObject({ status: 'succeeded' });
      expect(lines(log)).toContain('protect-pcie end');
    } finally {
      await px.close();
    }
  });

  it("behind: kills a hook at the command's deadline by the server's clock, not an hour later", async () => {
    const px = await proxy(stack.url, () => 'pass', { shiftMs: 3_600_000 });
    const state = join(dir, 'state-behind');
    try {
      agent('n-behind', { 'migrate-workloads': 'cat > /dev/null\nsleep 300' }, { url: px.url, state });
      const r = await notice('n-behind', 'behind-1');
      const id = `${r.id}.migrate-workloads`;
      const fin = await waitFor(
        'the hook killed and its result journalled',
        async () => journal(state, 'n-behind').find((e) => e.t === 'finished' && e.id === id),
        40_000,
      );
      expect(fin.status).toBe('failed');
      expect(fin.output).toMatch(/^deadline exceeded: /);
      // It names the deadline the server sent (not that time on this machine's clock).
      const started = journal(state, 'n-behind').find((e) => e.t === 'started' && e.id === id);
      expect(fin.output).toContain(`the command's deadline ${started.deadline} passed`);
    } finally {
      await px.close();
    }
  });
});

describe('stopping the agent twice', () => {
  it('a second SIGTERM kills the running hook and exits 130 at once; the restart reports the hook interrupted', async () => {
    const pidFile = join(dir, 'twice.pid');
    const state = join(dir, 'state-twice');
    const hooks = { 'migrate-workloads': `cat > /dev/null\necho $$ > ${pidFile}\nsleep 300` };
    const first = agent('n-twice', hooks, { state });
    const r = await notice('n-twice', 'twice-1');
    const hook = Number(await waitFor('the hook to run', async () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim()));
    pids.push(hook);
    first.proc.kill('SIGTERM');
    await waitFor('the first stop to be taken', async () => first.output().includes('stop requested'));
    expect(alive(hook)).toBe(true); // the stop grace (30 s) lets it run on
    first.proc.kill('SIGTERM');
    expect(await exitOf(first, 10_000)).toBe(130);
    await waitFor('the hook to be gone', async () => !alive(hook), 5_000);

    agent('n-twice', hooks, { state });
    const done = await until(r.id, 'migrate-workloads reported', (x) => commandOf(x, 'migrate-workloads')?.status === 'failed');
    expect(commandOf(done, 'migrate-workloads').output).toMatch(/^interrupted: agent restarted/);
  });
});

describe('a command of a reboot cancelled meanwhile', () => {
  it('the running hook finishes, its late result is taken, and the host is put back in order', async () => {
    const log = join(dir, 'cancel.log');
    const state = join(dir, 'state-cancel');
    const a = agent(
      'n-cancel',
      logged(log, { 'migrate-workloads': 'sleep 3', 'protect-pcie': 'true', 'restore-pcie': 'true', 'resume-workloads': 'true' }),
      { state },
    );
    const r = await notice('n-cancel', 'cancel-1');
    await waitFor('migrate-workloads to start', async () => lines(log).includes('migrate-workloads start'));
    const res = await api(stack.url, `/v1/reboots/${r.id}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'audit' } });
    expect(res.status).toBe(200);
    await waitFor('resume-workloads to run', async () => lines(log).includes('resume-workloads end'), 30_000);
    const log1 = lines(log).filter((l) => l.endsWith(' start'));
    // Undo after do: restore-pcie never before a protect-pcie that ran, resume-workloads last.
    if (log1.includes('protect-pcie start')) expect(log1.indexOf('protect-pcie start')).toBeLessThan(log1.indexOf('restore-pcie start'));
    expect(log1.at(-1)).toBe('resume-workloads start');
    expect((await rebootOf(r.id)).status).toBe('cancelled');
    await waitFor('every result delivered', async () => {
      const j = journal(state, 'n-cancel');
      const fin = j.filter((e) => e.t === 'finished').map((e) => e.id);
      return fin.length >= 3 && fin.every((id) => j.some((e) => e.t === 'delivered' && e.id === id));
    });
    expect(journal(state, 'n-cancel').filter((e) => e.t === 'delivered' && e.dropped)).toEqual([]);
    expect(a.proc.exitCode).toBeNull();
  });
});

describe('tokens', () => {
  it('a rotated token (agentTokenNext) works; a wrong one is 401, a host token on an xPU with its own token 403: exit 3, nothing changed', async () => {
    const log = join(dir, 'tok.log');
    const r = await notice('n-tok', 'tok-1');
    await until(r.id, 'commands written', (x) => commandOf(x, 'protect-pcie'));
    const before = await rebootOf(r.id);

    const hooks = logged(log, { 'migrate-workloads': 'true', 'protect-pcie': 'true' });
    const wrong = agent('n-tok', hooks, { token: 'not-a-token-of-anyone', state: join(dir, 'state-tok-wrong') });
    expect(await exitOf(wrong)).toBe(3);
    expect(wrong.output()).toMatch(/did not accept the agent token: HTTP 401/);
    const xpuAsHost = agent('n-tok.dpu0', hooks, { token: tokenOf('n-tok'), state: join(dir, 'state-tok-xpu') });
    expect(await exitOf(xpuAsHost)).toBe(3);
    expect(xpuAsHost.output()).toMatch(/refused agent n-tok\.dpu0 .*HTTP 403/);
    expect(lines(log)).toEqual([]);
    expect(await rebootOf(r.id)).toEqual(before);

    agent('n-tok', hooks, { token: NEXT('n-tok') });
    await until(r.id, 'prepared by the agent on its next token', (x) => commandOf(x, 'protect-pcie')?.status === 'succeeded');
    expect(lines(log)).toEqual(['migrate-workloads start', 'migrate-workloads end', 'protect-pcie start', 'protect-pcie end']);
  });
});

describe('the xPU hears every moved deadline (its watchdog)', () => {
  it("a host hook's extension reaches the xPU as postpone-reboot, and the host hook is not killed at the old deadline", async () => {
    const log = join(dir, 'wd.log');
    const args = join(dir, 'wd-postpone.json');
    const ask = `node -e 'const fs=require("fs");const t=fs.readFileSync(process.env.REBOOT_AGENT_TOKEN_FILE,"utf8").trim();fetch(process.env.REBOOT_AGENT_SERVER+"/v1/reboots/"+process.env.REBOOT_ID+"/extensions",{method:"POST",headers:{authorization:"Bearer "+t,"content-type":"application/json"},body:JSON.stringify({seconds:30,reason:"draining"})}).then(async r=>{console.log(r.status,await r.text());process.exit(r.status===200?0:1)})'`;
    agent('n-wd', logged(log, { 'migrate-workloads': `${ask}\nsleep 12` }));
    agent('n-wd.dpu0', { 'postpone-reboot': `cat > ${args}` });
    const r = await notice('n-wd', 'wd-1');
    const extended = await until(r.id, 'extended', (x) => x.extensions.length === 1);
    const postponed = await waitFor(
      'postpone-reboot on the xPU',
      async () => existsSync(args) && readFileSync(args, 'utf8').trim() && JSON.parse(readFileSync(args, 'utf8')),
    );
    expect(postponed.type).toBe('postpone-reboot');
    expect(new Date(postponed.args.deadline).getTime()).toBe(new Date(extended.deadline).getTime());
    const done = await until(r.id, 'migrate-workloads reported', (x) =>
      ['succeeded', 'failed'].includes(commandOf(x, 'migrate-workloads')?.status),
    );
    expect(commandOf(done, 'migrate-workloads').status).toBe('succeeded');
    expect(lines(log)).toContain('migrate-workloads end');
  });
});

describe('exit codes of the edge kit commands', () => {
  const run = (...args: string[]) =>
    spawnSync(NODE, [join(ROOT, 'cli/rebootctl.js'), ...args], { cwd: ROOT, env: childEnv(), encoding: 'utf8', timeout: 30_000 });

  it('a usage error (unknown option, missing required option) is exit 2 for agent, agent check, announce and host-reboot', () => {
    const cases = [
      ['agent', '--no-such-option'],
      ['agent', 'check', '--agent', 'n-x', '--hooks', dir, '--no-such-option'],
      ['announce', '--server', 'http://127.0.0.1:1', '--agent', 'n-x.dpu0', '--token', 't'], // no --reason
      ['announce', '--server', 'http://127.0.0.1:1', '--agent', 'n-x.dpu0', '--token', 't', '--reason', 'r', '--bogus'],
      ['host-reboot', '--agent', 'n-x', '--token', 't'], // no --server
    ];
    for (const args of cases) {
      const res = run(...args);
      expect({ args, status: res.status }).toEqual({ args, status: 2 });
      expect(res.stderr).toMatch(/error: (unknown option|required option)/);
    }
    // A token that cannot go into an Authorization header is a bad configuration, not an unreachable server.
    const twoLines = join(dir, 'two-line-token');
    writeFileSync(twoLines, `${tokenOf('n-x')}\nsecond line\n`, { mode: 0o600 });
    const hooks = writeHooks(join(dir, 'hooks-usage'), {});
    for (const token of [
      ['--token-file', twoLines],
      ['--token', 'a token with spaces'],
    ]) {
      const res = run(
        'agent',
        '--server',
        stack.url,
        '--agent',
        'n-x',
        '--hooks',
        hooks,
        '--state',
        join(dir, 'state-usage'),
        '--once',
        ...token,
      );
      expect({ token, status: res.status }).toEqual({ token, status: 2 });
      expect(res.stderr).toMatch(/- token \([^:]*(--token-file|--token)\)+: must be one word of printable ASCII/);
    }
    // The same token file for announce and host-reboot: a usage error at once, not retries until --wait runs out.
    for (const args of [
      ['announce', '--agent', 'n-x.dpu0', '--reason', 'r', '--wait', '5'],
      ['host-reboot', '--agent', 'n-x', '--wait', '5'],
    ]) {
      const res = run(...args, '--server', stack.url, '--token-file', twoLines);
      expect({ args, status: res.status }).toEqual({ args, status: 2 });
      expect(res.stderr).toMatch(/token file .* holds more than one word/);
    }
    // Help is not an error.
    for (const args of [
      ['agent', '--help'],
      ['announce', '--help'],
      ['host-reboot', '--help'],
      ['agent', 'check', '--help'],
    ]) {
      expect({ args, status: run(...args).status }).toEqual({ args, status: 0 });
    }
  });
});

/**
 * What systemd would run as the unit's ExecStop: its Environment= lines, then its EnvironmentFile= (which
 * overrides them), its credentials under %d, ${VAR} expanded. `files` maps the absolute paths the unit names
 * (the host's /etc files) to test files; the installed bundle and the checkout both map to this checkout.
 */
function execStopOf(unitText: string, files: Record<string, string>): { argv: string[]; env: Record<string, string> } {
  const service = unitText.split(/^\[Service\]$/m)[1].split(/^\[/m)[0];
  const values = (key: string) =>
    service
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith(`${key}=`))
      .map((l) => l.slice(key.length + 1));
  const creds = join(dir, 'gate-credentials');
  mkdirSync(creds, { recursive: true });
  for (const c of values('LoadCredential')) {
    const [name, path] = c.split(/:(.*)/s);
    const from = files[path] ?? path;
    // systemd does not start a unit whose credential file is missing.
    if (!existsSync(from)) throw new Error(`LoadCredential=${c}: no such file: systemd would not start the unit`);
    writeFileSync(join(creds, name), readFileSync(from));
  }
  const env: Record<string, string> = {};
  for (const e of values('Environment')) {
    const [k, v] = e.split(/=(.*)/s);
    const value = v.replaceAll('%d', creds).replaceAll('%C', join(dir, 'gate-cache'));
    env[k] = files[value] ?? value;
  }
  for (const f of values('EnvironmentFile')) {
    const path = files[f.replace(/^-/, '')];
    if (!path || !existsSync(path)) continue;
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
      if (m) env[m[1]] = m[2];
    }
  }
  const [stop] = values('ExecStop');
  const argv = stop
    .replace('/usr/bin/node /usr/lib/rebootctl/rebootctl-agent.mjs', `${NODE} ${join(ROOT, 'cli/rebootctl.js')}`)
    .replaceAll('/opt/xpu-reboot-coordinator/node_modules/.bin/node', NODE)
    .replaceAll('/opt/xpu-reboot-coordinator', ROOT)
    .replace(/\$\{(\w+)\}/g, (_, k) => env[k] ?? '')
    .split(/\s+/);
  return { argv, env };
}

describe('rebootctl agent check with a config-file install', () => {
  it('reads the same --config / REBOOT_AGENT_CONFIG as the agent (the unit runs it as ExecStartPre)', () => {
    // Everything in the config file, relative paths relative to it (agent/README.md, Options).
    const conf = join(dir, 'conf');
    writeHooks(join(conf, 'hooks'), Object.fromEntries(REQUIRED_HOOKS.host.map((t) => [t, 'true'])));
    chmodSync(join(conf, 'hooks'), 0o755);
    writeFileSync(join(conf, 'token'), `${tokenOf('n-gate')}\n`, { mode: 0o600 });
    const file = join(conf, 'agent.yaml');
    writeFileSync(file, `server: ${stack.url}\nagent: n-gate\nhooks: hooks\ntokenFile: token\n`);
    const check = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(NODE, [join(ROOT, 'cli/rebootctl.js'), 'agent', 'check', ...args], {
        cwd: dir,
        env: childEnv(env),
        encoding: 'utf8',
        timeout: 30_000,
      });
    for (const res of [check(['--allow-offline'], { REBOOT_AGENT_CONFIG: file }), check(['--config', file])]) {
      expect({ status: res.status, stderr: res.stderr }).toEqual({ status: 0, stderr: '' });
      expect(res.stdout).toContain('accepts the token of agent n-gate');
      expect(res.stdout).toContain('required hook protect-pcie present');
    }
    // Flags and env still win over the file; a bad file is a usage error.
    const wrong = check(['--config', file, '--agent', 'n-gate.dpu0']);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/required hook free-host-context is missing/);
    writeFileSync(join(conf, 'bad.yaml'), 'hookz: hooks\n');
    const bad = check(['--config', join(conf, 'bad.yaml')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown key 'hookz'/);
  });
});

describe('the shipped shutdown gate, installed as the edge kit says', () => {
  it("reaches the coordinator with the host agent's token file and answers within its wait", () => {
    // The host agent's install (agent/README.md): the token in /etc/rebootctl/agent.token, agent.env
    // with the server and the agent id, no token.
    const token = join(dir, 'etc-agent.token');
    writeFileSync(token, `${tokenOf('n-gate')}\n`, { mode: 0o600 });
    const envFile = join(dir, 'etc-agent.env');
    writeFileSync(envFile, `REBOOT_AGENT_SERVER=${stack.url}\nREBOOT_AGENT_ID=n-gate\nREBOOT_GATE_WAIT=2\n`);
    const unit = readFileSync(join(ROOT, 'agent/rebootctl-host-reboot-gate.service'), 'utf8');
    const { argv, env } = execStopOf(unit, { '/etc/rebootctl/agent.token': token, '/etc/rebootctl/agent.env': envFile });
    const res = spawnSync(argv[0], argv.slice(1), { cwd: ROOT, env: { ...childEnv(), ...env }, encoding: 'utf8', timeout: 60_000 });
    const answers = ['0', ...(/^SuccessExitStatus=(.*)$/m.exec(unit)?.[1].split(/\s+/) ?? [])];
    expect({ status: res.status, stderr: res.stderr }).toEqual({ status: expect.any(Number), stderr: expect.any(String) });
    expect(answers).toContain(String(res.status)); // an answer (allowed, denied, timed out), not a unit failure
    expect(res.stderr).toMatch(/still waiting for n-gate\.dpu0/); // no xPU agent runs: it waited, then gave up

    // The form identities.md described before: the token in agent.env itself, no token file. Still an answer.
    const oldEnv = join(dir, 'etc-agent-old.env');
    writeFileSync(
      oldEnv,
      `REBOOT_AGENT_SERVER=${stack.url}\nREBOOT_AGENT_ID=n-gate\nREBOOT_AGENT_TOKEN=${tokenOf('n-gate')}\nREBOOT_GATE_WAIT=1\n`,
    );
    const old = execStopOf(unit, { '/etc/rebootctl/agent.token': join(dir, 'no-such-token-file'), '/etc/rebootctl/agent.env': oldEnv });
    const res2 = spawnSync(old.argv[0], old.argv.slice(1), {
      cwd: ROOT,
      env: { ...childEnv(), ...old.env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect({ status: res2.status, stderr: res2.stderr }).toEqual({
      status: 4,
      stderr: expect.stringMatching(/still waiting for n-gate\.dpu0/),
    });
  });
});

describe('agent/README.md, the options table', () => {
  it('lists every option of `rebootctl agent` with its variable', () => {
    const readme = readFileSync(join(ROOT, 'agent/README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## Options'), readme.indexOf('Exit codes:'));
    const missing = AGENT_OPTIONS.filter((o) => {
      const flag = o.flag.split(' ')[0];
      // Its row names the flag, and the variable in full or as `..._TAIL` (a shared prefix left out).
      const row = table.split('\n').find((l) => new RegExp(`^\\|[^|]*\`${flag}[ \`]`).test(l)) ?? '';
      const vars = [...row.matchAll(/`(REBOOT_AGENT_[A-Z_]+|\.\.\.(_[A-Z_]+))`/g)];
      return !vars.some((m) => m[1] === o.env || (m[2] !== undefined && o.env.endsWith(m[2])));
    });
    expect(missing.map((o) => o.flag)).toEqual([]);
  });
});

describe('the stack killed -9 under parked polls, then restarted; a token revoked meanwhile', () => {
  it('agents ride out the outage (one warning, one recovery line) and run what comes next; the revoked one exits 3', async () => {
    const log = join(dir, 'down.log');
    const survivor = agent('n-down', logged(log, {}));
    const revoked = agent('n-rev', logged(log, {}));
    await waitFor(
      'both agents polling',
      async () => survivor.output().includes('agent starting') && revoked.output().includes('agent starting'),
    );
    await sleep(1000); // parked
    await stack.stop('SIGKILL');
    await waitFor('the outage noticed', async () => survivor.output().includes('server unreachable'), 20_000);
    await sleep(2500); // several retries' worth
    writeFileSync(nodesFile, inventory(['n-rev']));
    stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile, env: { PORT: port } });

    expect(await exitOf(revoked)).toBe(3);
    expect(revoked.output()).toMatch(/did not accept the agent token: HTTP 401/);
    const r = await notice('n-down', 'down-1');
    await until(r.id, 'prepared after the outage', (x) => commandOf(x, 'protect-pcie')?.status === 'succeeded');
    expect(survivor.proc.exitCode).toBeNull();
    const out = survivor.output();
    expect(out.match(/server unreachable; retrying/g)).toHaveLength(1);
    expect(out.match(/server reachable again/g)).toHaveLength(1);
  });
});
