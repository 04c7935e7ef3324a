// An acceptance audit of the running stack against CONTRACT.md, black box: each test is a promise of the
// contract that the stack once broke, driven only through the HTTP API (one stack for the file).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { parseConfig } from '../../local/config.ts';
import { type Stack, startStack } from '../../local/stack.ts';
import { api, rackPerNodeInventory, tempDir, waitFor } from '../support/stack.ts';

const OPERATOR = 'operator-token-audit';
const INVENTORY = rackPerNodeInventory(['ca1', 'ca2', 'ca3', 'ca4', 'ca5', 'ca6']);

let stack: Stack;

beforeAll(async () => {
  const dir = tempDir('audit');
  writeFileSync(join(dir, 'nodes.yaml'), INVENTORY);
  stack = await startStack({
    config: parseConfig({ PORT: '0', DATA_DIR: join(dir, 'data'), NODES_FILE: join(dir, 'nodes.yaml'), OPERATOR_TOKEN: OPERATOR }),
    logger: silentLogger,
  });
});

afterAll(async () => {
  await stack?.close();
});

const token = (agent: string) => `agent-token-${agent.split('.')[0]}`;
/** One poll of an agent's commands (types and ids), answered at once. */
async function poll(agent: string): Promise<Array<{ id: string; type: string }>> {
  const res = await api(stack.url, `/v1/agents/${agent}/commands?wait=0`, { token: token(agent) });
  expect(res.status).toBe(200);
  return res.json;
}
const post = (agent: string, id: string, status: string) =>
  api(stack.url, `/v1/agents/${agent}/commands/${id}`, { token: token(agent), body: { status, output: `${status} here` } });
const reboot = async (id: string) => (await api(stack.url, `/v1/reboots/${id}`, { token: OPERATOR })).json;

/** An announced xPU reboot whose host was handed migrate-workloads and protect-pcie (not answered). */
async function preparing(n: string, eventId: string): Promise<string> {
  const posted = await api(stack.url, '/v1/events', {
    token: token(n),
    body: { id: eventId, type: 'xpu.reboot.pending', node: n, xpu: 'dpu0', data: { reason: 'audit' } },
  });
  expect(posted.status).toBe(202);
  const id = await waitFor(`a reboot of ${n} in its notice phase`, async () => {
    const r = (await api(stack.url, `/v1/reboots?node=${n}`, { token: OPERATOR })).json.items[0];
    return r?.status === 'preparing' ? (r.id as string) : undefined;
  });
  await waitFor('the preparation commands', async () => (await poll(n)).length === 2 || undefined);
  return id;
}

describe('7.1/7.3: a cancel undoes in turn, and a failed restore-pcie is never followed by resume-workloads', () => {
  it('restore-pcie failed: no resume-workloads, ever; succeeded: resume-workloads follows', async () => {
    const failing = await preparing('ca1', 'ca1-pending');
    const working = await preparing('ca2', 'ca2-pending');
    for (const id of [failing, working])
      expect((await api(stack.url, `/v1/reboots/${id}/cancel`, { token: OPERATOR, body: { reason: 'audit' } })).status).toBe(200);

    // Only the restore goes out with the cancel: resume-workloads waits for its result.
    const restore1 = await waitFor('restore-pcie on ca1', async () => (await poll('ca1')).find((c) => c.type === 'restore-pcie'));
    expect((await poll('ca1')).map((c) => c.type)).not.toContain('resume-workloads');
    expect((await post('ca1', restore1.id, 'failed')).status).toBe(200);

    const restore2 = await waitFor('restore-pcie on ca2', async () => (await poll('ca2')).find((c) => c.type === 'restore-pcie'));
    expect((await post('ca2', restore2.id, 'succeeded')).status).toBe(200);
    const resume = await waitFor('resume-workloads on ca2', async () => (await poll('ca2')).find((c) => c.type === 'resume-workloads'));
    expect(resume.id).toBe(`${working}.resume-workloads`);
    // The same result again sends nothing new.
    expect((await post('ca2', restore2.id, 'succeeded')).json).toMatchObject({ duplicate: true });

    // ca2's resume-workloads came after ca1's failure was recorded: by then ca1 has none, nor gets one.
    const failed = await reboot(failing);
    expect(failed.status).toBe('cancelled');
    expect(Object.values(failed.commands).map((c: any) => c.type)).not.toContain('resume-workloads');
    expect(failed.history.map((h: any) => h.phase)).toContain('command-failed');
    expect((await poll('ca1')).map((c) => c.type)).not.toContain('resume-workloads');
    const done = await reboot(working);
    expect(Object.values(done.commands).filter((c: any) => c.type === 'resume-workloads')).toHaveLength(1);
  });
});

