// GET /openapi.json (docs/api.md): the document names exactly the routes of routes.ts and of the app,
// is a structurally valid OpenAPI 3.1 document, and its request schemas refuse what the routes refuse.
import { describe, expect, it } from 'vitest';
import { hashToken, InventoryIndex, parseInventory } from '../../lambdas/core/inventory.ts';
import { createApiApp, type ApiDeps } from '../../lambdas/handlers/api.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import { openApiDocument } from '../../lambdas/handlers/openapi.ts';
import { API_ROUTES, gatewayPath, routeKey } from '../../lambdas/handlers/routes.ts';

const OPERATOR = 'operator-token-openapi';
const index = new InventoryIndex(
  parseInventory(`
nodes:
  - id: n1
    trusted: true
    agentToken: agent-token-n1
    bmcToken: bmc-token-n1
    xpus:
      - id: dpu0
`),
);

/** Enough of the dependencies to get a request through authentication and validation. */
function testApp() {
  const redriven: unknown[] = [];
  const deps = {
    mapping: { rules: [] },
    operatorTokenHash: hashToken(OPERATOR),
    inventory: async () => index,
    logger: silentLogger,
    clock: { now: () => new Date('2030-01-01T00:00:00Z') },
    store: { getReboot: async () => undefined },
    dlq: {
      list: async () => [],
      redrive: async (ids?: string[]) => {
        redriven.push(ids ?? 'all');
        return { redriven: ids ?? [], notFound: [] };
      },
    },
  } as unknown as ApiDeps;
  return { app: createApiApp(deps), redriven };
}

const doc = openApiDocument() as any;
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
const operations = Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, item]) =>
  Object.entries(item)
    .filter(([m]) => METHODS.includes(m))
    .map(([method, op]) => ({ key: routeKey({ method, path }), path, op })),
);

function resolve(ref: string): unknown {
  expect(ref.startsWith('#/'), ref).toBe(true);
  let at: any = doc;
  for (const part of ref.slice(2).split('/')) {
    at = at?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    if (at === undefined) throw new Error(`$ref ${ref} does not resolve`);
  }
  return at;
}

/** Every `$ref` in the document, with where it sits. */
function refs(v: unknown, at = '#'): { at: string; ref: string }[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => refs(x, `${at}/${i}`));
  if (v && typeof v === 'object')
    return Object.entries(v).flatMap(([k, x]) => (k === '$ref' && typeof x === 'string' ? [{ at, ref: x }] : refs(x, `${at}/${k}`)));
  return [];
}

/**
 * Checks a value against the JSON Schema keywords z.toJSONSchema emits for the request bodies; any
 * other keyword fails the test rather than being ignored (so a new one is noticed, not waved through).
 */
function validates(schema: any, v: unknown): boolean {
  if (schema.$ref) return validates(resolve(schema.$ref), v);
  const known = new Set([
    'type',
    'properties',
    'required',
    'additionalProperties',
    'minLength',
    'maxLength',
    'minimum',
    'maximum',
    'exclusiveMinimum',
    'exclusiveMaximum',
    'enum',
    'const',
    'anyOf',
    'items',
    'minItems',
    'maxItems',
    'default',
    'description',
    'propertyNames',
    'pattern',
  ]);
  for (const k of Object.keys(schema)) if (!known.has(k)) throw new Error(`the test validator does not know keyword ${k}`);
  const typeOf = (x: unknown) => (x === null ? 'null' : Array.isArray(x) ? 'array' : Number.isInteger(x) ? 'integer' : typeof x);
  if (schema.type) {
    const types: string[] = [schema.type].flat();
    const t = typeOf(v);
    if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) return false;
  }
  if (schema.anyOf && !schema.anyOf.some((s: unknown) => validates(s, v))) return false;
  if (schema.enum && !schema.enum.includes(v)) return false;
  if ('const' in schema && v !== schema.const) return false;
  if (typeof v === 'string') {
    if (schema.minLength !== undefined && v.length < schema.minLength) return false;
    if (schema.maxLength !== undefined && v.length > schema.maxLength) return false;
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(v)) return false;
  }
  if (typeof v === 'number') {
    if (schema.minimum !== undefined && v < schema.minimum) return false;
    if (schema.maximum !== undefined && v > schema.maximum) return false;
    if (schema.exclusiveMinimum !== undefined && v <= schema.exclusiveMinimum) return false;
    if (schema.exclusiveMaximum !== undefined && v >= schema.exclusiveMaximum) return false;
  }
  if (Array.isArray(v)) {
    if (schema.minItems !== undefined && v.length < schema.minItems) return false;
    if (schema.maxItems !== undefined && v.length > schema.maxItems) return false;
    if (schema.items && !v.every((x) => validates(schema.items, x))) return false;
  }
  if (typeOf(v) === 'object') {
    const o = v as Record<string, unknown>;
    if ((schema.required ?? []).some((k: string) => !(k in o))) return false;
    for (const [k, x] of Object.entries(o)) {
      const p = schema.properties?.[k];
      if (p) {
        if (!validates(p, x)) return false;
      } else if (schema.additionalProperties === false) return false;
      else if (schema.additionalProperties && typeof schema.additionalProperties === 'object' && !validates(schema.additionalProperties, x))
        return false;
    }
  }
  return true;
}

