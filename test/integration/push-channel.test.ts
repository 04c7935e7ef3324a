// The agents' push channel against the local stack: an agent on MQTT gets its commands without a single long poll,
// the broker refuses wrong tokens and foreign topics, and the agent goes back to long polls when the broker dies.
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'mqtt';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { parseConfig } from '../../local/config.ts';
import { startStack, type Stack } from '../../local/stack.ts';
import { api, startAgent, tempDir, waitFor, writeHooks, type RunningAgent } from '../support/stack.ts';

const OPERATOR = 'operator-token-push';
const AGENT_TOKEN = 'agent-token-node-a-push';
let stack: Stack;
let proxy: Server;
let proxyUrl: string;
let agent: RunningAgent | undefined;
/** Every command fetch the agent made, as `wait=<n>`. */
const fetches: string[] = [];

beforeAll(async () => {
  const dir = tempDir('push-channel');
  const nodesFile = join(dir, 'nodes.yaml');
  writeFileSync(
    nodesFile,
    `nodes:\n  - id: node-a\n    trusted: true\n    agentToken: ${AGENT_TOKEN}\n    xpus: [{ id: dpu0 }]\n  - id: node-b\n    agentToken: agent-token-node-b-push\n`,
  );
  stack = await startStack({
    config: parseConfig({ PORT: '0', DATA_DIR: join(dir, 'data'), NODES_FILE: nodesFile, OPERATOR_TOKEN: OPERATOR }),
    logger: silentLogger,
  });
  // A recording proxy between the agent and the API: what the server saw, request by request.
  const target = new URL(stack.url);
  proxy = createServer((req, res) => {
    const url = new URL(req.url!, stack.url);
    if (req.method === 'GET' && url.pathname.endsWith('/commands')) fetches.push(`wait=${url.searchParams.get('wait')}`);
    const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  const address = proxy.address() as { port: number };
  proxyUrl = `http://127.0.0.1:${address.port}`;
}, 30_000);

afterAll(async () => {
  await agent?.stop();
  await new Promise((r) => proxy?.close(r));
  await stack?.close();
});

function tryConnect(username: string, password: string, topic: string): Promise<string> {
  return new Promise((resolve) => {
    const c = connect(stack.mqtt!.url, { username, password, reconnectPeriod: 0, connectTimeout: 5_000 });
    c.on('error', (err) => {
      c.end(true);
      resolve(`error: ${(err as Error).message}`);
    });
    c.on('connect', () =>
      c.subscribe(topic, { qos: 1 }, (err, granted) => {
        c.end(true);
        // A refused SUBACK (0x80) surfaces as a subscribe error in mqtt.js 5.
        resolve(
          err
            ? /Subscribe error/.test(err.message)
              ? 'refused'
              : `error: ${err.message}`
            : granted?.[0]?.qos === 128
              ? 'refused'
              : 'subscribed',
        );
      }),
    );
  });
}

describe('the MQTT broker of the local stack', () => {
  it('lets an agent subscribe to its own wake-up topic only, with its own token', async () => {
    expect(stack.mqtt?.url).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    expect(await tryConnect('node-a', AGENT_TOKEN, 'xpu-reboot/agents/node-a/wake')).toBe('subscribed');
    expect(await tryConnect('node-a.dpu0', AGENT_TOKEN, 'xpu-reboot/agents/node-a.dpu0/wake')).toBe('subscribed');
    expect(await tryConnect('node-a', AGENT_TOKEN, 'xpu-reboot/agents/node-b/wake')).toBe('refused');
    expect(await tryConnect('node-a', 'not-the-token-at-all', 'xpu-reboot/agents/node-a/wake')).toMatch(
      /^error: .*(Bad username or password|Not authorized)/i,
    );
    expect(await tryConnect('node-b', AGENT_TOKEN, 'xpu-reboot/agents/node-b/wake')).toMatch(/^error: .*Not authorized/i);
  });
});

describe('an agent on the push channel', () => {
  it('runs its commands without long-polling, then long-polls once the broker is gone', async () => {
    const dir = tempDir('push-agent');
    const hooks = writeHooks(
      join(dir, 'hooks'),
      Object.fromEntries(
        ['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads'].map((h) => [h, 'cat >/dev/null; echo ok']),
      ),
    );
    agent = startAgent({
      url: proxyUrl,
      agent: 'node-a',
      token: AGENT_TOKEN,
      hooks,
      state: join(dir, 'state'),
      args: ['--transport', 'auto', '--mqtt-url', stack.mqtt!.url],
    });
    await waitFor('the agent on the push channel', async () => agent!.output().includes('push channel up'), 20_000);
    const idleFetches = fetches.length;

    const res = await api(stack.url, '/v1/events', {
      token: OPERATOR,
      body: { id: 'push-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0' },
    });
    expect(res.status).toBe(202);
    const reboot = await waitFor(
      'both host commands succeeded',
      async () => {
        const r = (await api(stack.url, '/v1/reboots?node=node-a', { token: OPERATOR })).json.items[0];
        const cmds = Object.values(r?.commands ?? {}) as Array<{ type: string; status: string }>;
        return cmds.filter((c) => ['migrate-workloads', 'protect-pcie'].includes(c.type) && c.status === 'succeeded').length === 2
          ? r
          : undefined;
      },
      30_000,
    );
    expect(reboot.node).toBe('node-a');
    expect(fetches.length).toBeGreaterThan(idleFetches);
    expect(
      fetches.filter((f) => f !== 'wait=0'),
      agent.output(),
    ).toEqual([]);

    await stack.mqtt!.close();
    await waitFor('a long poll after the broker went away', async () => fetches.some((f) => f === 'wait=5'), 20_000);
    expect(agent.output()).toContain('push channel down');
  }, 90_000);
});
