// The webhook through the real stack process (`node local/main.ts`), real time: a BMC's pending notice with
// its retries, a token in the URL, and refusals that leave the reboots as they were.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { api, OPERATOR_TOKEN, startStackProcess, tempDir, waitFor, writeInventory, type RunningStack } from '../support/stack.ts';

const INVENTORY = `
policy:
  xpuReboot:
    noticeSeconds: 900
nodes:
  - id: node-a
    trusted: true
    redfishSystem: /redfish/v1/Systems/system
    bmcToken: bmc-token-node-a
    agentToken: agent-token-node-a
    xpus:
      - id: dpu0
        redfishSystem: /redfish/v1/Systems/Bluefield
  - id: node-b
    redfishSystem: /redfish/v1/Systems/system
    bmcToken: bmc-token-node-b
`;

let stack: RunningStack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

async function postRaw(url: string, path: string, body: string, token?: string) {
  const res = await fetch(url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
  });
  return { status: res.status, json: (await res.json().catch(() => undefined)) as any };
}

describe('Redfish webhook through the stack process', () => {
  it('a pending notice retried 3 times is one reboot with the deadline from noticeSeconds; refusals change nothing', async () => {
    const dir = tempDir('redfish-proc');
    stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
    const url = stack.url;
    const stamped = new Date(Math.floor(Date.now() / 1000) * 1000 - 2000);
    // bmcweb's shape: local offset without a colon would also do; this one sends +00:00.
    const body = JSON.stringify({
      '@odata.type': '#Event.v1_7_0.Event',
      Id: '1',
      Name: 'Event Array',
      Context: 'node-a',
      Events: [
        {
          EventType: 'Alert',
          EventId: '9410',
          EventTimestamp: stamped.toISOString().replace('.000Z', '+00:00'),
          Severity: 'Warning',
          Message: 'The xPU will reboot in 600 seconds: firmware update.',
          MessageId: 'XpuReboot.1.0.RebootPending',
          MessageArgs: ['600', 'firmware update'],
          OriginOfCondition: { '@odata.id': '/redfish/v1/Systems/Bluefield' },
        },
      ],
    });

    // First delivery with the token in the Destination URL (a BMC that sends no custom headers).
    const posted = Date.now();
    const first = await postRaw(url, `/v1/events/redfish?access_token=bmc-token-node-a`, body);
    const answered = Date.now();
    expect(first).toEqual({ status: 202, json: { accepted: 1, ignored: 0 } });
    const started = await waitFor(
      'the reboot',
      async () => (await api(url, '/v1/reboots?node=node-a', { token: OPERATOR_TOKEN })).json?.items?.[0],
    );
    expect(started).toMatchObject({ kind: 'xpu', node: 'node-a', xpu: 'dpu0' });
    // Contract 7.1: the notice runs from the coordinator's receipt, not from the BMC's stamp (2 s earlier here).
    const deadline = Date.parse(started.deadline);
    expect(deadline).toBeGreaterThanOrEqual(posted + 600_000);
    expect(deadline).toBeLessThanOrEqual(answered + 600_000);

    // BlueField's retries: same bytes, header token; each is accepted and starts nothing.
    for (let i = 0; i < 2; i++)
      expect(await postRaw(url, '/v1/events/redfish', body, 'bmc-token-node-a')).toEqual({
        status: 202,
        json: { accepted: 1, ignored: 0 },
      });

    // Refusals: wrong token, an agent token, a Context of another node, not JSON, too large.
    const refusals = [
      await postRaw(url, '/v1/events/redfish', body, 'bmc-token-node-zz'),
      await postRaw(url, '/v1/events/redfish', body, 'agent-token-node-a'),
      await postRaw(url, '/v1/events/redfish', body.replace('"Context":"node-a"', '"Context":"node-b"'), 'bmc-token-node-a'),
      await postRaw(url, '/v1/events/redfish', body.slice(0, -3), 'bmc-token-node-a'),
      await postRaw(url, '/v1/events/redfish', body.replace('"Id":"1"', `"Id":"1","Pad":"${'x'.repeat(256 * 1024)}"`), 'bmc-token-node-a'),
      await postRaw(url, '/v1/events', JSON.stringify({ id: 'x', type: 'host.down', node: 'node-zz' }), OPERATOR_TOKEN),
    ];
    expect(refusals.map((r) => [r.status, r.json?.error])).toEqual([
      [401, 'Unauthorized'],
      [403, 'Forbidden'],
      [403, 'Forbidden'],
      [400, 'MalformedJson'],
      [413, 'PayloadTooLarge'],
      [404, 'NotFound'],
    ]);

    // Give any wrongly queued event time to be applied (the stack retries every 2 s), then compare.
    await new Promise((r) => setTimeout(r, 2500));
    const list = await api(url, '/v1/reboots', { token: OPERATOR_TOKEN });
    expect(list.json.items).toHaveLength(1);
    const detail = await api(url, `/v1/reboots/${started.id}`, { token: OPERATOR_TOKEN });
    expect(detail.json.deadline).toBe(started.deadline);
    expect(
      detail.json.history
        .filter((x: { phase: string }) => x.phase === 'notified' || x.phase === 'joined')
        .map((x: { phase: string }) => x.phase),
    ).toEqual(['notified']);
    const dlq = await api(url, '/v1/dlq', { token: OPERATOR_TOKEN });
    expect(dlq.status).toBe(200);
    expect(dlq.json.items).toEqual([]);
    expect(stack.output()).not.toMatch(/"level":"error"/);
  });
});