describe('4/5: xpu.ready ends the outage whenever it arrives; what was for before the outage is not sent after it', () => {
  const pending = (n: string, id: string) =>
    api(stack.url, '/v1/events', {
      token: token(n),
      body: { id, type: 'xpu.reboot.pending', node: n, xpu: 'dpu0', data: { reason: 'audit' } },
    });
  const signal = (n: string, id: string, type: string) =>
    api(stack.url, '/v1/events', { token: token(n), body: { id, type, node: n, xpu: 'dpu0' } });

  it('ready in the notice phase: a host agent that polls only now gets restore-pcie, not migrate-workloads or protect-pcie', async () => {
    expect((await pending('ca3', 'ca3-pending')).status).toBe(202);
    const id = await waitFor('the notice phase', async () => {
      const r = (await api(stack.url, '/v1/reboots?node=ca3', { token: OPERATOR })).json.items[0];
      return r?.status === 'preparing' ? (r.id as string) : undefined;
    });
    expect((await signal('ca3', 'ca3-ready', 'xpu.ready')).status).toBe(202);
    await waitFor('recovery', async () => (await reboot(id)).status === 'recovering' || undefined);
    const cmds = await waitFor('restore-pcie', async () => {
      const got = await poll('ca3');
      return got.some((c) => c.type === 'restore-pcie') ? got : undefined;
    });
    expect(cmds.map((c) => c.type)).toEqual(['restore-pcie']);
    const r = await reboot(id);
    expect(r.commands[`${id}.migrate-workloads`].status).toBe('timed-out');
    expect(r.commands[`${id}.protect-pcie`].status).toBe('timed-out');
    // And the reboot ends as the contract says: restore-pcie, then resume-workloads, completed.
    expect((await post('ca3', `${id}.restore-pcie`, 'succeeded')).status).toBe(200);
    const resume = await waitFor('resume-workloads', async () => (await poll('ca3')).find((c) => c.type === 'resume-workloads'));
    expect((await post('ca3', resume.id, 'succeeded')).status).toBe(200);
    await waitFor('completed', async () => (await reboot(id)).status === 'completed' || undefined);
  });

  it('ready during the core-dump hold: the xPU is not asked for a core dump, nor the host to protect PCIe, once it is back', async () => {
    const crashed = await api(stack.url, '/v1/events', {
      token: token('ca4'),
      body: { id: 'ca4-crash', type: 'xpu.crashed', node: 'ca4', xpu: 'dpu0', data: { reason: 'panic' } },
    });
    expect(crashed.status).toBe(202);
    const id = await waitFor(
      'the crash reboot',
      async () => (await api(stack.url, '/v1/reboots?node=ca4', { token: OPERATOR })).json.items[0]?.id,
    );
    await waitFor('the core-dump hold', async () => Object.keys((await reboot(id)).commands ?? {}).length >= 2 || undefined);
    expect((await signal('ca4', 'ca4-ready', 'xpu.ready')).status).toBe(202);
    const cmds = await waitFor('restore-pcie', async () => {
      const got = await poll('ca4');
      return got.some((c) => c.type === 'restore-pcie') ? got : undefined;
    });
    expect(cmds.map((c) => c.type)).toEqual(['restore-pcie']);
    expect((await poll('ca4.dpu0')).map((c) => c.type)).toEqual([]);
  });
});

