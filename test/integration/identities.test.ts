// docs/identities.md identities against the real local stack: every pair of (token × agent route / event
// type) allowed or refused, current and next (rollover) tokens, and `by` on every accepted event.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../local/stack.ts';
import { parseConfig } from '../../local/config.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';
import { api, tempDir, waitFor } from '../support/stack.ts';

const OPERATOR = 'operator-token-identities';
const TOKENS = {
  operator: OPERATOR,
  alice: 'op-alice-token',
  aliceNext: 'op-alice-next',
  bmcA: 'bmc-a-token',
  bmcANext: 'bmc-a-next',
  hostA: 'host-a-token',
  hostANext: 'host-a-next',
  dpu0: 'dpu0-a-token',
  dpu0Next: 'dpu0-a-next',
  dpu1: 'dpu1-a-token',
  sharedB: 'shared-b-token',
  bmcB: 'bmc-b-token',
} as const;
type Who = keyof typeof TOKENS;

/**
 * dpu4's token, outside the tables: its xPU gets no signal before the cancel test, whose reboot
 * must not meet the outages the tables' events leave on dpu0 (model.ts sameOutage would rightly
 * take a notice a few seconds after them as one of theirs).
 */
const DPU4_TOKEN = 'dpu4-a-token';

// node-a: xPU tokens for dpu0, dpu1 and dpu4, none for dpu2 and dpu3 (the host's token still acts as their agent).
// node-b: the shared form of release 1 (one agentToken for the host and its xPU).
const INVENTORY = `
operators:
  - { name: alice, token: ${TOKENS.alice}, tokenNext: ${TOKENS.aliceNext} }
nodes:
  - id: node-a
    trusted: true
    bmcToken: ${TOKENS.bmcA}
    bmcTokenNext: ${TOKENS.bmcANext}
    agentToken: ${TOKENS.hostA}
    agentTokenNext: ${TOKENS.hostANext}
    xpus:
      - { id: dpu0, redfishSystem: /redfish/v1/Systems/Bluefield, agentToken: ${TOKENS.dpu0}, agentTokenNext: ${TOKENS.dpu0Next} }
      - { id: dpu1, agentToken: ${TOKENS.dpu1} }
      - { id: dpu2 }
      - { id: dpu3 }
      - { id: dpu4, agentToken: ${DPU4_TOKEN} }
  - id: node-b
    trusted: true
    bmcToken: ${TOKENS.bmcB}
    agentToken: ${TOKENS.sharedB}
    xpus: [{ id: dpu0 }, { id: dpu1 }]
`;

/** The agents in the order of the table's columns. */
const AGENTS = ['node-a', 'node-a.dpu0', 'node-a.dpu1', 'node-a.dpu2', 'node-b', 'node-b.dpu0'] as const;

/**
 * Who may act as which agent (GET and POST agent routes). `+` allowed, `-` 403. The operator may act
 * as any agent (release 1); a BMC as none.
 */
const AGENT_ROUTES: Record<Who, string> = {
  operator: '++++++',
  alice: '++++++',
  aliceNext: '++++++',
  bmcA: '------',
  bmcANext: '------',
  hostA: '+--+--',
  hostANext: '+--+--',
  dpu0: '-+----',
  dpu0Next: '-+----',
  dpu1: '--+---',
  sharedB: '----++',
  bmcB: '------',
};

/**
 * Who may post the events of which agent: `host.*` for a host column, `xpu.*` for an xPU column.
 * A node's BMC may post every event of its node.
 */
const EVENTS: Record<Who, string> = {
  operator: '++++++',
  alice: '++++++',
  aliceNext: '++++++',
  bmcA: '++++--',
  bmcANext: '++++--',
  hostA: '+--+--',
  hostANext: '+--+--',
  dpu0: '-+----',
  dpu0Next: '-+----',
  dpu1: '--+---',
  sharedB: '----++',
  bmcB: '----++',
};

/** What `by` an accepted event carries, per token: an agent token names the agent it acted as. */
const ACTOR: Record<Who, string> = {
  operator: 'operator',
  alice: 'operator:alice',
  aliceNext: 'operator:alice',
  bmcA: 'bmc:node-a',
  bmcANext: 'bmc:node-a',
  hostA: 'agent:<column>',
  hostANext: 'agent:<column>',
  dpu0: 'agent:node-a.dpu0',
  dpu0Next: 'agent:node-a.dpu0',
  dpu1: 'agent:node-a.dpu1',
  sharedB: 'agent:<column>',
  bmcB: 'bmc:node-b',
};

