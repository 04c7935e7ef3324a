// Contract 7.2 in-band path against the real stack process and real agents: `rebootctl announce`
// (deduped with a BMC notice of the same reboot) and `rebootctl host-reboot`'s exit codes 0, 3 and 4.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NODE,
  OPERATOR_TOKEN,
  ROOT,
  api,
  childEnv,
  startAgent,
  startStackProcess,
  tempDir,
  waitFor,
  writeHooks,
  writeInventory,
  type RunningAgent,
  type RunningStack,
} from '../support/stack.ts';

const T = {
  bmcA: 'bmc-a-token-x',
  hostA: 'host-a-token-x',
  dpuA: 'dpu-a-token-x',
  hostG: 'host-g-token-x',
  dpuG: 'dpu-g-token-x',
  hostN: 'host-n-token-x',
  hostT: 'host-t-token-x',
  bmcC: 'bmc-c-token-x',
  hostC: 'host-c-token-x',
  dpuC: 'dpu-c-token-x',
};

const INVENTORY = `
nodes:
  - id: node-a
    trusted: true
    bmcToken: ${T.bmcA}
    agentToken: ${T.hostA}
    xpus: [{ id: dpu0, redfishSystem: /redfish/v1/Systems/Bluefield, agentToken: ${T.dpuA} }]
  - id: node-g
    agentToken: ${T.hostG}
    xpus: [{ id: dpu0, agentToken: ${T.dpuG} }]
  - id: node-n
    agentToken: ${T.hostN}
  - id: node-t
    agentToken: ${T.hostT}
    xpus: [{ id: dpu0 }]
  - id: node-c
    bmcToken: ${T.bmcC}
    agentToken: ${T.hostC}
    xpus: [{ id: dpu0, redfishSystem: /redfish/v1/Systems/Bluefield, agentToken: ${T.dpuC} }]
`;

let dir: string;
let stack: RunningStack;
const agents: RunningAgent[] = [];

interface Run {
  code: Promise<number | null>;
  exited: () => boolean;
  out: () => string;
  err: () => string;
}