const bodySchema = (key: string) => {
  const op = operations.find((o) => o.key === key)?.op;
  expect(op?.requestBody, `${key} has a request body`).toBeDefined();
  return op.requestBody.content['application/json'].schema;
};

describe('GET /openapi.json', () => {
  it('is served without a token and is the document', async () => {
    const res = await testApp().app.request('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(doc)));
  });

  it('documents exactly the routes of routes.ts, each described', () => {
    expect(operations.map((o) => o.key).sort()).toEqual(API_ROUTES.map(routeKey).sort());
    const undocumented = operations.filter((o) => o.op['x-undocumented']).map((o) => o.key);
    expect(undocumented, 'describe these in lambdas/handlers/openapi.ts').toEqual([]);
  });

  it('documents exactly the routes the app serves', () => {
    const app = createApiApp({ mapping: { rules: [] } } as unknown as ApiDeps);
    const served = new Set(
      app.routes.filter((r) => r.method !== 'ALL').map((r) => routeKey({ method: r.method, path: gatewayPath(r.path) })),
    );
    const documented = new Set(operations.map((o) => o.key));
    expect([...served].filter((k) => !documented.has(k))).toEqual([]);
    expect([...documented].filter((k) => !served.has(k))).toEqual([]);
    expect(served.has('GET /openapi.json')).toBe(true);
  });

  it('is structurally OpenAPI 3.1: versions, responses, parameters, security, every $ref resolves', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(typeof doc.info.title).toBe('string');
    expect(typeof doc.info.version).toBe('string');
    const ids = operations.map((o) => o.op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { key, path, op } of operations) {
      const statuses = Object.keys(op.responses ?? {});
      expect(statuses.length, key).toBeGreaterThan(0);
      for (const s of statuses) expect(s, key).toMatch(/^([1-5]\d\d|default)$/);
      for (const r of Object.values(op.responses) as any[]) expect(typeof (r.$ref ?? r.description), key).toBe('string');
      const declared = (op.parameters ?? [])
        .filter((p: any) => p.in === 'path')
        .map((p: any) => p.name)
        .sort();
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      expect(declared, key).toEqual(inPath);
      for (const p of op.parameters ?? []) expect(['path', 'query', 'header', 'cookie'], key).toContain(p.in);
      for (const req of op.security ?? doc.security)
        for (const name of Object.keys(req)) expect(doc.components.securitySchemes, key).toHaveProperty(name);
    }
    const unresolved = refs(doc).filter(({ ref }) => {
      try {
        resolve(ref);
        return false;
      } catch {
        return true;
      }
    });
    expect(unresolved).toEqual([]);
    expect(refs(doc).length).toBeGreaterThan(10);
  });

  it('errors are {"error","message"}; public routes need no token, the Redfish webhook takes access_token', () => {
    expect(doc.components.schemas.Error.required).toEqual(['error', 'message']);
    const byKey = Object.fromEntries(operations.map((o) => [o.key, o.op]));
    for (const [status, name] of [
      ['400', 'BadRequest'],
      ['401', 'Unauthorized'],
      ['403', 'Forbidden'],
      ['404', 'NotFound'],
      ['409', 'Conflict'],
      ['413', 'PayloadTooLarge'],
      ['503', 'UnavailableOrNotConfigured'],
    ])
      expect(
        Object.values(byKey).some((op: any) => op.responses[status]?.$ref === `#/components/responses/${name}`),
        status,
      ).toBe(true);
    for (const r of API_ROUTES) {
      const op = byKey[routeKey(r)];
      if (r.public) expect(op.security, routeKey(r)).toEqual([]);
      else expect(op.responses['401'], routeKey(r)).toEqual({ $ref: '#/components/responses/Unauthorized' });
    }
    expect(byKey['POST /v1/events/redfish'].security).toEqual([{ bearer: [] }, { accessToken: [] }]);
    expect(doc.components.securitySchemes.accessToken).toMatchObject({ type: 'apiKey', in: 'query', name: 'access_token' });
    expect(doc.security).toEqual([{ bearer: [] }]);
    const reboots = byKey['GET /v1/reboots'].parameters.map((p: any) => `${p.in}:${p.name}`);
    expect(reboots).toEqual(['query:node', 'query:status', 'query:limit', 'query:cursor']);
  });

  describe('a request body schema refuses what its route refuses', () => {
    const { app, redriven } = testApp();
    const post = (path: string, body: unknown, token: string) =>
      app.request(path, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });

    const cases: { key: string; path: string; token: string; bad: unknown; good: unknown; goodStatus: number; afterwards?: () => void }[] =
      [
        {
          key: 'POST /v1/reboots/{id}/extensions',
          path: '/v1/reboots/r-1/extensions',
          token: 'agent-token-n1',
          bad: { seconds: 0 },
          good: { seconds: 60, reason: 'draining' },
          goodStatus: 404, // no such reboot: past validation
        },
        {
          key: 'POST /v1/dlq/redrive',
          path: '/v1/dlq/redrive',
          token: OPERATOR,
          bad: { ids: ['m-1'], all: true },
          good: { ids: ['m-1'] },
          goodStatus: 200,
          afterwards: () => expect(redriven).toEqual([['m-1']]), // only the valid request reached the queue
        },
        {
          key: 'POST /v1/events',
          path: '/v1/events',
          token: OPERATOR,
          bad: { type: 'host.down', node: 'n1' },
          good: { id: 'e-1', type: 'no.such.type', node: 'n1' },
          goodStatus: 400, // only the type is wrong, which the schema also refuses: see below
        },
        {
          key: 'POST /v1/holds',
          path: '/v1/holds',
          token: OPERATOR,
          bad: { selector: { building: 'b1' }, reason: 'audit' },
          good: { selector: { node: 'no-such-node' }, reason: 'audit' },
          goodStatus: 404, // past validation: the selector matches no node
        },
      ];

    for (const c of cases)
      it(c.key, async () => {
        const schema = bodySchema(c.key);
        const bad = await post(c.path, c.bad, c.token);
        expect(bad.status).toBe(400);
        expect(((await bad.json()) as { error: string }).error).toBe('ValidationError');
        expect(validates(schema, c.bad)).toBe(false);

        const good = await post(c.path, c.good, c.token);
        expect(good.status).toBe(c.goodStatus);
        if (c.key === 'POST /v1/events') {
          expect(((await good.json()) as { error: string }).error).toBe('UnknownEventType');
          expect(validates(schema, c.good)).toBe(false);
          expect(validates(schema, { ...(c.good as object), type: 'host.down' })).toBe(true);
        } else expect(validates(schema, c.good)).toBe(true);
        c.afterwards?.();
      });
  });
});
