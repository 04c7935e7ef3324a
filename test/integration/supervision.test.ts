// Issue 14: /healthz names the dependency that does not answer; a child killed -9 is started again and the stack works on.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, OPERATOR_TOKEN, startStackProcess, tempDir, waitFor, writeInventory, type RunningStack } from '../support/stack.ts';

const INVENTORY = `
nodes:
  - id: node-a
    trusted: true
    agentToken: agent-token-node-a
    xpus: [{ id: dpu0 }, { id: dpu1 }, { id: dpu2 }]
`;

let stack: RunningStack;
let dataDir: string;
const stopped = new Set<number>();

beforeAll(async () => {
  const dir = tempDir('supervise');
  dataDir = join(dir, 'data');
  stack = await startStackProcess({ dataDir, nodesFile: writeInventory(dir, INVENTORY) });
});
afterAll(async () => {
  for (const pid of stopped) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  }
  await stack?.stop('SIGKILL');
});

const CHILDREN = [
  { name: 'dynalite', pidFile: 'dynamodb/dynalite.pid', dependency: 'store', xpu: 'dpu0' },
  { name: 'fauxqs', pidFile: 'sqs/fauxqs.pid', dependency: 'queue', xpu: 'dpu1' },
] as const;

const childPid = (pidFile: string) => Number(readFileSync(join(dataDir, pidFile), 'utf8').trim());

describe('supervised children and /healthz', () => {
  it('answers 200 {"ok":true} while everything answers', async () => {
    const res = await api(stack.url, '/healthz');
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ ok: true });
  });

  for (const child of CHILDREN) {
    it(`answers 503 naming the ${child.dependency} while ${child.name} does not answer (SIGSTOP), 200 again after`, async () => {
      const pid = childPid(child.pidFile);
      process.kill(pid, 'SIGSTOP');
      stopped.add(pid);
      try {
        const res = await waitFor('a 503', async () => {
          const r = await api(stack.url, '/healthz');
          return r.status === 503 ? r : undefined;
        });
        expect(res.json.ok).toBe(false);
        expect(res.json.unavailable).toEqual([child.dependency]);
      } finally {
        process.kill(pid, 'SIGCONT');
        stopped.delete(pid);
      }
      await waitFor('healthz 200 again', async () => (await api(stack.url, '/healthz')).status === 200);
    });

    it(`starts ${child.name} again after kill -9, and events are processed through it`, async () => {
      const pid = childPid(child.pidFile);
      process.kill(pid, 'SIGKILL');
      await waitFor(
        `${child.name} started again`,
        async () => childPid(child.pidFile) !== pid && (await api(stack.url, '/healthz')).status === 200,
      );
      expect(stack.output()).toContain(`${child.name} died and was started again`);
      const posted = await api(stack.url, '/v1/events', {
        token: 'agent-token-node-a',
        body: { id: `after-${child.name}`, type: 'xpu.reboot.pending', node: 'node-a', xpu: child.xpu },
      });
      expect(posted.status).toBe(202);
      await waitFor('the reboot', async () => {
        const items = (await api(stack.url, '/v1/reboots', { token: OPERATOR_TOKEN })).json?.items as { xpu: string }[] | undefined;
        return items?.some((r) => r.xpu === child.xpu);
      });
    });
  }
});