function rebootctl(args: string[], env: Record<string, string> = {}): Run {
  const proc = spawn(NODE, [join(ROOT, 'cli/rebootctl.js'), ...args], {
    cwd: ROOT,
    env: childEnv({ REBOOT_BOOT_ID_FILE: join(dir, 'boot_id'), ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  let done = false;
  const code = new Promise<number | null>((r) =>
    proc.once('exit', (c) => {
      done = true;
      r(c);
    }),
  );
  return { code, exited: () => done, out: () => out, err: () => err };
}

async function reboots(node: string): Promise<any[]> {
  return (await api(stack.url, `/v1/reboots?node=${node}`, { token: OPERATOR_TOKEN })).json.items;
}

beforeAll(async () => {
  dir = tempDir('participants');
  writeFileSync(join(dir, 'boot_id'), 'b0000000-0000-4000-8000-000000000001\n');
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await stack?.stop();
});

describe('rebootctl announce', () => {
  it('joins the BMC notice of the same reboot: one reboot, whose id and deadline it prints; a rerun is deduped', async () => {
    const notice = await api(stack.url, '/v1/events/redfish', {
      token: T.bmcA,
      body: {
        '@odata.type': '#Event.v1_7_0.Event',
        Id: 'n1',
        Name: 'Event',
        Events: [
          {
            EventId: 'bmc-notice-1',
            MessageId: 'XpuReboot.1.0.RebootPending',
            MessageArgs: ['300', 'firmware update'],
            OriginOfCondition: { '@odata.id': '/redfish/v1/Systems/Bluefield' },
          },
        ],
      },
    });
    expect(notice.status).toBe(202);
    const fromBmc = await waitFor('the BMC-announced reboot', async () => (await reboots('node-a')).find((r) => r.xpu === 'dpu0'));

    const args = ['announce', '--server', stack.url, '--agent', 'node-a.dpu0', '--reason', 'firmware update', '--json'];
    const tokenFile = join(dir, 'dpu-a.token');
    writeFileSync(tokenFile, `${T.dpuA}\n`);
    const first = rebootctl([...args, '--token-file', tokenFile]);
    expect(await first.code, first.err()).toBe(0);
    const printed = JSON.parse(first.out());
    expect(printed.rebootId).toBe(fromBmc.id);
    expect(printed.deadline).toBe((await reboots('node-a')).find((r) => r.id === fromBmc.id).deadline);
    expect(Date.parse(printed.deadline)).toBeGreaterThan(Date.now());

    // Run again in the same boot: the same event id, so nothing new.
    const again = rebootctl(args, { REBOOT_AGENT_TOKEN: T.dpuA });
    expect(await again.code, again.err()).toBe(0);
    expect(JSON.parse(again.out()).eventId).toBe(printed.eventId);

    const all = (await reboots('node-a')).filter((r) => r.xpu === 'dpu0');
    expect(all.map((r) => r.id)).toEqual([fromBmc.id]);
    const history = (await api(stack.url, `/v1/reboots/${fromBmc.id}`, { token: OPERATOR_TOKEN })).json.history;
    expect(history.some((h: any) => h.detail.includes(`event ${printed.eventId})`))).toBe(true);
    // Who: the BMC announced it, the xPU's agent joined its own notice.
    expect(history[0].by).toBe('bmc:node-a');
    expect(history.find((h: any) => h.detail.includes(`event ${printed.eventId})`)).by).toBe('agent:node-a.dpu0');
  });

  it('announced first, is joined by the BMC notice that follows: still one reboot', async () => {
    const run = rebootctl([
      'announce',
      '--server',
      stack.url,
      '--agent',
      'node-c.dpu0',
      '--reason',
      'fw',
      '--notice',
      '120',
      '--token',
      T.dpuC,
    ]);
    expect(await run.code, run.err()).toBe(0);
    const printed = /^reboot (\S+) deadline (\S+) /.exec(run.out());
    expect(printed).not.toBeNull();
    const notice = await api(stack.url, '/v1/events/redfish', {
      token: T.bmcC,
      body: {
        Events: [
          {
            EventId: 'bmc-c-1',
            MessageId: 'XpuReboot.1.0.RebootPending',
            MessageArgs: ['300', 'fw'],
            OriginOfCondition: '/redfish/v1/Systems/Bluefield',
          },
        ],
      },
    });
    expect(notice.status).toBe(202);
    await waitFor('the BMC notice to join', async () =>
      (await api(stack.url, `/v1/reboots/${printed![1]}`, { token: OPERATOR_TOKEN })).json.history.some((h: any) => h.phase === 'joined'),
    );
    expect((await reboots('node-c')).map((r) => r.id)).toEqual([printed![1]]);
  });

  it("is refused for the host's token, and for an agent that is not an xPU's", async () => {
    const asHost = rebootctl([
      'announce',
      '--server',
      stack.url,
      '--agent',
      'node-a.dpu0',
      '--reason',
      'x',
      '--token',
      T.hostA,
      '--wait',
      '5',
    ]);
    expect(await asHost.code).toBe(1);
    expect(asHost.err()).toMatch(/403/);
    const notXpu = rebootctl(['announce', '--server', stack.url, '--agent', 'node-a', '--reason', 'x', '--token', T.hostA]);
    expect(await notXpu.code).toBe(2);
  });
});

describe('rebootctl host-reboot', () => {
  it('exits 3 with the reason on stderr while an xPU reboot is in progress', async () => {
    // node-a's dpu0 is rebooting (announced above).
    const run = rebootctl(['host-reboot', '--server', stack.url, '--agent', 'node-a', '--token', T.hostA, '--wait', '20']);
    expect(await run.code, run.err()).toBe(3);
    expect(run.err()).toMatch(/denied: .*\S/);
    const denied = (await reboots('node-a')).find((r) => r.kind === 'host');
    expect(denied.status).toBe('denied');
    expect(run.err()).toContain(denied.denyReason);
  });

  it('exits 0 only once the xPU agent freed the host context', async () => {
    const hooks = writeHooks(join(dir, 'hooks-g'), {
      'free-host-context': `touch "${dir}/g-started"\nfor i in $(seq 1 600); do [ -e "${dir}/g-release" ] && exit 0; sleep 0.1; done\nexit 1`,
    });
    agents.push(startAgent({ url: stack.url, agent: 'node-g.dpu0', token: T.dpuG, hooks, state: join(dir, 'state-g') }));
    const run = rebootctl([
      'host-reboot',
      '--server',
      stack.url,
      '--agent',
      'node-g',
      '--token',
      T.hostG,
      '--method',
      'shell',
      '--wait',
      '60',
    ]);
    await waitFor('the free-host-context hook to run', async () => existsSync(join(dir, 'g-started')), 30_000);
    // The hook runs and has not finished: the gate still holds the shutdown.
    await new Promise((r) => setTimeout(r, 1000));
    expect(run.exited()).toBe(false);
    writeFileSync(join(dir, 'g-release'), '');
    expect(await run.code, run.err()).toBe(0);
    expect(run.out()).toMatch(/allowed: node-g\.dpu0 freed the host context/);
    const host = (await reboots('node-g')).find((r) => r.kind === 'host');
    expect(host.mode).toBe('shell');
    expect(Object.values<any>(host.commands).find((c) => c.type === 'free-host-context').status).toBe('succeeded');
  });

  it('exits 0 at once when no xPU must free the host context', async () => {
    const run = rebootctl(['host-reboot', '--server', stack.url, '--agent', 'node-n', '--token', T.hostN, '--wait', '30']);
    expect(await run.code, run.err()).toBe(0);
    expect(run.out()).toMatch(/no xPU had to free the host context/);
  });

  it('exits 4 when --wait runs out (no xPU agent answers), saying what it waited for', async () => {
    const run = rebootctl([
      'host-reboot',
      '--server',
      stack.url,
      '--agent',
      'node-t',
      '--token',
      T.hostT,
      '--method',
      'ipmi',
      '--wait',
      '3',
    ]);
    expect(await run.code, run.err()).toBe(4);
    expect(run.err()).toMatch(/--wait 3s ran out: host reboot hr-\S+ is \w+; still waiting for node-t\.dpu0/);
  });

  it("exits 2 for an xPU agent and 1 for a token that is not the host agent's", async () => {
    expect(await rebootctl(['host-reboot', '--server', stack.url, '--agent', 'node-a.dpu0', '--token', T.dpuA]).code).toBe(2);
    const asXpu = rebootctl(['host-reboot', '--server', stack.url, '--agent', 'node-g', '--token', T.dpuG, '--wait', '5']);
    expect(await asXpu.code).toBe(1);
    expect(asXpu.err()).toMatch(/403/);
  });
});
