// `rebootctl rollout start|status|cancel|list` and `rebootctl status` against a real stack (no agents: the first xPU stays asked).
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetTable, progressBar } from '../../cli/commands/rollout.ts';
import {
  api,
  childEnv,
  NODE,
  OPERATOR_TOKEN,
  ROOT,
  startStackProcess,
  tempDir,
  waitFor,
  writeInventory,
  type RunningStack,
} from '../support/stack.ts';

let stack: RunningStack;

const INVENTORY = `nodes:
${['a', 'b', 'c'].map((n) => `  - id: ${n}\n    rack: r1\n    agentToken: agent-token-${n}\n    xpus: [{ id: dpu0 }]\n`).join('')}  - id: d
    rack: r2
    agentToken: agent-token-d
    xpus: [{ id: dpu0 }, { id: dpu1 }]
`;

beforeAll(async () => {
  const dir = tempDir('rollout-cli');
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
});

afterAll(async () => {
  await stack?.stop();
});

function cli(...args: string[]) {
  return spawnSync(NODE, [join(ROOT, 'cli/rebootctl.js'), ...args, '--server', stack.url], {
    env: childEnv({ REBOOT_OPERATOR_TOKEN: OPERATOR_TOKEN }),
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('rebootctl rollout', () => {
  it('prints the plan of a dry run, rack by rack, and starts nothing', () => {
    const res = cli('rollout', 'start', '--max-unavailable', '1', '--reason', 'fw 24.10', '--dry-run');
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/dry run: 5 xPUs would reboot/);
    expect(
      res.stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.trim()),
    ).toEqual(['1. a/dpu0', '2. b/dpu0', '3. c/dpu0', '4. d/dpu0', '5. d/dpu1']);
  });

  it('starts a rollout of a rack, shows its progress as plain lines off a terminal, shows it in the fleet table, and cancels it', async () => {
    const started = cli('rollout', 'start', '--rack', 'r1', '--max-unavailable', '1', '--reason', 'fw 24.10');
    expect(started.status, started.stderr).toBe(0);
    const id = /rollout (ro-\S+) running: 3 xPUs/.exec(started.stdout)?.[1];
    expect(id).toBeDefined();
    await waitFor(
      'the first xPU asked',
      async () => (await api(stack.url, `/v1/rollouts/${id}`, { token: OPERATOR_TOKEN })).json.inFlight === 1,
    );

    const status = cli('rollout', 'status', id!);
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).not.toContain('\x1b['); // no terminal: no bar, no cursor moves
    expect(status.stdout.split('\n')[0]).toBe(`${id} running: 0/3 done, 0 failed, 1 in flight`);
    expect(status.stdout).toMatch(/a\/dpu0\s+sent/);
    expect(status.stdout).toMatch(/c\/dpu0\s+pending/);

    const fleet = cli('status');
    expect(fleet.status, fleet.stderr).toBe(0);
    expect(fleet.stdout).toMatch(/^RACK\s+NODE\s+STATE\s+HOLDS\s+REBOOTS/m);
    expect(fleet.stdout).toMatch(/^r1\s+a\s+idle\s+-\s+dpu0 asked by a rollout$/m);
    expect(fleet.stdout).toMatch(/^r2\s+d\s+idle/m);
    expect(fleet.stdout).toContain(`${id} running: 0/3 done, 0 failed, 1 in flight  fw 24.10`);

    const cancel = cli('rollout', 'cancel', id!, '--reason', 'wrong image');
    expect(cancel.status, cancel.stderr).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`${id} cancelled`));
    expect(cli('rollout', 'list').stdout).toContain(`${id} cancelled`);
    const again = cli('rollout', 'cancel', id!);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/409 RolloutEnded/);
  });

  it('refuses two selectors before asking the server: a usage error, exit 2', () => {
    const res = cli('rollout', 'start', '--rack', 'r1', '--node', 'a', '--max-unavailable', '1', '--reason', 'x');
    expect(res.status).toBe(2);
    expect(res.stderr).toMatch(/at most one of --node, --rack/);
  });
});

describe('formatting', () => {
  it('draws done, failed and in-flight cells in proportion', () => {
    const plan = Array.from({ length: 10 }, () => ({}));
    expect(progressBar({ plan, done: plan.slice(0, 5), failed: plan.slice(0, 1), inFlight: 2 }, 10)).toBe('[#####x>>--]');
    expect(progressBar({ plan, done: plan, failed: [], inFlight: 0 }, 10)).toBe('[##########]');
  });

  it('lists budgets and holds under the table when there are some', () => {
    const lines = fleetTable({
      totals: { nodes: 1, inFlight: 1, queued: 1, unavailableNodes: 1 },
      racks: [
        {
          rack: 'r1',
          nodes: [
            {
              id: 'a',
              state: 'queued',
              holds: ['h-1'],
              reboots: [{ id: 'xr-1', kind: 'xpu', xpu: 'dpu0', status: 'queued', deadline: '2030-01-01T00:05:00.000Z' }],
            },
          ],
        },
      ],
      budgets: [{ per: 'rack', key: 'r1', maxUnavailable: 1, unavailable: 1 }],
      holds: [{ id: 'h-1', selector: { rack: 'r1' }, reason: 'audit' }],
      rollouts: [],
    });
    expect(lines).toContain('  rack r1                  1/1 unavailable  (full)');
    expect(lines.find((l) => l.startsWith('r1'))).toMatch(/^r1\s+a\s+queued\s+h-1\s+dpu0 queued until 00:05:00 \(xr-1\)$/);
    expect(lines).toContain('  h-1                      rack=r1  audit');
  });
});

describe('rebootctl rollout start when the answer is lost', () => {
  it('sends the start again with the same Idempotency-Key, so the repeat answers the rollout the first started', async () => {
    // The first start reaches the server and its answer is lost (the connection dies, as when the stack is
    // killed inside the request); the second gets the answer.
    const seen: Array<{ key: string | undefined; body: string }> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        seen.push({ key: req.headers['idempotency-key'] as string | undefined, body });
        if (seen.length === 1) return void req.socket.destroy();
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'ro-first', status: 'running', plan: [{ node: 'a', xpu: 'dpu0' }] }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const child = spawn(
        NODE,
        [join(ROOT, 'cli/rebootctl.js'), 'rollout', 'start', '--node', 'a', '--max-unavailable', '1', '--reason', 'fw', '--server', url],
        {
          env: childEnv({ REBOOT_OPERATOR_TOKEN: OPERATOR_TOKEN }),
        },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      expect(code, err).toBe(0);
      expect(out).toContain('rollout ro-first running: 1 xPUs');
      expect(err).toMatch(/sending it again \(Idempotency-Key /);
      expect(seen).toHaveLength(2);
      expect(seen[0].key).toMatch(/^[0-9a-f-]{36}$/);
      expect(seen[1]).toEqual(seen[0]);
    } finally {
      server.close();
    }
  }, 30_000);

  it('a refusal (4xx) is not sent again', async () => {
    const res = cli('rollout', 'start', '--node', 'nope', '--max-unavailable', '1', '--reason', 'fw', '--idempotency-key', 'k-1');
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/404/);
    expect(res.stderr).not.toMatch(/sending it again/);
  });
});
