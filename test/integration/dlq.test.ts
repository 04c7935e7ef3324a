// The ingest DLQ end to end: a poison event retried 5 times lands there with its reason, `rebootctl dlq list`
// shows it, and a redrive after the cause is fixed applies it exactly once.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, it } from 'vitest';
import { runDlqList, runDlqRedrive, formatDeadLetters, type DlqCliIo } from '../../cli/commands/dlq.ts';
import { createApiApp } from '../../lambdas/handlers/api.ts';
import { processBatch, withFailureLog } from '../../lambdas/handlers/ingest-batch.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { hashToken, InventoryIndex, parseInventory } from '../../lambdas/core/inventory.ts';
import { loadMapping } from '../../lambdas/core/redfish/mapping.ts';
import type { IngestFailure, IngestFailureLog } from '../../lambdas/ports/index.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { MAX_RECEIVE_COUNT } from '../../local/sqs.ts';
import {
  agentToken,
  bmcToken,
  eventually,
  OPERATOR_TOKEN,
  startWebhookStack,
  type WebhookStack,
} from '../fixtures/redfish/webhook-stack.ts';
import { childEnv, NODE, ROOT } from '../support/stack.ts';

let h: WebhookStack | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const INJECTED = 'injected: the node claims table is unavailable';

/**
 * Makes the xPU claims of node-p fail until `fix()` (a start claims ahead, beside its look-up; a retry or
 * a join claims the plain way): counts the calls of each kind, and the claims taken (a claim taken ahead
 * that its delivery then gives back, the event being mapped already, counts too).
 */
function poisonNodeP(s: WebhookStack) {
  const store = s.stack.deps.store;
  const claim = store.claimXpu.bind(store);
  const claimAhead = store.claimXpuAhead.bind(store);
  const state = { broken: true, ahead: 0, plain: 0, taken: 0 };
  const gate = (node: string, how: 'ahead' | 'plain') => {
    if (node !== 'node-p') return false;
    state[how]++;
    if (state.broken) throw new Error(INJECTED);
    return true;
  };
  store.claimXpu = async (node, xpu, id) => {
    const counted = gate(node, 'plain');
    const res = await claim(node, xpu, id);
    if (counted && res.ok) state.taken++;
    return res;
  };
  store.claimXpuAhead = async (node, xpu, id, key, at) => {
    const counted = gate(node, 'ahead');
    const res = await claimAhead(node, xpu, id, key, at);
    if (counted && res.ok) state.taken++;
    return res;
  };
  return { state, fix: () => (state.broken = false) };
}

function captureIo(env: Record<string, string | undefined> = {}): DlqCliIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    fetch: (...args: Parameters<typeof fetch>) => fetch(...args),
    env,
    stdout: (s: string) => void (io.out += s),
    stderr: (s: string) => void (io.err += s),
  };
  return io;
}

