// Black-box audit of the HTTP API's shapes (contract §3, §7) against the API's own GET /openapi.json, as an
// outside acceptance check would do it: a real stack, reboots of every kind driven by scripted agents (they
// poll and answer through the API itself), then every route called, error paths included, and every
// answer validated with a real JSON Schema validator (ajv, draft 2020-12, OpenAPI 3.1's dialect) against
// the schema the document declares for that route, status and content type.
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiApp, type ApiDeps } from '../../lambdas/handlers/api.ts';
import { gatewayPath, routeKey } from '../../lambdas/handlers/routes.ts';
import { launchChromium } from '../support/chromium.ts';
import { OPERATOR_TOKEN, startStackProcess, tempDir, waitFor, writeInventory, type RunningStack } from '../support/stack.ts';

const node = (id: string, rack: string, trusted: boolean) => `
  - id: ${id}
    rack: ${rack}
    zone: ${rack === 'r1' ? 'z1' : 'z2'}
    tenant: t1
    trusted: ${trusted}
    redfishSystem: /redfish/v1/Systems/system
    bmcToken: bmc-token-${id}
    agentToken: agent-token-${id}
    xpus: [{ id: dpu0, redfishSystem: /redfish/v1/Systems/Bluefield, persistentPower: ${id === 'node-b'} }]`;

// a: xPU reboot completed, then a rollout; b: host reboot; c: held (queued xPU reboot, denied host reboot);
// d: extensions then cancelled; e: unannounced; f: failed (restore-pcie fails); g: untrusted, forced.
const NODES = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((n) => `node-${n}`);
const INVENTORY = `
policy:
  xpuReboot: { noticeSeconds: 300, maxExtensionSeconds: 600, maxExtensions: 2 }
  budgets: [{ per: fleet, maxUnavailable: 50 }]
nodes:${NODES.map((id, i) => node(id, i < 4 ? 'r1' : 'r2', id !== 'node-g')).join('')}
`;
const agentToken = (n: string) => `agent-token-${n}`;

let stack: RunningStack;
let doc: any;
let stop = false;
const loops: Promise<void>[] = [];

/** One call and its answer, as an outside client sees it. */
interface Call {
  method: string;
  path: string;
  status: number;
  contentType: string;
  text: string;
  json: any;
  headers: Headers;
}
const calls: Call[] = [];

