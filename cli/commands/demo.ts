// `rebootctl demo`: one xPU reboot on an embedded local stack with two real agents, history printed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';

const ROOT = resolve(import.meta.dirname, '../..');
const OPERATOR = 'demo-operator-token';
const AGENT_TOKEN = 'demo-agent-token';

const INVENTORY = `policy:
  xpuReboot:
    noticeSeconds: 60
    maxExtensionSeconds: 300
    maxExtensions: 2
nodes:
  - id: demo-node
    rack: r1
    zone: z1
    tenant: t1
    trusted: true
    bmcToken: demo-bmc-token
    agentToken: ${AGENT_TOKEN}
    xpus:
      - id: dpu0
        persistentPower: false
      - id: dpu1
        persistentPower: false
`;

/** Hooks that only say what a real one would do (agent/examples/hooks has real ones). */
const DEMO_HOOKS = join(ROOT, 'agent/examples/demo-hooks');

async function call(url: string, path: string, token: string, body?: unknown) {
  const res = await fetch(url + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as any };
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run one xPU reboot end to end on an embedded local stack with two agents and sample hooks, then print its history')
    .option('--keep', 'keep the demo data directory')
    .action(async (opts: { keep?: boolean }) => {
      const dir = mkdtempSync(join(tmpdir(), 'rebootctl-demo-'));
      writeFileSync(join(dir, 'nodes.yaml'), INVENTORY);
      const { parseConfig } = await import('../../local/config.ts');
      const { startStack } = await import('../../local/stack.ts');
      const { silentLogger } = await import('../../lambdas/handlers/deps.ts');
      const config = parseConfig({ PORT: '0', DATA_DIR: join(dir, 'data'), NODES_FILE: join(dir, 'nodes.yaml'), OPERATOR_TOKEN: OPERATOR });
      const stack = await startStack({ config, logger: silentLogger });
      console.log(`local stack up at ${stack.url} (data in ${dir})`);
      const agents: ChildProcess[] = ['demo-node', 'demo-node.dpu0'].map((agent) =>
        spawn(
          process.execPath,
          [
            join(ROOT, 'cli/rebootctl.js'),
            'agent',
            '--server',
            stack.url,
            '--agent',
            agent,
            '--hooks',
            DEMO_HOOKS,
            '--state',
            join(dir, `state-${agent}`),
            '--wait',
            '5',
          ],
          {
            env: { ...process.env, REBOOT_AGENT_TOKEN: AGENT_TOKEN },
            stdio: 'ignore',
          },
        ),
      );
      try {
        console.log('dpu0 announces a reboot (xpu.reboot.pending, 60 s notice)...');
        const posted = await call(stack.url, '/v1/events', AGENT_TOKEN, {
          id: 'demo-1',
          type: 'xpu.reboot.pending',
          node: 'demo-node',
          xpu: 'dpu0',
          data: { reason: 'firmware update' },
        });
        if (posted.status !== 202) throw new Error(`event refused: ${JSON.stringify(posted.json)}`);
        let reboot: any;
        let signalled = false;
        const until = Date.now() + 60_000;
        for (;;) {
          const list = await call(stack.url, '/v1/reboots?node=demo-node', OPERATOR);
          reboot = list.json.items[0];
          if (reboot?.status === 'rebooting' && !signalled) {
            console.log('the host is prepared and the xPU was told to reboot early; it goes down and comes back...');
            await call(stack.url, '/v1/events', AGENT_TOKEN, { id: 'demo-2', type: 'xpu.down', node: 'demo-node', xpu: 'dpu0' });
            await call(stack.url, '/v1/events', AGENT_TOKEN, { id: 'demo-3', type: 'xpu.ready', node: 'demo-node', xpu: 'dpu0' });
            signalled = true;
          }
          if (reboot && ['completed', 'failed'].includes(reboot.status)) break;
          if (Date.now() > until) throw new Error(`the demo reboot did not finish in time (status ${reboot?.status})`);
          await new Promise((r) => setTimeout(r, 200));
        }
        console.log(`\nreboot ${reboot.id}: ${reboot.status}${reboot.forced ? ' (forced)' : ''}`);
        for (const h of reboot.history) console.log(`  ${h.at}  ${h.phase.padEnd(18)} ${h.detail}`);
        const cmds = Object.values(reboot.commands ?? {}) as Array<{ type: string; agent: string; status: string }>;
        console.log('\ncommands:');
        for (const c of cmds) console.log(`  ${c.type.padEnd(18)} ${c.agent.padEnd(16)} ${c.status}`);
        process.exitCode = reboot.status === 'completed' ? 0 : 1;
      } finally {
        for (const a of agents) a.kill('SIGTERM');
        await stack.close();
        if (!opts.keep) rmSync(dir, { recursive: true, force: true });
      }
    });
}