function runCli(args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const proc = spawn(NODE, [join(ROOT, 'cli/rebootctl.js'), ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => proc.once('close', (status) => resolve({ status, stdout, stderr })));
}

async function parked(s: WebhookStack, n: number) {
  await eventually(`${n} message(s) in the DLQ`, async () => (await s.depth()).dlq === n, 45_000, 100);
}

describe('a poison event in the DLQ', () => {
  it('lands there after 5 receives with its reason, is listed, and a redrive after the fix applies it exactly once', async () => {
    const s = (h = await startWebhookStack({ at: '2025-03-02T12:00:30Z', visibilitySeconds: 1 }));
    const poison = poisonNodeP(s);
    const ev = {
      id: 'poison-1',
      type: 'xpu.reboot.pending',
      node: 'node-p',
      xpu: 'dpu0',
      time: '2025-03-02T12:00:20Z',
      data: { reason: 'bios update' },
    };
    expect((await s.native(ev, agentToken('node-p'))).status).toBe(202);
    // Other nodes are not held up by node-p's poison.
    expect((await s.native({ id: 'fine-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0' })).status).toBe(202);
    await s.rebootOf('node-a', 'xpu');

    await parked(s, 1);
    // Each receive tried the claim beside its look-up (a retry, finding the event mapped, then the plain way too).
    expect(poison.state.ahead).toBe(MAX_RECEIVE_COUNT);
    expect(await s.depth()).toEqual({ queued: 0, dlq: 1 });
    expect(await s.reboots('node-p')).toEqual([]);

    // The API listing, twice: a peek leaves the message where it is.
    const listed = await s.get('/v1/dlq');
    expect(listed.status).toBe(200);
    expect(listed.json.count).toBe(1);
    const item = listed.json.items[0];
    expect(item).toMatchObject({
      event: { id: 'poison-1', node: 'node-p', type: 'xpu.reboot.pending', xpu: 'dpu0', dedupKey: 'native:node-p:poison-1' },
      receiveCount: MAX_RECEIVE_COUNT,
      reason: INJECTED,
    });
    expect(Date.parse(item.failedAt)).toBeGreaterThanOrEqual(Date.parse(item.sentAt));
    expect((await s.get('/v1/dlq?limit=5')).json.items.map((i: { messageId: string }) => i.messageId)).toEqual([item.messageId]);
    expect(await s.depth()).toEqual({ queued: 0, dlq: 1 });

    // rebootctl dlq list: a readable table, the token from the environment; and --json.
    const table = captureIo({ REBOOT_OPERATOR_TOKEN: OPERATOR_TOKEN });
    expect(await runDlqList({ server: s.url }, table)).toBe(0);
    expect(table.out.split('\n')[0]).toMatch(/^MESSAGE ID\s+NODE\s+TYPE\s+EVENT ID\s+RECEIVES\s+FAILED AT\s+REASON$/);
    expect(table.out).toContain(item.messageId);
    expect(table.out).toMatch(new RegExp(`node-p/dpu0\\s+xpu\\.reboot\\.pending\\s+poison-1\\s+5\\s+\\S+\\s+${INJECTED}`));
    expect(table.out).toContain('1 message\n');
    const json = captureIo();
    expect(await runDlqList({ server: s.url, token: OPERATOR_TOKEN, json: true }, json)).toBe(0);
    expect(JSON.parse(json.out).items).toEqual([item]);

    // The real command line, as an operator types it.
    // (Spawned asynchronously: the API it calls runs in this process.)
    const cli = await runCli(['dlq', 'list', '--server', s.url], { REBOOT_OPERATOR_TOKEN: OPERATOR_TOKEN });
    expect(cli.stderr).toBe('');
    expect(cli.status).toBe(0);
    expect(cli.stdout).toContain(INJECTED);

    // Fix the cause, redrive by id: processed once, the DLQ empty, a second redrive finds nothing.
    poison.fix();
    const redrive = captureIo();
    expect(await runDlqRedrive({ server: s.url, token: OPERATOR_TOKEN, id: [item.messageId] }, redrive)).toBe(0);
    expect(redrive.out).toBe(`redriven 1 message to the ingest queue\n  ${item.messageId}\n`);
    const r = await s.rebootOf('node-p', 'xpu');
    await s.drain();
    // Dated by its first receipt (the coordinator's clock), not by the redrive nor by the event's own time.
    expect(r).toMatchObject({ node: 'node-p', xpu: 'dpu0', reason: 'bios update', notifiedAt: '2025-03-02T12:00:30.000Z' });
    // The redriven event is mapped already: its claim ahead is given back, and its reboot claims the xPU.
    expect(poison.state.taken).toBeGreaterThanOrEqual(1);
    const taken = poison.state.taken;
    expect((await s.stack.deps.store.getNodeState('node-p')).xpus.dpu0).toBe(r.id);
    expect(await s.depth()).toEqual({ queued: 0, dlq: 0 });

    const again = captureIo();
    expect(await runDlqRedrive({ server: s.url, token: OPERATOR_TOKEN, id: [item.messageId] }, again)).toBe(1);
    expect(again.err).toContain(`not in the dead-letter queue: ${item.messageId}`);

    // The BMC or agent sending it once more changes nothing: the event key is marked seen now.
    expect((await s.native(ev, agentToken('node-p'))).status).toBe(202);
    await s.drain();
    const reboots = await s.reboots('node-p');
    expect(reboots).toHaveLength(1);
    expect(reboots[0].history.filter((x) => x.phase === 'notified')).toHaveLength(1);
    expect(poison.state.taken).toBe(taken);
    expect((await s.get('/v1/dlq')).json).toEqual({ items: [], count: 0 });
  });

  it('a message that is not a native event is parked with the decode error; redrive all moves every message back', async () => {
    const s = (h = await startWebhookStack({ at: '2025-03-02T12:00:30Z', visibilitySeconds: 1 }));
    const poison = poisonNodeP(s);
    await s.stack.sqs.client.send(new SendMessageCommand({ QueueUrl: s.stack.sqs.ingestQueueUrl, MessageBody: 'garbage{' }));
    await s.native({ id: 'poison-2', type: 'xpu.crashed', node: 'node-p', xpu: 'dpu0', data: { reason: 'oops' } });
    await parked(s, 2);

    const items = (await s.get('/v1/dlq')).json.items as Array<{ event: unknown; reason: string; messageId: string }>;
    expect(items.map((i) => [i.event === null ? 'not an event' : 'event', i.reason]).sort()).toEqual([
      ['event', INJECTED],
      ['not an event', 'message body is not JSON'],
    ]);
    const io = captureIo();
    expect(await runDlqList({ server: s.url, token: OPERATOR_TOKEN, limit: '1' }, io)).toBe(0);
    expect(io.out.trim().split('\n')).toHaveLength(3); // header, one row, the count

    poison.fix();
    const all = captureIo();
    expect(await runDlqRedrive({ server: s.url, token: OPERATOR_TOKEN }, all)).toBe(0);
    expect(all.out).toMatch(/^redriven 2 messages to the ingest queue\n/);
    const r = await s.rebootOf('node-p', 'xpu');
    expect(r).toMatchObject({ mode: 'crash', reason: 'oops' });
    // The garbage fails again and comes back to the DLQ: still listed with its reason.
    await parked(s, 1);
    expect((await s.get('/v1/dlq')).json.items).toEqual([expect.objectContaining({ event: null, reason: 'message body is not JSON' })]);
  });
});

describe('the /v1/dlq routes', () => {
  it('are for the operator only and check their input', async () => {
    const s = (h = await startWebhookStack());
    const get = (path: string, token?: string) => fetch(s.url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    expect((await get('/v1/dlq')).status).toBe(401);
    expect((await get('/v1/dlq', 'no-such-token-at-all')).status).toBe(401);
    expect((await get(`/v1/dlq?access_token=${OPERATOR_TOKEN}`)).status).toBe(401);
    expect((await get('/v1/dlq', agentToken('node-a'))).status).toBe(403);
    expect((await get('/v1/dlq', bmcToken('node-a'))).status).toBe(403);
    for (const limit of ['0', '101', 'abc', '1.5']) {
      const res = await s.get(`/v1/dlq?limit=${limit}`);
      expect(res.status).toBe(400);
      expect(res.json.message).toMatch(/limit must be a whole number from 1 to 100/);
    }
    for (const body of ['', 'not json', '{}', '{"ids": []}', '{"ids": [""]}', '{"all": false}', '{"ids": ["a"], "all": true}']) {
      const res = await s.post('/v1/dlq/redrive', body);
      expect(res.status).toBe(400);
      expect(res.json.message).toMatch(/\{"ids": \["<message id>", \.\.\.\]\}.*or \{"all": true\}/);
    }
    const forbidden = await s.post('/v1/dlq/redrive', { all: true }, { token: agentToken('node-a') });
    expect(forbidden.status).toBe(403);
    const none = await s.post('/v1/dlq/redrive', { ids: ['nope'] });
    expect(none.json).toEqual({ redriven: 0, notFound: 1, ids: [], missing: ['nope'], more: false });
  });

  it('answer 503 where no DLQ is configured', async () => {
    const index = new InventoryIndex(parseInventory('nodes: []'));
    const app = createApiApp({
      inventory: async () => index,
      operatorTokenHash: hashToken(OPERATOR_TOKEN),
      mapping: loadMapping(null),
      logger: silentLogger,
    } as unknown as Parameters<typeof createApiApp>[0]);
    const res = await app.request('/v1/dlq', { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: 'NotConfigured', message: expect.stringMatching(/DLQ_URL/) });
  });
});

describe('failure reasons recorded by processBatch', () => {
  const ev = (id: string, node: string): NativeEvent => ({
    id,
    type: 'xpu.down',
    node,
    time: '2025-03-02T12:00:00.000Z',
    receivedAt: '2025-03-02T12:00:00.000Z',
    source: 'native',
    dedupKey: `native:${node}:${id}`,
    data: {},
  });

  it('keys them by dedupKey (or message id), notes events held back behind a failure, and never fails the batch over the log', async () => {
    const recorded: IngestFailure[] = [];
    const log: IngestFailureLog = { record: async (f) => void recorded.push(f), get: async () => new Map() };
    const handle = withFailureLog(async (e) => {
      if (e.id === 'bad') throw new Error('boom');
    }, log);
    const items = [
      { id: 'm1', body: JSON.stringify(ev('bad', 'n1')), receiveCount: 3 },
      { id: 'm2', body: JSON.stringify(ev('after', 'n1')), receiveCount: 1 },
      { id: 'm3', body: JSON.stringify(ev('ok', 'n2')), receiveCount: 1 },
      { id: 'm4', body: '{"type": 1}', receiveCount: 2 },
    ];
    const failures = await processBatch(items, handle, silentLogger);
    expect(failures.map((f) => f.id).sort()).toEqual(['m1', 'm2', 'm4']);
    expect(recorded.map((f) => [f.key, f.messageId, f.reason, f.receiveCount]).sort()).toEqual([
      ['message:m4', 'm4', 'message body is not a native event', 2],
      ['native:n1:after', 'm2', 'an earlier event of this node failed', 1],
      ['native:n1:bad', 'm1', 'boom', 3],
    ]);

    const broken = withFailureLog(
      async () => {
        throw new Error('still failing');
      },
      {
        record: async () => {
          throw new Error('table down');
        },
        get: async () => new Map(),
      },
    );
    expect(await processBatch([items[0]], broken, silentLogger)).toEqual([{ id: 'm1', error: 'still failing' }]);
  });

  it('prints an empty DLQ plainly', () => {
    expect(formatDeadLetters([])).toBe('The dead-letter queue is empty.\n');
  });
});