async function call(
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string>; record?: boolean } = {},
): Promise<Call> {
  const headers: Record<string, string> = { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(stack.url + path, {
    method,
    headers: { ...headers, ...opts.headers },
    body: opts.raw ?? (opts.body !== undefined ? JSON.stringify(opts.body) : undefined),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const c = { method, path, status: res.status, contentType: res.headers.get('content-type') ?? '', text, json, headers: res.headers };
  if (opts.record !== false) calls.push(c);
  return c;
}
const op = (path: string, opts: Parameters<typeof call>[2] & { method?: string } = {}) =>
  call(opts.method ?? 'GET', path, { token: OPERATOR_TOKEN, ...opts });

/** Scripted agents: each polls its commands through the API and answers them as the script says. */
type Script = (cmd: any) => Promise<'succeeded' | 'failed' | undefined>;
function runAgent(agent: string, token: string, script: Script) {
  loops.push(
    (async () => {
      while (!stop) {
        const got = await call('GET', `/v1/agents/${agent}/commands?wait=1`, { token, record: false }).catch(() => undefined);
        if (got?.status !== 200) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        if (got.json.length) calls.push(got);
        for (const cmd of got.json) {
          const status = await script(cmd);
          if (!status) continue;
          calls.push(await call('POST', `/v1/agents/${agent}/commands/${cmd.id}`, { token, body: { status: 'running', output: '' } }));
          calls.push(
            await call('POST', `/v1/agents/${agent}/commands/${cmd.id}`, { token, body: { status, output: `${cmd.type} ${status}` } }),
          );
        }
      }
    })(),
  );
}

let seq = 0;
const event = (n: string, type: string, data: Record<string, unknown> = {}, token = agentToken(n)) =>
  call('POST', '/v1/events', {
    token,
    body: { id: `ev-${++seq}`, type, node: n, ...(type.startsWith('xpu.') ? { xpu: 'dpu0' } : {}), data },
  });

const rebootsOf = async (n: string) => (await op(`/v1/reboots?node=${n}`, { record: false })).json.items as any[];
const rebootOf = (n: string, ok: (r: any) => boolean, what: string, ms = 30_000) =>
  waitFor(`${n}: ${what}`, async () => (await rebootsOf(n)).find(ok), ms);

const ids: Record<string, string> = {};
let rolloutId: string;
let cancelledRolloutId: string;
let holdId: string;

beforeAll(async () => {
  const dir = tempDir('api-shape-audit');
  stack = await startStackProcess({ dataDir: join(dir, 'data'), nodesFile: writeInventory(dir, INVENTORY) });
  doc = (await call('GET', '/openapi.json')).json;

  // Hosts prepare and recover; node-f's restore-pcie fails. node-d's and node-g's hosts never answer (kept in notice).
  for (const n of ['node-a', 'node-b', 'node-c', 'node-e', 'node-f'])
    runAgent(n, agentToken(n), async (cmd) => (n === 'node-f' && cmd.type === 'restore-pcie' ? 'failed' : 'succeeded'));
  // xPUs: go down and come back when told to proceed; announce when a rollout asks.
  for (const n of ['node-a', 'node-b', 'node-c', 'node-e', 'node-f', 'node-g'])
    runAgent(`${n}.dpu0`, agentToken(n), async (cmd) => {
      if (cmd.type === 'proceed-reboot') {
        await event(n, 'xpu.down');
        await event(n, 'xpu.ready');
      }
      if (cmd.type === 'reboot-xpu')
        await event(n, 'xpu.reboot.pending', { reason: cmd.args.reason, noticeSeconds: 60, rolloutId: cmd.args.rolloutId });
      return 'succeeded';
    });

  // xPU reboot, completed.
  await event('node-a', 'xpu.reboot.pending', { reason: 'firmware', noticeSeconds: 120 });
  ids.completed = (await rebootOf('node-a', (r) => r.status === 'completed', 'completed')).id;

  // Host reboot: the xPU frees the host context, the host goes down and comes back, the xPU too.
  await event('node-b', 'host.reboot.requested', { method: 'shell' });
  ids.host = (await rebootOf('node-b', (r) => r.kind === 'host' && r.status === 'rebooting', 'host rebooting')).id;
  await event('node-b', 'host.down');
  await event('node-b', 'host.ready', { tenant: 't2' });
  await event('node-b', 'xpu.ready');
  await rebootOf('node-b', (r) => r.id === ids.host && r.status === 'completed', 'host reboot completed');

  // A hold on node-c: its planned xPU reboot is queued, its host reboot denied.
  const hold = await op('/v1/holds', { method: 'POST', body: { selector: { node: 'node-c' }, reason: 'disk swap' } });
  holdId = hold.json.id;
  await event('node-c', 'host.reboot.requested', { method: 'ipmi' });
  ids.denied = (await rebootOf('node-c', (r) => r.status === 'denied', 'denied')).id;
  await event('node-c', 'xpu.reboot.pending', { reason: 'held firmware' });
  ids.queued = (await rebootOf('node-c', (r) => r.status === 'queued', 'queued')).id;

  // node-d: in its notice phase (its host never answers) for the extension and cancel routes.
  await event('node-d', 'xpu.reboot.pending', { reason: 'to be cancelled' });
  ids.notice = (await rebootOf('node-d', (r) => ['notified', 'preparing'].includes(r.status), 'in notice')).id;

  // Unannounced: the xPU goes down and comes back without a notice.
  await event('node-e', 'xpu.down');
  ids.unannounced = (await rebootOf('node-e', (r) => r.mode === 'unannounced', 'unannounced')).id;
  await event('node-e', 'xpu.ready');
  await rebootOf('node-e', (r) => r.id === ids.unannounced && r.status === 'completed', 'unannounced completed');

  // Failed: restore-pcie fails.
  await event('node-f', 'xpu.reboot.pending', { reason: 'doomed' });
  ids.failed = (await rebootOf('node-f', (r) => r.status === 'failed', 'failed')).id;

  // node-g (untrusted): in notice, to be forced.
  await event('node-g', 'xpu.reboot.pending', { reason: 'to be forced' });
  ids.forced = (await rebootOf('node-g', (r) => ['notified', 'preparing'].includes(r.status), 'in notice')).id;

  // A rollout of node-a's xPU, to its end; one of node-c's (held) to cancel.
  rolloutId = (await op('/v1/rollouts', { method: 'POST', body: { selector: { node: 'node-a' }, maxUnavailable: 1, reason: 'fw 24.10' } }))
    .json.id;
  await waitFor(
    'the rollout completed',
    async () => (await op(`/v1/rollouts/${rolloutId}`, { record: false })).json.status === 'completed',
    60_000,
  );
  cancelledRolloutId = (
    await op('/v1/rollouts', { method: 'POST', body: { selector: { node: 'node-c' }, maxUnavailable: 1, reason: 'to cancel' } })
  ).json.id;
}, 5 * 60_000);

afterAll(async () => {
  stop = true;
  await Promise.allSettled(loops);
  await stack?.stop();
});

// ---- validation against the document ----

let ajv: InstanceType<typeof Ajv2020> | undefined;
function validator() {
  if (!ajv) {
    ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
    // CommonJS seen from ESM: the default import is module.exports, whose `default` is the plugin too.
    formats.default(ajv);
    ajv.addSchema(doc, 'openapi.json');
  }
  return ajv;
}
const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

function resolveRef(v: any): any {
  if (!v?.$ref) return v;
  let at = doc;
  for (const part of v.$ref.slice(2).split('/')) at = at?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  if (at === undefined) throw new Error(`$ref ${v.$ref} does not resolve`);
  return resolveRef(at);
}

/** The document's operation for a concrete method and path (query left off), with its template. */
function operationFor(method: string, path: string): { template: string; op: any } | undefined {
  const bare = path.split('?')[0];
  for (const [template, item] of Object.entries(doc.paths as Record<string, any>)) {
    const re = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`);
    if (re.test(bare) && item[method.toLowerCase()]) return { template, op: item[method.toLowerCase()] };
  }
  return undefined;
}

/** What is wrong with an answer as the document describes it; [] when nothing. */
function deviations(c: Call): string[] {
  // HEAD is a GET without its body (RFC 9110 §9.3.2): the server answers it wherever it answers GET.
  if (c.method === 'HEAD') return operationFor('GET', c.path) && c.text === '' ? [] : [`HEAD ${c.path} → ${c.status}: not as its GET`];
  const found = operationFor(c.method, c.path);
  const what = `${c.method} ${c.path} → ${c.status}`;
  if (!found) {
    // A route the server does not have: the contract's error shape still applies.
    if (c.status !== 404 && c.status !== 405) return [`${what}: no such route, yet not 404/405`];
    return c.json?.error && typeof c.json.message === 'string' ? [] : [`${what}: not {"error","message"}: ${c.text.slice(0, 200)}`];
  }
  const { template, op: operation } = found;
  const declared = operation.responses[String(c.status)] ?? operation.responses.default;
  if (!declared) return [`${what}: status ${c.status} not declared for ${c.method} ${template}`];
  const status = operation.responses[String(c.status)] ? String(c.status) : 'default';
  const response = resolveRef(declared);
  if (!response.content) return c.text === '' ? [] : [`${what}: declared without content, but answered ${c.text.slice(0, 100)}`];
  const type = c.contentType.split(';')[0].trim();
  const media = response.content[type];
  if (!media) return [`${what}: content type ${type} not declared (${Object.keys(response.content).join(', ')})`];
  if (type !== 'application/json')
    return typeof media.schema?.type === 'string' && media.schema.type !== 'string' ? [`${what}: ${type} not a string`] : [];
  const ref = declared.$ref
    ? `${declared.$ref.replace(/^#/, 'openapi.json#')}/content/${pointer(type)}/schema`
    : `openapi.json#/paths/${pointer(template)}/${c.method.toLowerCase()}/responses/${status}/content/${pointer(type)}/schema`;
  const validate = validator().getSchema(ref);
  if (!validate) return [`${what}: no schema at ${ref}`];
  if (validate(c.json)) {
    // An error's literal code is one the document names for that response (x-error-codes).
    const codes: string[] | undefined = response['x-error-codes'];
    if (codes && !codes.includes(c.json.error)) return [`${what}: error code ${c.json.error} not among ${codes.join(', ')}`];
    return [];
  }
  return [`${what}: ${validator().errorsText(validate.errors)} in ${c.text.slice(0, 300)}`];
}

describe('every answer validates against the schema GET /openapi.json declares for it', () => {
  it('drives every route, error paths included', async () => {
    const r = ids;
    const agentD = agentToken('node-d');
    const noToken = { token: undefined };
    // healthz, the document, the page
    await call('GET', '/healthz');
    await call('GET', '/ui');
    // --- events ---
    await call('POST', '/v1/events', { body: { id: 'x', type: 'host.down', node: 'node-a' } }); // 401
    await call('POST', '/v1/events', { token: 'not-a-token', body: { id: 'x', type: 'host.down', node: 'node-a' } }); // 401
    await call('POST', '/v1/events', { token: agentD, body: { id: 'x', type: 'host.down', node: 'node-a' } }); // 403
    await call('POST', '/v1/events', { token: OPERATOR_TOKEN, body: { id: 'x', type: 'host.down', node: 'node-z' } }); // 404
    await call('POST', '/v1/events', { token: OPERATOR_TOKEN, body: { id: 'x', type: 'no.such', node: 'node-a' } }); // 400
    await call('POST', '/v1/events', { token: OPERATOR_TOKEN, raw: '{not json', headers: { 'content-type': 'application/json' } }); // 400
    await call('POST', '/v1/events', {
      token: OPERATOR_TOKEN,
      raw: 'x'.repeat(300 * 1024),
      headers: { 'content-type': 'application/json' },
    }); // 413
    await call('POST', '/v1/events', {
      token: OPERATOR_TOKEN,
      body: { id: 'x', type: 'xpu.reboot.pending', node: 'node-a', data: { noticeSeconds: 'soon' } },
    });
    // Redfish webhook
    const redfish = {
      Events: [{ EventId: '1', MessageId: 'ResourceEvent.1.0.ResourceCreated', OriginOfCondition: '/redfish/v1/Systems/system' }],
    };
    await call('POST', '/v1/events/redfish', { token: 'bmc-token-node-e', body: redfish }); // 202, ignored
    await call('POST', '/v1/events/redfish?access_token=bmc-token-node-e', { body: redfish }); // 202
    // A BMC's native event with the token in the URL: kept for a host reboot of node-e, which never comes.
    await call('POST', '/v1/events?access_token=bmc-token-node-e', { body: { id: 'qt-1', type: 'host.down', node: 'node-e' } }); // 202
    await call('POST', '/v1/events/redfish', { body: redfish }); // 401
    await call('POST', '/v1/events/redfish', { token: agentD, body: redfish }); // 403
    await call('POST', '/v1/events/redfish', { token: 'bmc-token-node-e', raw: '[1,2', headers: { 'content-type': 'application/json' } }); // 400
    await call('POST', '/v1/events/redfish', { token: 'bmc-token-node-e', body: { ...redfish, Context: 'node-a' } }); // 403
    // --- reboots ---
    await op('/v1/reboots');
    await op('/v1/reboots?limit=2');
    const page = await op('/v1/reboots?limit=2');
    if (page.json?.next) await op(`/v1/reboots?limit=2&cursor=${encodeURIComponent(page.json.next)}`);
    await op('/v1/reboots?status=completed&node=node-a');
    await call('GET', '/v1/reboots', { token: agentD });
    await call('GET', '/v1/reboots?node=node-a', { token: agentD }); // 403
    await call('GET', '/v1/reboots', { token: 'bmc-token-node-d' }); // 403
    await call('GET', '/v1/reboots', noToken); // 401
    for (const q of ['limit=0', 'limit=abc', 'limit=1.5', 'status=bogus', 'cursor=garbage']) await op(`/v1/reboots?${q}`); // 400
    for (const id of Object.values(r)) await op(`/v1/reboots/${id}`);
    await call('GET', `/v1/reboots/${r.notice}`, { token: agentD });
    await call('GET', `/v1/reboots/${r.completed}`, { token: agentD }); // 403
    await call('GET', `/v1/reboots/${r.completed}`, noToken); // 401
    await op('/v1/reboots/no-such-reboot'); // 404
    await op(`/v1/reboots/${'x'.repeat(600)}`); // 404 (path limits)
    // --- extensions ---
    const ext = (id: string, body: unknown, token = agentD, headers: Record<string, string> = {}) =>
      call('POST', `/v1/reboots/${id}/extensions`, { token, body, headers });
    await ext(r.notice, { seconds: 60, reason: 'draining' }, agentD, { 'idempotency-key': 'k-1' }); // 200
    await ext(r.notice, { seconds: 60, reason: 'draining' }, agentD, { 'idempotency-key': 'k-1' }); // 200 replayed
    await ext(r.notice, { seconds: 100000, reason: 'more' }); // 200 trimmed
    await ext(r.notice, { seconds: 60, reason: 'again' }); // 409
    await ext(r.notice, { seconds: 0 }); // 400
    await ext(r.notice, { seconds: 60 }, agentD, { 'idempotency-key': 'has space' }); // 400
    await ext(r.notice, { seconds: 60 }, OPERATOR_TOKEN); // 403
    await ext(r.forced, { seconds: 60 }, agentToken('node-g')); // 403 untrusted
    await ext(r.notice, { seconds: 60 }, agentToken('node-a')); // 403 another node
    await ext(r.completed, { seconds: 60 }, agentToken('node-a')); // 409 past notice
    await ext('no-such-reboot', { seconds: 60 }); // 404
    await call('POST', `/v1/reboots/${r.notice}/extensions`, { body: { seconds: 60 } }); // 401
    await call('POST', `/v1/reboots/${r.notice}/extensions`, { token: agentD, raw: 'x'.repeat(300 * 1024) }); // 413
    // --- commands (node-d's host agent: nobody else polls it) ---
    const cmds = await call('GET', '/v1/agents/node-d/commands?wait=0', { token: agentD });
    await call('GET', '/v1/agents/node-d/commands', { token: agentD });
    await call('GET', '/v1/agents/node-d/commands?wait=-1', { token: agentD }); // 400
    await call('GET', '/v1/agents/node-d/commands?wait=abc', { token: agentD }); // 400
    await call('GET', '/v1/agents/node-a/commands?wait=0', { token: agentD }); // 403
    await call('GET', '/v1/agents/node-z/commands?wait=0', { token: OPERATOR_TOKEN }); // 403 or 404
    await call('GET', '/v1/agents/node-d/commands?wait=0', noToken); // 401
    const cmd = cmds.json?.[0];
    expect(cmd, 'node-d has a command').toBeDefined();
    const result = (body: unknown, token = agentD, id = cmd.id) => call('POST', `/v1/agents/node-d/commands/${id}`, { token, body });
    await result({ status: 'running', output: '' });
    await result({ status: 'succeeded', output: 'ok' });
    await result({ status: 'succeeded', output: 'ok' }); // duplicate
    await result({ status: 'maybe' }); // 400
    await result({ status: 'succeeded' }, agentD, 'no-such-command'); // 404
    await result({ status: 'succeeded' }, agentToken('node-a')); // 403
    await result({ status: 'succeeded' }, ''); // 401
    // --- nodes ---
    for (const n of NODES) await op(`/v1/nodes/${n}`);
    await call('GET', '/v1/nodes/node-d', { token: agentD });
    await call('GET', '/v1/nodes/node-a', { token: agentD }); // 403
    await call('GET', '/v1/nodes/node-d', noToken); // 401
    await op('/v1/nodes/node-z'); // 404
    // --- holds ---
    await op('/v1/holds');
    await call('GET', '/v1/holds', { token: agentD }); // 403
    await call('GET', '/v1/holds', noToken); // 401
    await op('/v1/holds', { method: 'POST', body: { selector: { rack: 'r2' }, reason: 'x', until: '2000-01-01T00:00:00Z' } }); // 400
    await op('/v1/holds', { method: 'POST', body: { selector: { building: 'b1' }, reason: 'x' } }); // 400
    await op('/v1/holds', { method: 'POST', body: { selector: { node: 'node-z' }, reason: 'x' } }); // 404
    await op('/v1/holds', { method: 'POST', raw: 'x'.repeat(300 * 1024) }); // 413
    const tmpHold = await op('/v1/holds', {
      method: 'POST',
      body: { selector: { zone: 'z2' }, reason: 'brief', until: '2099-01-01T00:00:00Z' },
    });
    await op(`/v1/holds/${tmpHold.json?.id}`, { method: 'DELETE' }); // 204
    await op(`/v1/holds/${tmpHold.json?.id}`, { method: 'DELETE' }); // 404
    await call('DELETE', `/v1/holds/${holdId}`, { token: agentD }); // 403
    // --- cancel / force ---
    await call('POST', `/v1/reboots/${r.notice}/cancel`, { token: agentToken('node-a'), body: { reason: 'no' } }); // 403
    await call('POST', `/v1/reboots/${r.notice}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 7 } }); // 400
    await call('POST', `/v1/reboots/${r.notice}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'not now' } }); // 200
    await call('POST', `/v1/reboots/${r.notice}/cancel`, { token: OPERATOR_TOKEN, body: { reason: 'again' } }); // 409
    await call('POST', `/v1/reboots/${r.completed}/cancel`, { token: OPERATOR_TOKEN }); // 409 (empty body)
    await call('POST', '/v1/reboots/no-such-reboot/cancel', { token: OPERATOR_TOKEN, body: {} }); // 404
    await call('POST', `/v1/reboots/${r.forced}/force`, { token: agentToken('node-g'), body: {} }); // 403
    await call('POST', `/v1/reboots/${r.forced}/force`, { token: OPERATOR_TOKEN, body: { reason: 'now' } }); // 200
    await call('POST', `/v1/reboots/${r.completed}/force`, { token: OPERATOR_TOKEN, body: {} }); // 409
    await call('POST', `/v1/reboots/${r.forced}/force`, { body: {} }); // 401
    // --- rollouts ---
    await op('/v1/rollouts', { method: 'POST', body: { selector: { rack: 'r2' }, maxUnavailable: 1, reason: 'plan', dryRun: true } }); // 201 plan
    await op('/v1/rollouts', { method: 'POST', body: { selector: { node: 'node-c' }, maxUnavailable: 1, reason: 'overlap' } }); // 409
    await op('/v1/rollouts', { method: 'POST', body: { selector: { node: 'node-z' }, maxUnavailable: 1, reason: 'x' } }); // 404
    await op('/v1/rollouts', { method: 'POST', body: { maxUnavailable: 0, reason: 'x' } }); // 400
    await op('/v1/rollouts', { method: 'POST', raw: 'x'.repeat(300 * 1024) }); // 413
    await call('POST', '/v1/rollouts', { token: agentD, body: { maxUnavailable: 1, reason: 'x' } }); // 403
    await op('/v1/rollouts');
    await op('/v1/rollouts?limit=0'); // 400
    await op(`/v1/rollouts/${rolloutId}`);
    await op('/v1/rollouts/ro-none'); // 404
    await call('GET', `/v1/rollouts/${rolloutId}`, { token: agentD }); // 403
    await op(`/v1/rollouts/${cancelledRolloutId}/cancel`, { method: 'POST', body: { reason: 'changed my mind' } }); // 200
    await op(`/v1/rollouts/${rolloutId}/cancel`, { method: 'POST', body: {} }); // 409 (completed)
    await op('/v1/rollouts/ro-none/cancel', { method: 'POST', body: {} }); // 404
    // --- fleet, dlq, reports ---
    await op('/v1/fleet');
    await call('GET', '/v1/fleet', { token: agentD }); // 403
    await op('/v1/dlq');
    await op('/v1/dlq?limit=0'); // 400
    await op('/v1/dlq/redrive', { method: 'POST', body: { ids: ['m-none'] } });
    await op('/v1/dlq/redrive', { method: 'POST', body: { ids: [] } }); // 400
    await call('GET', '/v1/dlq', { token: agentD }); // 403
    const from = '2000-01-01T00:00:00Z';
    const to = '2100-01-01T00:00:00Z';
    for (const format of ['json', 'csv', 'html']) await op(`/v1/reports/compliance?from=${from}&to=${to}&format=${format}`);
    await op(`/v1/reports/compliance?from=${from}&to=${to}&format=xml`); // 400
    await op('/v1/reports/compliance'); // 400
    await call('GET', `/v1/reports/compliance?from=${from}&to=${to}`, { token: agentD }); // 403
    // --- wrong methods, unknown routes, wrong content type ---
    await op('/v1/reboots', { method: 'PUT', body: {} });
    await op('/v1/reboots', { method: 'DELETE' });
    await call('PATCH', '/healthz');
    await op('/v1/nope');
    await call('POST', '/v1/events', {
      token: OPERATOR_TOKEN,
      raw: JSON.stringify({ id: 'ct-1', type: 'host.down', node: 'node-e' }),
      headers: { 'content-type': 'text/plain' },
    });
    // --- odd but possible requests ---
    await call('GET', `/v1/reboots?access_token=${OPERATOR_TOKEN}`);
    await call('GET', `/v1/rollouts?access_token=${OPERATOR_TOKEN}`);
    await call('HEAD', '/healthz');
    await call('OPTIONS', '/v1/reboots');
    await op('/v1/reboots?limit=5000&foo=bar');
    await op(`/v1/reports/compliance?from=${to}&to=${from}`);
    await op('/v1/holds', { method: 'POST', raw: '' });
    await op('/v1/holds', { method: 'POST', raw: 'null', headers: { 'content-type': 'application/json' } });
    await op('/v1/events', { method: 'POST', raw: '[]', headers: { 'content-type': 'application/json' } });
    await call('GET', '/v1/agents/node-d/commands?wait=31', { token: agentD });
    await call('POST', `/v1/agents/node-d/commands/${cmd.id}`, {
      token: agentD,
      raw: '{"status":',
      headers: { 'content-type': 'application/json' },
    });
    await call('POST', '/v1/events/redfish', {
      token: 'bmc-token-node-e',
      raw: JSON.stringify(redfish),
      headers: { 'content-type': 'text/plain' },
    });
    await call('POST', '/v1/events/redfish', { token: 'bmc-token-node-e', raw: '' });
    // Every reboot again, now cancelled, forced and the like, and the list.
    for (const id of Object.values(r)) await op(`/v1/reboots/${id}`);
    await op('/v1/reboots');
  }, 120_000);

  it('every answer validates, every route was called, every declared error status was seen somewhere', () => {
    const problems = calls.flatMap(deviations);
    expect(problems, problems.join('\n')).toEqual([]);
    const app = createApiApp({ mapping: { rules: [] } } as unknown as ApiDeps);
    const served = new Set(
      app.routes.filter((x) => x.method !== 'ALL').map((x) => routeKey({ method: x.method, path: gatewayPath(x.path) })),
    );
    const called = new Set(
      calls
        .map((c) => operationFor(c.method, c.path))
        .filter((x) => x)
        .map((x) => `${x!.template}`),
    );
    const hit = new Set(
      calls.flatMap((c) => {
        const f = operationFor(c.method, c.path);
        return f ? [routeKey({ method: c.method, path: f.template })] : [];
      }),
    );
    expect([...served].filter((k) => !hit.has(k))).toEqual([]);
    expect(called.size).toBeGreaterThan(10);
    const statuses = new Set(calls.map((c) => c.status));
    for (const s of [200, 201, 202, 204, 400, 401, 403, 404, 409, 413]) expect(statuses, String(s)).toContain(s);
  });
});

describe("the document's JSON Schemas", () => {
  it('are valid draft 2020-12 and compile in strict mode (no unknown keyword or format), every schema of a parameter and content too', () => {
    const strict = new Ajv2020({ strict: true, allErrors: true });
    formats.default(strict);
    // The components as a schema document of their own: the same refs, in JSON Schema's own $defs.
    const text = JSON.stringify({ $id: 'components', $defs: doc.components.schemas }).replaceAll('#/components/schemas/', '#/$defs/');
    strict.addSchema(JSON.parse(text));
    const names = Object.keys(doc.components.schemas);
    expect(names).toEqual(
      expect.arrayContaining(['Reboot', 'RebootList', 'Node', 'Command', 'Hold', 'Rollout', 'ComplianceReport', 'Error']),
    );
    for (const name of names) {
      expect(strict.validateSchema(doc.components.schemas[name]), `${name}: ${strict.errorsText()}`).toBe(true);
      expect(() => strict.getSchema(`components#/$defs/${name}`), name).not.toThrow();
    }
    const inline: { at: string; schema: unknown }[] = [];
    const walk = (v: any, at: string) => {
      if (!v || typeof v !== 'object') return;
      if (at.endsWith('/schema') && !v.$ref) inline.push({ at, schema: v });
      else for (const [k, x] of Object.entries(v)) walk(x, `${at}/${k}`);
    };
    walk(doc.paths, '#/paths');
    expect(inline.length).toBeGreaterThan(10);
    for (const { at, schema } of inline) {
      const refs = JSON.parse(JSON.stringify(schema).replaceAll('#/components/schemas/', 'components#/$defs/'));
      expect(() => strict.compile(refs), at).not.toThrow();
    }
  });
});

describe('the validator bites: an answer off the document fails', () => {
  it('refuses a reboot without history `by`, a bad deadline, an unknown status; an error without message', () => {
    const reboot = calls.find((c) => c.method === 'GET' && /^\/v1\/reboots\/[^/]+$/.test(c.path) && c.status === 200)!;
    const off = (json: unknown, like: Call = reboot) => deviations({ ...like, json });
    expect(off(reboot.json)).toEqual([]);
    const { history, ...rest } = reboot.json;
    expect(off({ ...rest, history: history.map(({ by: _, ...h }: any) => h) })).not.toEqual([]);
    expect(off({ ...reboot.json, deadline: 'soon' })).not.toEqual([]);
    expect(off({ ...reboot.json, status: 'exploded' })).not.toEqual([]);
    expect(off(rest)).not.toEqual([]);
    const notFound = calls.find((c) => c.status === 404 && c.path.startsWith('/v1/reboots/'))!;
    expect(off(notFound.json, notFound)).toEqual([]);
    expect(off({ error: 'NotFound' }, notFound)).not.toEqual([]);
    expect(off({ error: 'NoSuchThing', message: 'x' }, notFound)).not.toEqual([]);
  });
});

describe("the contract's field names and types (§3, §7)", () => {
  const ok = (method: string, re: RegExp) => calls.filter((c) => c.method === method && re.test(c.path.split('?')[0]) && c.status < 300);
  const REBOOT = ['id', 'kind', 'node', 'xpu', 'status', 'deadline', 'extensions', 'history'];

  it('reboots, lists, history entries with `by`; every kind seen', () => {
    const reboots = [
      ...ok('GET', /^\/v1\/reboots$/).flatMap((c) => c.json.items),
      ...ok('GET', /^\/v1\/reboots\/[^/]+$/).map((c) => c.json),
    ];
    for (const c of ok('GET', /^\/v1\/reboots$/)) expect(Object.keys(c.json).sort()).toEqual(['items', 'next']);
    for (const r of reboots) {
      for (const k of REBOOT) expect(r, `${r.id} ${k}`).toHaveProperty(k);
      for (const h of r.history) expect(Object.keys(h).sort(), r.id).toEqual(['at', 'by', 'detail', 'phase']);
    }
    const seen = new Set(reboots.map((r) => `${r.kind}:${r.mode === 'unannounced' ? 'unannounced' : r.status}`));
    for (const k of ['xpu:completed', 'host:completed', 'host:denied', 'xpu:queued', 'xpu:cancelled', 'xpu:unannounced', 'xpu:failed'])
      expect(seen, k).toContain(k);
    const byOf = new Set(reboots.flatMap((r) => r.history.map((h: any) => h.by.split(':')[0])));
    expect([...byOf].sort()).toEqual(['agent', 'coordinator', 'operator'].filter((b) => byOf.has(b)));
    expect(byOf).toContain('agent');
    expect(byOf).toContain('coordinator');
  });

  it('a second cancel of a cancelled reboot answers it again (200) and changes nothing', async () => {
    const cancels = calls.filter((c) => c.method === 'POST' && c.path === `/v1/reboots/${ids.notice}/cancel` && c.status === 200);
    expect(cancels).toHaveLength(2);
    expect(cancels[1].json.status).toBe('cancelled');
    const r = (await op(`/v1/reboots/${ids.notice}`, { record: false })).json;
    expect(r.history.filter((h: any) => h.phase === 'cancelled')).toHaveLength(1);
    expect(Object.values(r.commands).filter((c: any) => c.type === 'cancel-reboot')).toHaveLength(1);
  });

  it('node, extension answers, commands, holds, rollouts, healthz', async () => {
    for (const c of ok('GET', /^\/v1\/nodes\//)) {
      expect(Object.keys(c.json).sort()).toEqual(['activeReboots', 'id', 'provisionedTenant', 'rack', 'xpus', 'zone']);
      for (const x of c.json.xpus) expect(Object.keys(x).sort()).toEqual(['id', 'persistentPower']);
    }
    const b = ok('GET', /^\/v1\/nodes\/node-b$/)[0].json;
    expect(b).toMatchObject({ provisionedTenant: 't2', xpus: [{ id: 'dpu0', persistentPower: true }] });
    for (const c of ok('POST', /\/extensions$/)) expect(Object.keys(c.json).sort()).toEqual(['deadline', 'granted']);
    const granted = ok('POST', /\/extensions$/).map((c) => c.json.granted);
    expect(granted).toEqual([60, 60, 540]); // the repeat with the same key answers the first answer; the third is trimmed
    for (const c of ok('GET', /\/commands$/))
      for (const cmd of c.json) expect(Object.keys(cmd).sort()).toEqual(['args', 'deadline', 'id', 'node', 'rebootId', 'type', 'xpu']);
    const started = ok('POST', /^\/v1\/rollouts$/).filter((c) => c.json.id);
    for (const c of started) expect(Object.keys(c.json).sort()).toEqual(['id', 'plan', 'status']);
    for (const c of ok('GET', /^\/v1\/rollouts\/[^/]+$/))
      for (const k of ['id', 'status', 'done', 'pending', 'failed']) expect(c.json).toHaveProperty(k);
    expect(ok('POST', /^\/v1\/holds$/)[0].json).toMatchObject({
      id: expect.any(String),
      selector: { node: 'node-c' },
      reason: 'disk swap',
    });
    expect((await call('GET', '/healthz', { record: false })).json).toEqual({ ok: true });
  });

  it('a token in the URL (?access_token=) is taken on the two routes a BMC posts to only, as the document declares', () => {
    const inUrl = calls.filter((c) => c.path.includes('access_token='));
    expect(inUrl.map((c) => `${c.method} ${c.path.split('?')[0]} ${c.status}`)).toEqual([
      'POST /v1/events/redfish 202',
      'POST /v1/events 202',
      'GET /v1/reboots 401',
      'GET /v1/rollouts 401',
    ]);
    const declared = Object.entries(doc.paths as Record<string, any>).flatMap(([path, item]) =>
      Object.entries(item).flatMap(([m, o]: [string, any]) =>
        (o.security ?? []).some((s: any) => 'accessToken' in s) ? [`${m} ${path}`] : [],
      ),
    );
    expect(declared.sort()).toEqual(['post /v1/events', 'post /v1/events/redfish']);
  });

  it('413 above 256 KiB on every route that takes a body, rollouts too (the document once said 64 KiB there)', async () => {
    expect(doc.components.responses.PayloadTooLarge.description).toMatch(/256 KiB/);
    expect(doc.components.responses.PayloadTooLarge.description).not.toMatch(/64 KiB/);
    const reason = 'x'.repeat(100 * 1024);
    for (const path of ['/v1/rollouts', '/v1/holds', `/v1/rollouts/${rolloutId}/cancel`, `/v1/reboots/${ids.completed}/cancel`]) {
      const res = await call('POST', path, { token: OPERATOR_TOKEN, body: { selector: { node: 'node-a' }, maxUnavailable: 1, reason } });
      expect(res.status, path).toBe(400);
    }
  });

  it('healthz: 200 {"ok":true}; 503 {"ok":false,...} as the document says (a store that does not answer)', async () => {
    const down = {
      ok: false,
      unavailable: ['store'],
      dependencies: { store: 'ProbeTimedOut: no answer within 1500 ms', queue: 'ok', workflows: 'ok' },
    };
    const app = createApiApp({ mapping: { rules: [] }, health: async () => down } as unknown as ApiDeps);
    const res = await app.request('/healthz');
    const json = await res.json();
    const c: Call = {
      method: 'GET',
      path: '/healthz',
      status: res.status,
      contentType: res.headers.get('content-type') ?? '',
      text: JSON.stringify(json),
      json,
      headers: res.headers,
    };
    expect(c.status).toBe(503);
    expect(json).toEqual(down);
    expect(deviations(c)).toEqual([]);
    expect(deviations({ ...c, json: { ok: false } })).not.toEqual([]);
  });

  it('the report: JSON fields, CSV header and columns', () => {
    const json = ok('GET', /^\/v1\/reports\/compliance$/).find((c) => c.contentType.startsWith('application/json'))!.json;
    for (const k of ['schemaVersion', 'from', 'to', 'reboots', 'totals']) expect(json).toHaveProperty(k);
    const COLUMNS = ['id', 'kind', 'node', 'xpu', 'status', 'noticeSeconds', 'extendedSeconds', 'forced', 'recoverySeconds'];
    for (const r of json.reboots) for (const k of COLUMNS) expect(r, `${r.id} ${k}`).toHaveProperty(k);
    const csv = ok('GET', /^\/v1\/reports\/compliance$/)
      .find((c) => c.contentType.startsWith('text/csv'))!
      .text.trim()
      .split(/\r?\n/);
    expect(csv[0].split(',').slice(0, COLUMNS.length)).toEqual(COLUMNS);
    expect(csv.length - 1).toBe(json.reboots.length);
  });
});

describe('GET /ui on this stack (fleet-ui.test.ts covers sign-in and the timeline)', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  }, 5 * 60_000);
  afterAll(async () => browser?.close());

  it('shows nodes by rack, reboots in flight and queued, the budget, the hold and the rollouts; no console error, no other origin', async () => {
    await event('node-d', 'xpu.reboot.pending', { reason: 'in flight for the page' });
    const inFlight = await rebootOf('node-d', (r) => ['notified', 'preparing'].includes(r.status), 'in notice again');
    const context = await browser.newContext();
    const page = await context.newPage();
    const origin = new URL(stack.url).origin;
    const foreign: string[] = [];
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    await context.route('**/*', (route) => {
      if (route.request().url().startsWith(origin)) return route.continue();
      foreign.push(route.request().url());
      return route.abort('blockedbyclient');
    });
    await page.goto(`${stack.url}/ui`);
    await page.fill('#tok', OPERATOR_TOKEN);
    await page.click('#login button');
    await page.locator(`#inflight tr[data-reboot="${inFlight.id}"]`).waitFor({ timeout: 15_000 });
    expect(await page.locator('[data-rack]').evaluateAll((els) => els.map((e) => e.getAttribute('data-rack')))).toEqual(['r1', 'r2']);
    expect(await page.locator('[data-rack="r2"] [data-node]').evaluateAll((els) => els.map((e) => e.getAttribute('data-node')))).toEqual([
      'node-e',
      'node-f',
      'node-g',
    ]);
    expect(await page.locator(`#inflight tr[data-reboot="${ids.queued}"]`).textContent()).toMatch(/node-c\/dpu0.*queued/);
    expect(await page.locator('[data-node="node-c"]').getAttribute('data-state')).toBe('queued');
    expect(await page.locator('[data-node="node-c"]').getAttribute('class')).toContain('held');
    expect(await page.locator('[data-node="node-d"]').getAttribute('data-state')).toBe('xpu-rebooting');
    expect(await page.locator('#budgets tr[data-budget^="fleet"]').textContent()).toMatch(/\d+\/50$/);
    expect(await page.locator(`[data-hold="${holdId}"]`).textContent()).toContain('node=node-c');
    expect(await page.locator(`[data-rollout="${rolloutId}"]`).textContent()).toMatch(/1\/1 done/);
    expect(await page.locator(`[data-rollout="${cancelledRolloutId}"]`).textContent()).toContain('to cancel');
    expect(foreign).toEqual([]);
    expect(errors, errors.join('\n')).toEqual([]);
    await context.close();
  }, 120_000);
});
