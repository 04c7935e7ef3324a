// `npm run smoke -- --url URL --operator-token T`: an end-to-end check of a deployment (AWS or local) with
// a one-node inventory, two real agents (host and xPU) and one xPU reboot driven to `completed`.
//
// The node: --node/--agent-token name one the deployment knows (its first xPU reboots); or --table (AWS)
// pushes a one-node inventory with fresh tokens first: that REPLACES the deployment's inventory, so only
// for a dedicated smoke stage.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');
const HOOKS = join(ROOT, 'agent/examples/demo-hooks');

export interface SmokeOptions {
  url: string;
  operatorToken: string;
  node?: string;
  agentToken?: string;
  /** AWS: the RebootsTable to push a one-node inventory to (replaces the inventory). */
  table?: string;
  region?: string;
  /** The agents' push channel (mqtt://… locally, wss://… on IoT Core); none: long polls. */
  mqttUrl?: string;
  timeoutSeconds?: number;
  log?: (line: string) => void;
}

export interface SmokeResult {
  ok: boolean;
  rebootId?: string;
  status?: string;
  seconds: number;
  steps: string[];
}

async function call(url: string, path: string, token: string, body?: unknown) {
  const res = await fetch(url.replace(/\/+$/, '') + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runSmoke(opts: SmokeOptions): Promise<SmokeResult> {
  const started = Date.now();
  const steps: string[] = [];
  const log = (s: string) => {
    steps.push(s);
    (opts.log ?? console.log)(s);
  };
  const dir = mkdtempSync(join(tmpdir(), 'rebootctl-smoke-'));
  const agents: ChildProcess[] = [];
  const deadline = Date.now() + (opts.timeoutSeconds ?? 300) * 1000;
  try {
    const health = await call(opts.url, '/healthz', '');
    if (health.status !== 200) throw new Error(`/healthz answered ${health.status}: ${JSON.stringify(health.json)}`);
    log('healthz ok');

    let node = opts.node;
    let token = opts.agentToken;
    let xpu = 'dpu0';
    if (opts.table) {
      node = `smoke-${randomBytes(3).toString('hex')}`;
      token = randomBytes(24).toString('base64url');
      const file = join(dir, 'nodes.json');
      writeFileSync(
        file,
        JSON.stringify({
          policy: { xpuReboot: { noticeSeconds: 120 } },
          nodes: [{ id: node, trusted: true, agentToken: token, xpus: [{ id: xpu }] }],
        }),
      );
      const { pushInventory } = await import('../cli/commands/inventory.ts');
      await pushInventory({ table: opts.table, nodesFile: file, operatorToken: opts.operatorToken, region: opts.region });
      log(`pushed a one-node inventory (${node}) to ${opts.table}`);
    }
    if (!node || !token) throw new Error('give --node and --agent-token, or --table to push a one-node inventory');
    const shown = await call(opts.url, `/v1/nodes/${node}`, opts.operatorToken);
    if (shown.status === 200 && Array.isArray(shown.json?.xpus) && shown.json.xpus[0]?.id) xpu = shown.json.xpus[0].id;

    const args = (agent: string) => [
      join(ROOT, 'cli/rebootctl.js'),
      'agent',
      '--server',
      opts.url,
      '--agent',
      agent,
      '--hooks',
      HOOKS,
      '--state',
      join(dir, `state-${agent}`),
      '--wait',
      '20',
      ...(opts.mqttUrl ? ['--transport', 'auto', '--mqtt-url', opts.mqttUrl] : ['--transport', 'poll']),
    ];
    for (const agent of [node, `${node}.${xpu}`]) {
      const child = spawn(process.execPath, args(agent), { env: { ...process.env, REBOOT_AGENT_TOKEN: token }, stdio: 'ignore' });
      agents.push(child);
    }
    log(`agents ${node} and ${node}.${xpu} started`);

    // A freshly pushed token may need a minute to reach every function (their inventory cache).
    const id = `smoke-${Date.now()}`;
    let posted = await call(opts.url, '/v1/events', token, {
      id,
      type: 'xpu.reboot.pending',
      node,
      xpu,
      data: { reason: 'smoke test', noticeSeconds: 120 },
    });
    while ((posted.status === 401 || posted.status === 403) && opts.table && Date.now() < deadline) {
      await sleep(5_000);
      posted = await call(opts.url, '/v1/events', token, {
        id,
        type: 'xpu.reboot.pending',
        node,
        xpu,
        data: { reason: 'smoke test', noticeSeconds: 120 },
      });
    }
    if (posted.status !== 202) throw new Error(`xpu.reboot.pending refused: ${posted.status} ${JSON.stringify(posted.json)}`);
    log(`announced a reboot of ${node}.${xpu}`);

    let reboot: any;
    let signalled = false;
    let last = '';
    for (;;) {
      const list = await call(opts.url, `/v1/reboots?node=${encodeURIComponent(node)}&limit=5`, opts.operatorToken);
      reboot = (list.json?.items ?? []).find((r: any) => r.xpu === xpu && r.kind === 'xpu');
      if (reboot && reboot.status !== last) {
        last = reboot.status;
        log(`reboot ${reboot.id}: ${reboot.status}`);
      }
      // The host is prepared and the xPU told to go early: play the xPU going down and coming back.
      if (reboot?.status === 'rebooting' && !signalled) {
        for (const type of ['xpu.down', 'xpu.ready']) {
          const r = await call(opts.url, '/v1/events', token, { id: `${id}-${type}`, type, node, xpu });
          if (r.status !== 202) throw new Error(`${type} refused: ${r.status}`);
        }
        signalled = true;
      }
      if (reboot && ['completed', 'failed', 'cancelled', 'denied'].includes(reboot.status)) break;
      if (Date.now() > deadline) throw new Error(`no end within ${opts.timeoutSeconds ?? 300} s (status ${reboot?.status ?? 'none'})`);
      await sleep(1_000);
    }
    const ok = reboot.status === 'completed';
    const commands = Object.values(reboot.commands ?? {}) as Array<{ type: string; agent: string; status: string }>;
    for (const c of commands) log(`  ${c.type} on ${c.agent}: ${c.status}`);
    return { ok, rebootId: reboot.id, status: reboot.status, seconds: Math.round((Date.now() - started) / 100) / 10, steps };
  } catch (err) {
    log(`FAILED: ${(err as Error).message}`);
    return { ok: false, seconds: Math.round((Date.now() - started) / 100) / 10, steps };
  } finally {
    for (const a of agents) a.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      'operator-token': { type: 'string' },
      node: { type: 'string' },
      'agent-token': { type: 'string' },
      table: { type: 'string' },
      region: { type: 'string' },
      'mqtt-url': { type: 'string' },
      timeout: { type: 'string' },
    },
  });
  const operatorToken = values['operator-token'] ?? process.env.OPERATOR_TOKEN;
  if (!values.url || !operatorToken) {
    console.error(
      'usage: npm run smoke -- --url URL --operator-token T [--node ID --agent-token T | --table NAME [--region R]] [--mqtt-url URL]',
    );
    process.exit(2);
  }
  const res = await runSmoke({
    url: values.url,
    operatorToken,
    node: values.node,
    agentToken: values['agent-token'] ?? process.env.REBOOT_AGENT_TOKEN,
    table: values.table,
    region: values.region,
    mqttUrl: values['mqtt-url'],
    timeoutSeconds: values.timeout ? Number(values.timeout) : undefined,
  });
  console.log(res.ok ? `smoke ok: reboot ${res.rebootId} completed in ${res.seconds} s` : `smoke FAILED after ${res.seconds} s`);
  process.exit(res.ok ? 0 : 1);
}