describe('7.1: the coordinator dates notice and deadlines by its own clock, whatever the BMC clock says', () => {
  it('a BMC two minutes behind gets the full notice it announced, from the receipt', async () => {
    const before = Date.now();
    const res = await api(stack.url, '/v1/events/redfish', {
      token: 'bmc-token-ca5',
      body: {
        Events: [
          {
            EventId: 'ca5-pending',
            EventTimestamp: new Date(before - 120_000).toISOString().replace(/\.\d+Z$/, '-0000'),
            MessageId: 'XpuReboot.1.0.RebootPending',
            MessageArgs: ['200', 'skewed clock'],
            OriginOfCondition: '/redfish/v1/Systems/Bluefield/',
          },
        ],
      },
    });
    const after = Date.now();
    expect(res.json).toEqual({ accepted: 1, ignored: 0 });
    const r = await waitFor('the reboot', async () => (await api(stack.url, '/v1/reboots?node=ca5', { token: OPERATOR })).json.items[0]);
    const notified = Date.parse(r.notifiedAt);
    expect(notified).toBeGreaterThanOrEqual(before);
    expect(notified).toBeLessThanOrEqual(after);
    expect(Date.parse(r.deadline) - notified).toBe(200_000);
  });
});

describe('7.1: a BMC clock may be wrong by any amount, also when it was set wrong between two reboots', () => {
  const rf = (n: string, id: string, time: string, messageId: string, args: string[] = []) =>
    api(stack.url, '/v1/events/redfish', {
      token: `bmc-token-${n}`,
      body: {
        Events: [
          {
            EventId: id,
            EventTimestamp: time,
            MessageId: messageId,
            MessageArgs: args,
            OriginOfCondition: '/redfish/v1/Systems/Bluefield',
          },
        ],
      },
    });

  it('a notice from a BMC whose clock went back 10 days after its last reboot starts a new reboot, not a join of the ended one', async () => {
    const now = new Date().toISOString();
    expect((await rf('ca6', 'c6-1', now, 'XpuReboot.1.0.RebootPending', ['120', 'first'])).status).toBe(202);
    const first = await waitFor(
      'the first reboot',
      async () => (await api(stack.url, '/v1/reboots?node=ca6', { token: OPERATOR })).json.items[0]?.id,
    );
    expect((await rf('ca6', 'c6-2', now, 'XpuReboot.1.0.Ready')).status).toBe(202);
    const restore = await waitFor('restore-pcie', async () => (await poll('ca6')).find((c) => c.type === 'restore-pcie'));
    expect((await post('ca6', restore.id, 'succeeded')).status).toBe(200);
    const resume = await waitFor('resume-workloads', async () => (await poll('ca6')).find((c) => c.type === 'resume-workloads'));
    expect((await post('ca6', resume.id, 'succeeded')).status).toBe(200);
    await waitFor('the first reboot completed', async () => (await reboot(first)).status === 'completed' || undefined);

    // The BMC rebooted and lost its time: 10 days behind from now on.
    const past = new Date(Date.now() - 10 * 86_400_000).toISOString();
    expect((await rf('ca6', 'c6-3', past, 'XpuReboot.1.0.RebootPending', ['120', 'second'])).status).toBe(202);
    const second = await waitFor('a second reboot', async () => {
      const items = (await api(stack.url, '/v1/reboots?node=ca6', { token: OPERATOR })).json.items;
      return items.length === 2 ? items[0] : undefined;
    });
    expect(second).toMatchObject({ reason: 'second', mode: 'planned' });
    expect(second.id).not.toBe(first);
    await waitFor('its notice flow', async () => (await reboot(second.id)).status === 'preparing' || undefined);
    expect((await reboot(first)).history.map((h: any) => h.phase)).not.toContain('joined');
  });
});