const EVENT_TYPES = {
  host: ['host.ready', 'host.down', 'host.reboot.requested'],
  xpu: ['xpu.ready', 'xpu.down', 'xpu.crashed', 'xpu.reboot.pending'],
};

let stack: Stack;
/** Every event the API put on the ingest queue, by id. */
const queued = new Map<string, NativeEvent>();

beforeAll(async () => {
  const dir = tempDir('identities');
  writeFileSync(join(dir, 'nodes.yaml'), INVENTORY);
  stack = await startStack({
    config: parseConfig({ PORT: '0', DATA_DIR: join(dir, 'data'), NODES_FILE: join(dir, 'nodes.yaml'), OPERATOR_TOKEN: OPERATOR }),
    logger: silentLogger,
  });
  // Watch what the API hands to the ingest queue (the app holds this very queue object).
  const send = stack.deps.queue.send.bind(stack.deps.queue);
  stack.deps.queue.send = async (events: NativeEvent[]) => {
    for (const ev of events) queued.set(ev.id, ev);
    return send(events);
  };
});

afterAll(async () => {
  await stack?.close();
});

function split(agent: string): { node: string; xpu?: string } {
  const [node, xpu] = agent.split('.');
  return xpu ? { node, xpu } : { node };
}

describe('identities (docs/identities.md)', () => {
  it('lets every agent of a node read its reboots; a host whose xPUs have tokens is only the host for extensions', async () => {
    const pending = await api(stack.url, '/v1/events', {
      token: TOKENS.dpu0,
      body: { id: 'ext-1', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu0', data: { reason: 'fw' } },
    });
    expect(pending.status).toBe(202);
    const reboot = await waitFor('the announced reboot', async () =>
      (await api(stack.url, '/v1/reboots?node=node-a', { token: OPERATOR })).json.items.find(
        (r: any) => r.xpu === 'dpu0' && ['notified', 'preparing'].includes(r.status),
      ),
    );
    const reads: Record<Who, number> = {
      operator: 200,
      alice: 200,
      aliceNext: 200,
      bmcA: 403,
      bmcANext: 403,
      hostA: 200,
      hostANext: 200,
      dpu0: 200,
      dpu0Next: 200,
      dpu1: 200,
      sharedB: 403,
      bmcB: 403,
    };
    for (const who of Object.keys(reads) as Who[]) {
      expect((await api(stack.url, `/v1/reboots/${reboot.id}`, { token: TOKENS[who] })).status, who).toBe(reads[who]);
    }
    // Only the host agent asks for more time for its xPU's reboot: never the xPU itself, nor an operator.
    for (const who of ['dpu0', 'dpu0Next', 'dpu1', 'bmcA', 'sharedB', 'operator', 'alice'] as Who[]) {
      expect((await api(stack.url, `/v1/reboots/${reboot.id}/extensions`, { token: TOKENS[who], body: { seconds: 10 } })).status, who).toBe(
        403,
      );
    }
    // Who announced it, in the reboot's own history (the model writes the event's `by`).
    expect((await api(stack.url, `/v1/reboots/${reboot.id}`, { token: OPERATOR })).json.history[0].by).toBe('agent:node-a.dpu0');
    for (const who of ['hostA', 'hostANext'] as Who[]) {
      expect(
        (await api(stack.url, `/v1/reboots/${reboot.id}/extensions`, { token: TOKENS[who], body: { seconds: 10, reason: 'draining' } }))
          .status,
        who,
      ).toBe(200);
    }
  });

  it('answers every (token × agent route) pair as the table says', async () => {
    const wrong: string[] = [];
    for (const who of Object.keys(TOKENS) as Who[]) {
      for (const [i, agent] of AGENTS.entries()) {
        const allowed = AGENT_ROUTES[who][i] === '+';
        const poll = await api(stack.url, `/v1/agents/${agent}/commands?wait=0`, { token: TOKENS[who] });
        // A result for a command that does not exist: 404 once allowed, so nothing changes either way.
        const result = await api(stack.url, `/v1/agents/${agent}/commands/no-such-command`, {
          token: TOKENS[who],
          body: { status: 'succeeded' },
        });
        if (poll.status !== (allowed ? 200 : 403)) wrong.push(`${who} GET ${agent}: ${poll.status}`);
        if (result.status !== (allowed ? 404 : 403)) wrong.push(`${who} POST ${agent}: ${result.status}`);
        if (!allowed) expect(poll.json.error).toBe('Forbidden');
      }
    }
    expect(wrong).toEqual([]);
  });

  it('answers every (token × event type) pair as the table says, and stamps `by` on what it accepts', async () => {
    const wrong: string[] = [];
    let n = 0;
    for (const who of Object.keys(TOKENS) as Who[]) {
      for (const [i, agent] of AGENTS.entries()) {
        const target = split(agent);
        const types = target.xpu ? EVENT_TYPES.xpu : EVENT_TYPES.host;
        // Every type of the column's family is checked for the refused ones; the accepted ones are
        // checked with one type each, to keep the reboots this starts few.
        const tried = EVENTS[who][i] === '+' ? [types[n++ % 2]] : types;
        for (const type of tried) {
          const id = `m-${who}-${agent}-${type}`;
          const res = await api(stack.url, '/v1/events', { token: TOKENS[who], body: { id, type, ...target } });
          const expected = EVENTS[who][i] === '+' ? 202 : 403;
          if (res.status !== expected) wrong.push(`${who} ${type} for ${agent}: ${res.status} ${res.text}`);
          if (res.status === 202 && queued.get(id)?.by !== ACTOR[who].replace('<column>', agent))
            wrong.push(`${who} ${type} for ${agent}: by ${queued.get(id)?.by}`);
          if (res.status === 403 && queued.has(id)) wrong.push(`${who} ${type} for ${agent}: refused but queued`);
        }
      }
    }
    expect(wrong).toEqual([]);
    // Tokens that are no one's: 401 whatever they ask.
    expect(
      (await api(stack.url, '/v1/events', { token: 'nobody-token', body: { id: 'x', type: 'host.ready', node: 'node-a' } })).status,
    ).toBe(401);
    expect((await api(stack.url, '/v1/agents/node-a/commands', { token: 'nobody-token' })).status).toBe(401);
  });

  it('stamps `bmc:<node>` on the events of a Redfish notice, with the current and the next BMC token', async () => {
    for (const [token, eventId] of [
      [TOKENS.bmcA, 'rf-1'],
      [TOKENS.bmcANext, 'rf-2'],
    ]) {
      const res = await api(stack.url, '/v1/events/redfish', {
        token,
        body: {
          '@odata.type': '#Event.v1_7_0.Event',
          Id: eventId,
          Name: 'Event',
          Events: [
            {
              EventId: eventId,
              MessageId: 'XpuReboot.1.0.Ready',
              MessageArgs: [],
              OriginOfCondition: { '@odata.id': '/redfish/v1/Systems/Bluefield' },
            },
          ],
        },
      });
      expect(res.status).toBe(202);
      expect(res.json.accepted).toBe(1);
    }
    const redfish = [...queued.values()].filter((e) => e.source === 'redfish');
    expect(redfish.length).toBe(2);
    for (const ev of redfish) expect(ev.by).toBe('bmc:node-a');
    // The xPU's own token is not a BMC's.
    expect((await api(stack.url, '/v1/events/redfish', { token: TOKENS.dpu0, body: { Events: [] } })).status).toBe(403);
  });
});

describe('the other routes, per token', () => {
  it('answers reads and operator routes as the table says', async () => {
    const from = new Date(Date.now() - 3600_000).toISOString();
    const to = new Date(Date.now() + 3600_000).toISOString();
    // Columns: list node-a's reboots, list all reboots, compliance report, DLQ, holds.
    const paths = [
      '/v1/reboots?node=node-a',
      '/v1/reboots?node=node-b',
      `/v1/reports/compliance?from=${from}&to=${to}`,
      '/v1/dlq',
      '/v1/holds',
    ];
    const table: Record<Who, string> = {
      operator: '+++++',
      alice: '+++++',
      aliceNext: '+++++',
      bmcA: '-----',
      bmcANext: '-----',
      hostA: '+----',
      hostANext: '+----',
      dpu0: '+----',
      dpu0Next: '+----',
      dpu1: '+----',
      sharedB: '-+---',
      bmcB: '-----',
    };
    const wrong: string[] = [];
    for (const who of Object.keys(table) as Who[]) {
      for (const [i, path] of paths.entries()) {
        const status = (await api(stack.url, path, { token: TOKENS[who] })).status;
        if (status !== (table[who][i] === '+' ? 200 : 403)) wrong.push(`${who} GET ${path.split('?')[0]}#${i}: ${status}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe('cancel by an agent', () => {
  it("is the xPU agent's: its own token, or the host's where the xPU has none", async () => {
    expect(
      (
        await api(stack.url, '/v1/events', {
          token: DPU4_TOKEN,
          body: { id: 'c-4', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu4', data: { reason: 'fw' } },
        })
      ).status,
    ).toBe(202);
    expect(
      (
        await api(stack.url, '/v1/events', {
          token: TOKENS.hostA,
          body: { id: 'c-3', type: 'xpu.reboot.pending', node: 'node-a', xpu: 'dpu3', data: { reason: 'fw' } },
        })
      ).status,
    ).toBe(202);
    const active = (r: any) => ['notified', 'preparing', 'extended'].includes(r.status);
    const of = async (xpu: string) =>
      waitFor(`the reboot of ${xpu}`, async () =>
        (await api(stack.url, '/v1/reboots?node=node-a', { token: OPERATOR })).json.items.find((r: any) => r.xpu === xpu && active(r)),
      );
    // dpu3 and dpu4: untouched by the matrix above (whose signals left dpu0 and dpu2 outages to join).
    const dpu4 = await of('dpu4');
    const dpu3 = await of('dpu3');
    for (const who of ['hostA', 'dpu0', 'dpu1', 'bmcA', 'sharedB'] as Who[])
      expect((await api(stack.url, `/v1/reboots/${dpu4.id}/cancel`, { token: TOKENS[who], body: {} })).status, `${who} on dpu4`).toBe(403);
    for (const who of ['dpu0', 'dpu1', 'bmcA'] as Who[])
      expect((await api(stack.url, `/v1/reboots/${dpu3.id}/cancel`, { token: TOKENS[who], body: {} })).status, `${who} on dpu3`).toBe(403);
    expect((await api(stack.url, `/v1/reboots/${dpu3.id}/cancel`, { token: DPU4_TOKEN, body: {} })).status, 'dpu4 on dpu3').toBe(403);
    const cancelled = await api(stack.url, `/v1/reboots/${dpu3.id}/cancel`, { token: TOKENS.hostANext, body: { reason: 'not now' } });
    expect(cancelled.status).toBe(200);
    expect(cancelled.json.history.find((h: any) => h.phase === 'cancelled')?.by).toBe('agent:node-a');
    const own = await api(stack.url, `/v1/reboots/${dpu4.id}/cancel`, { token: DPU4_TOKEN, body: { reason: 'not now' } });
    expect(own.status).toBe(200);
    expect(own.json.history.find((h: any) => h.phase === 'cancelled')?.by).toBe('agent:node-a.dpu4');
  });
});

describe('who, in the history and the compliance report', () => {
  it('names the named operator who cancelled and the host agent that extended', async () => {
    const res = await api(stack.url, '/v1/events', {
      token: TOKENS.sharedB,
      body: { id: 'who-1', type: 'xpu.reboot.pending', node: 'node-b', xpu: 'dpu1', data: { reason: 'fw' } },
    });
    expect(res.status).toBe(202);
    const r = await waitFor('the reboot of node-b', async () =>
      (await api(stack.url, '/v1/reboots?node=node-b', { token: OPERATOR })).json.items.find(
        (x: any) => x.xpu === 'dpu1' && ['notified', 'preparing'].includes(x.status),
      ),
    );
    const cancel = await api(stack.url, `/v1/reboots/${r.id}/cancel`, { token: TOKENS.aliceNext, body: { reason: 'wrong window' } });
    expect(cancel.status).toBe(200);
    const history = (await api(stack.url, `/v1/reboots/${r.id}`, { token: OPERATOR })).json.history;
    expect(history.find((h: any) => h.phase === 'cancelled')?.by).toBe('operator:alice');

    const from = new Date(Date.now() - 3600_000).toISOString();
    const to = new Date(Date.now() + 3600_000).toISOString();
    const report = (await api(stack.url, `/v1/reports/compliance?from=${from}&to=${to}&format=json`, { token: TOKENS.alice })).json;
    expect(report.reboots.find((x: any) => x.id === r.id).by).toMatchObject({ cancelled: 'operator:alice' });
    // The extensions granted to node-a's host agent above (current and next token: one agent).
    const extended = report.reboots.find((x: any) => x.node === 'node-a' && x.extensionsGranted === 2);
    expect(extended.by.extended).toEqual(['agent:node-a', 'agent:node-a']);
  });
});
