// GET /openapi.json (docs/api.md): an OpenAPI 3.1 document of every route in routes.ts, whose
// request schemas are the zod schemas the routes validate with (z.toJSONSchema, input side).
import type { Hono } from 'hono';
import { z } from 'zod';
import { REPORT_FORMATS } from '../core/report/render.ts';
import { NATIVE_EVENT_TYPES } from '../core/types.ts';
import { ResultBody } from './agent-results.ts';
import { ListParams, MAX_WAIT_SECONDS, NativeEventBody } from './api.ts';
import { ListQuery as DlqListQuery, RedriveBody } from './dlq.ts';
import { ExtensionBody } from './extensions.ts';
import { ControlBody, HoldBody } from './fleet-routes.ts';
import { CancelBody as RolloutCancelBody, RolloutBody, RolloutListParams } from './rollout-routes.ts';
import { responseSchemas } from './openapi-shapes.ts';
import { API_ROUTES, routeKey, type ApiRoute } from './routes.ts';

export const OPENAPI_PATH = '/openapi.json';
export const API_VERSION = '0.1.0';

/** The error statuses the API answers with `{"error","message"}` (docs/api.md), by their usual code. */
const ERRORS = {
  400: ['BadRequest', 'the request is malformed or invalid (a JSON body, a field, a query parameter)'],
  401: ['Unauthorized', 'no bearer token, or one the coordinator does not know'],
  403: ['Forbidden', 'the token is known but may not do this (another node, another agent, not the operator)'],
  404: ['NotFound', 'the reboot, node, xPU, command, hold or rollout does not exist'],
  409: ['Conflict', 'the request conflicts with the current state (e.g. a reboot past its notice phase)'],
  413: ['PayloadTooLarge', 'the body is too large: over 256 KiB (262,144 bytes), on every route'],
  503: ['NotConfigured', 'this deployment lacks what the route needs (e.g. no DLQ configured)'],
} as const;
type ErrorStatus = keyof typeof ERRORS;
/**
 * The literal `error` codes each error response may carry (`x-error-codes`, and named in its description):
 * a client can branch on them. test/integration/api-shape-audit-s9.test.ts fails on a code it meets that is
 * not listed here.
 */
export const ERROR_CODES: Record<ErrorStatus | 500, readonly string[]> = {
  400: [
    'ValidationError',
    'MalformedJson',
    'UnknownEventType',
    'InvalidReportQuery',
    'EmptyPlan',
    'PlanTooLarge',
    'BadRequest',
    // The Redfish webhook's parser (lambdas/core/redfish/parse.ts).
    'InvalidEncoding',
    'TooDeeplyNested',
    'NotAnEvent',
    'MalformedRecord',
  ],
  401: ['Unauthorized'],
  403: ['Forbidden'],
  404: ['NotFound'],
  409: [
    'PastNoticePhase',
    'PastDeadline',
    'MaxExtensions',
    'NoExtensionSecondsLeft',
    'NotExtendable',
    'RolloutOverlap',
    'RolloutEnded',
    'Conflict',
  ],
  413: ['PayloadTooLarge'],
  500: ['InternalError'],
  503: ['Unavailable', 'NotConfigured', 'ConcurrentUpdate'],
};
/** 503 `Unavailable` (lambdas/handlers/unavailable.ts): a dependency did not answer. Any route with a token may answer it. */
const UNAVAILABLE =
  'a dependency (the store, the queue or the workflow engine) did not answer or throttled; nothing was done, send the same request again after Retry-After';

/**
 * The 503s a route with a token may answer, as one response (OpenAPI has one per status): `Unavailable`
 * on every such route, `NotConfigured` where it lists 503, `ConcurrentUpdate` where it writes. Its
 * component is named after them (`Unavailable`, `UnavailableOrContended`, `UnavailableNotConfiguredOrContended`, ...).
 */
function unavailableResponse(op: Pick<Operation, 'errors' | 'contended'>): { name: string; description: string } {
  const parts: Array<[string, string]> = [
    ['Unavailable', `\`Unavailable\` (with Retry-After): ${UNAVAILABLE}`],
    ...(op.errors.includes(503) ? [['NotConfigured', `\`NotConfigured\`: ${ERRORS[503][1]}`] as [string, string]] : []),
    ...(op.contended ? [['Contended', `\`ConcurrentUpdate\` (with Retry-After): ${CONTENDED}`] as [string, string]] : []),
  ];
  const names = parts.map(([n]) => n);
  const name = names.length === 1 ? names[0] : `${names.slice(0, -1).join('')}Or${names.at(-1)}`;
  return { name, description: parts.map(([, d]) => d).join('; or ') };
}

/** 503 `ConcurrentUpdate` (lambdas/handlers/contended.ts): contention outlasted the store's retries. */
const CONTENDED =
  'other writers kept changing the same reboot, command or rollout for seconds; nothing of the lost write was done, send the same request again after Retry-After';

type Content = 'json' | 'html' | 'report' | 'none';

interface Operation {
  summary: string;
  description?: string;
  tag: string;
  /** Query parameters: one per property of the object schema. */
  query?: z.ZodObject;
  body?: { name: string; schema: z.ZodType; required?: boolean };
  headers?: { name: string; description: string; schema: object }[];
  ok: { status: number; description: string; content?: Content; schema?: object };
  errors: ErrorStatus[];
  /** Writes a reboot, command or rollout that other writers may be changing: 503 ConcurrentUpdate (contended.ts). */
  contended?: true;
  /** `access_token` in the query as well as the header (RFC 6750 §2.3), for BMCs without custom headers. */
  queryToken?: true;
}

/** A response schema of openapi-shapes.ts. */
const shape = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/**
 * What each route takes and answers. Where a route reads a parameter without a zod schema of its
 * own (the long poll's `wait`, the report's query), the schema here describes what it accepts.
 * Built on first use: the route modules import api.ts, which mounts this one.
 */
function operations(): Record<string, Operation> {
  const authed: ErrorStatus[] = [401, 403];
  return {
    'GET /healthz': {
      tag: 'operations',
      summary: 'Health of the coordinator and its dependencies',
      description:
        'Answers 503 `{"ok":false,"unavailable":[...],"dependencies":{...}}` while the store, the queue or the workflow engine does not answer.',
      ok: {
        status: 200,
        description: '`{"ok":true}`',
        schema: shape('Health'),
      },
      errors: [],
    },
    'GET /openapi.json': {
      tag: 'operations',
      summary: 'This document',
      ok: { status: 200, description: 'an OpenAPI 3.1 document of every route' },
      errors: [],
    },
    'POST /v1/events/redfish': {
      tag: 'events',
      summary: 'A Redfish Event pushed by a BMC to its EventDestination',
      description: 'The BMC token names the node. Records that map to no reboot signal are counted as ignored.',
      queryToken: true,
      body: { name: 'RedfishEvent', schema: z.looseObject({ Events: z.array(z.looseObject({})) }), required: true },
      ok: {
        status: 202,
        description: 'accepted and ignored records',
        schema: shape('EventsAccepted'),
      },
      errors: [400, ...authed, 413],
    },
    'POST /v1/events': {
      tag: 'events',
      summary: 'One native event',
      description:
        "From the node's BMC or agent token, or the operator. A node not in the inventory is a 404; an unknown type a 400 (`UnknownEventType`).",
      queryToken: true,
      // The route checks `type` itself (to name the error); the document lists the types it accepts.
      body: { name: 'NativeEvent', schema: NativeEventBody.extend({ type: z.enum(NATIVE_EVENT_TYPES) }), required: true },
      ok: { status: 202, description: '`{"accepted":1,"ignored":0,"id"}`', schema: shape('EventsAccepted') },
      errors: [400, ...authed, 404, 413],
    },
    'GET /v1/reboots': {
      tag: 'reboots',
      summary: 'Reboots, newest first',
      description: "The operator sees every node; an agent token only its own node's reboots.",
      query: ListParams,
      ok: { status: 200, description: '`{"items":[<reboot>...],"next":"<cursor>"|null}`', schema: shape('RebootList') },
      errors: [400, ...authed],
    },
    'GET /v1/reboots/{id}': {
      tag: 'reboots',
      summary: 'One reboot with its history',
      ok: { status: 200, description: 'the reboot', schema: shape('Reboot') },
      errors: [...authed, 404],
    },
    'POST /v1/reboots/{id}/extensions': {
      tag: 'reboots',
      summary: 'The node agent asks for more notice',
      description:
        'A request beyond what remains is trimmed (200 with fewer seconds). 403 for an untrusted host or another node; 409 once no extension is left or the notice phase is over.',
      headers: [
        {
          name: 'Idempotency-Key',
          description: 'A repeat with the same key answers the first answer (header `idempotent-replayed: true`) and grants nothing more.',
          schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,255}$' },
        },
      ],
      body: { name: 'ExtensionRequest', schema: ExtensionBody, required: true },
      ok: { status: 200, description: '`{"granted":S,"deadline":"..."}`', schema: shape('ExtensionGrant') },
      errors: [400, ...authed, 404, 409, 413],
      contended: true,
    },
    'POST /v1/reboots/{id}/cancel': {
      tag: 'fleet',
      summary: 'Cancel a reboot before its xPU went down',
      description: "The operator, or the xPU's own agent for its xPU reboot. 409 once the xPU went down.",
      body: { name: 'RebootControl', schema: ControlBody },
      ok: { status: 200, description: 'the cancelled reboot', schema: shape('Reboot') },
      errors: [400, ...authed, 404, 409, 413],
      contended: true,
    },
    'POST /v1/reboots/{id}/force': {
      tag: 'fleet',
      summary: 'Force a reboot in its notice phase (operator)',
      body: { name: 'RebootControl', schema: ControlBody },
      ok: { status: 200, description: 'the forced reboot', schema: shape('Reboot') },
      errors: [400, ...authed, 404, 409, 413],
      contended: true,
    },
    'GET /v1/agents/{agentId}/commands': {
      tag: 'agents',
      summary: 'Long poll for the commands of an agent',
      description: 'A command is delivered again until its result is posted. `node` is the host agent, `node.xpu` an xPU agent.',
      query: z.object({
        wait: z.coerce
          .number()
          .min(0)
          .max(MAX_WAIT_SECONDS)
          .default(0)
          .describe(`seconds to wait for a command; at most ${MAX_WAIT_SECONDS}`),
      }),
      ok: { status: 200, description: '`[{"id","type","rebootId","node","xpu","args","deadline"}]`', schema: shape('CommandList') },
      errors: [400, ...authed, 404],
    },
    'POST /v1/agents/{agentId}/commands/{cmdId}': {
      tag: 'agents',
      summary: "A command's result",
      description: '`running` is a heartbeat; a repeated final result is accepted once, idempotently (`"duplicate":true`).',
      body: { name: 'CommandResult', schema: ResultBody, required: true },
      ok: { status: 200, description: '`{"id","status","duplicate"?}`', schema: shape('CommandResultAck') },
      errors: [400, ...authed, 404, 413],
      contended: true,
    },
    'GET /v1/reports/compliance': {
      tag: 'reports',
      summary: 'The compliance report of the reboots notified in [from, to) (operator)',
      query: z.object({
        from: z.string().describe('ISO 8601 date, or date-time with a zone'),
        to: z.string().describe('ISO 8601 date, or date-time with a zone; after from'),
        format: z.enum(REPORT_FORMATS).default('json'),
      }),
      ok: { status: 200, description: 'the report as JSON, CSV (a row per reboot) or one HTML page', content: 'report' },
      errors: [400, ...authed],
    },
    'GET /v1/dlq': {
      tag: 'operations',
      summary: 'Events parked in the ingest dead-letter queue, with why (operator)',
      query: DlqListQuery,
      ok: { status: 200, description: '`{"items":[...],"count"}`', schema: shape('DlqList') },
      errors: [400, ...authed, 503],
    },
    'POST /v1/dlq/redrive': {
      tag: 'operations',
      summary: 'Move parked events back to the ingest queue (operator)',
      body: { name: 'DlqRedrive', schema: RedriveBody, required: true },
      description:
        'One call moves messages for 20 s at most (API Gateway stops at 30 s), at least one; `more: true` when messages (or requested ids) may be left: send it again.',
      ok: { status: 200, description: '`{"redriven","notFound","ids","missing","more"}`', schema: shape('DlqRedriveResult') },
      errors: [400, ...authed, 413, 503],
    },
    'GET /v1/nodes/{id}': {
      tag: 'fleet',
      summary: 'A node: its place, provisioned tenant, xPUs and active reboots',
      description: "The operator or the node's agents.",
      ok: {
        status: 200,
        description: '`{"id","rack","zone","provisionedTenant","xpus":[{"id","persistentPower"}],"activeReboots":[...]}`',
        schema: shape('Node'),
      },
      errors: [...authed, 404],
    },
    'POST /v1/holds': {
      tag: 'fleet',
      summary: 'Hold the reboots of the nodes a selector matches (operator)',
      body: { name: 'HoldRequest', schema: HoldBody, required: true },
      ok: { status: 201, description: 'the hold, with the nodes it matches', schema: shape('Hold') },
      errors: [400, ...authed, 404, 413],
    },
    'GET /v1/holds': {
      tag: 'fleet',
      summary: 'The active holds (operator)',
      ok: { status: 200, description: '`{"items":[<hold>...]}`', schema: shape('HoldList') },
      errors: authed,
    },
    'DELETE /v1/holds/{id}': {
      tag: 'fleet',
      summary: 'Release a hold; what it queued goes on (operator)',
      ok: { status: 204, description: 'released', content: 'none' },
      errors: [...authed, 404],
      contended: true,
    },
    'POST /v1/rollouts': {
      tag: 'rollouts',
      summary: 'Reboot the xPUs a selector matches, a few at a time (operator)',
      headers: [
        {
          name: 'Idempotency-Key',
          description:
            'The rollout id derives from it: a repeat (its first answer lost) answers the rollout the first started, and starts no second one.',
          schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,255}$' },
        },
      ],
      body: { name: 'RolloutRequest', schema: RolloutBody, required: true },
      ok: {
        status: 201,
        description: '`{"id","status","plan":[{"node","xpu"}...]}` (`dryRun`: the plan only)',
        schema: shape('RolloutStarted'),
      },
      errors: [400, ...authed, 404, 409, 413, 503],
    },
    'GET /v1/rollouts': {
      tag: 'rollouts',
      summary: 'Rollouts, newest first (operator)',
      description:
        'At most 100 (more asked, 100 answered); a limit that is not a whole number from 1 is a 400 (`ValidationError`), as for `GET /v1/reboots`.',
      query: RolloutListParams,
      ok: { status: 200, description: '`{"items":[<rollout>...]}`', schema: shape('RolloutList') },
      errors: [400, ...authed, 503],
    },
    'GET /v1/rollouts/{id}': {
      tag: 'rollouts',
      summary: 'One rollout: done, pending and failed xPUs (operator)',
      ok: { status: 200, description: '`{"id","status","done","pending","failed",...}`', schema: shape('Rollout') },
      errors: [...authed, 404, 503],
    },
    'POST /v1/rollouts/{id}/cancel': {
      tag: 'rollouts',
      summary: 'Cancel a rollout: no more xPUs start (operator)',
      body: { name: 'RolloutCancel', schema: RolloutCancelBody },
      ok: { status: 200, description: 'the cancelled rollout', schema: shape('Rollout') },
      errors: [400, ...authed, 404, 409, 413, 503],
      contended: true,
    },
    'GET /v1/fleet': {
      tag: 'fleet',
      summary: 'The fleet at a glance: nodes by rack, reboots in flight and queued, budgets, holds, rollouts (operator)',
      ok: { status: 200, description: 'the fleet view behind `rebootctl status` and /ui', schema: shape('Fleet') },
      errors: [...authed, 503],
    },
    'GET /ui': {
      tag: 'fleet',
      summary: 'A live page of the fleet; it asks for the operator token and calls the API with it',
      ok: { status: 200, description: 'a self-contained HTML page', content: 'html' },
      errors: [],
    },
  };
}

/** The JSON Schema (2020-12, what OpenAPI 3.1 uses) of what a zod schema accepts. */
export function inputSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

function pathParameters(path: string) {
  return [...path.matchAll(/\{([^}]+)\}/g)].map(([, name]) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
}

function queryParameters(query: z.ZodObject | undefined) {
  if (!query) return [];
  const s = inputSchema(query) as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
  return Object.entries(s.properties ?? {}).map(([name, schema]) => {
    const { description, ...rest } = schema;
    return { name, in: 'query', required: (s.required ?? []).includes(name), ...(description ? { description } : {}), schema: rest };
  });
}

function okResponse(ok: Operation['ok']) {
  const content = ok.content ?? 'json';
  if (content === 'none') return { description: ok.description };
  if (content === 'html') return { description: ok.description, content: { 'text/html': { schema: { type: 'string' } } } };
  if (content === 'report')
    return {
      description: ok.description,
      content: {
        'application/json': { schema: shape('ComplianceReport') },
        'text/csv': { schema: { type: 'string' } },
        'text/html': { schema: { type: 'string' } },
      },
    };
  return { description: ok.description, content: { 'application/json': { schema: ok.schema ?? { type: 'object' } } } };
}

function operationOf(route: ApiRoute, op: Operation | undefined, schemas: Record<string, unknown>) {
  const id = `${route.method.toLowerCase()}${route.path.replace(/\{([^}]+)\}/g, 'By-$1').replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase())}`;
  if (!op) {
    // A route added to routes.ts without a description here still appears (test/unit/openapi.test.ts fails on it).
    return {
      operationId: id,
      summary: route.path,
      'x-undocumented': true,
      parameters: pathParameters(route.path),
      responses: { default: { description: 'undocumented' } },
    };
  }
  if (op.body) {
    // A request body named like a response schema would replace it: the document would then describe the answer wrongly.
    if (op.body.name in responseSchemas()) throw new Error(`request body ${op.body.name} clashes with the response schema of that name`);
    schemas[op.body.name] = inputSchema(op.body.schema);
  }
  const responses: Record<string, unknown> = { [String(op.ok.status)]: okResponse(op.ok) };
  for (const status of op.errors) if (status !== 503) responses[String(status)] = { $ref: `#/components/responses/${ERRORS[status][0]}` };
  if (!route.public) {
    responses['500'] = { $ref: '#/components/responses/InternalError' };
    // One response per status: every 503 the route may answer, under one (unavailable.ts, contended.ts).
    responses['503'] = { $ref: `#/components/responses/${unavailableResponse(op).name}` };
  } else if (op.errors.includes(503)) responses['503'] = { $ref: '#/components/responses/NotConfigured' };
  if (route.path === '/healthz')
    responses['503'] = { description: 'a dependency does not answer', content: { 'application/json': { schema: shape('HealthDown') } } };
  const parameters = [
    ...pathParameters(route.path),
    ...queryParameters(op.query),
    ...(op.headers ?? []).map((h) => ({ name: h.name, in: 'header', required: false, description: h.description, schema: h.schema })),
  ];
  return {
    operationId: id,
    tags: [op.tag],
    summary: op.summary,
    ...(op.description ? { description: op.description } : {}),
    ...(route.public ? { security: [] } : op.queryToken ? { security: [{ bearer: [] }, { accessToken: [] }] } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(op.body
      ? {
          requestBody: {
            required: op.body.required === true,
            content: { 'application/json': { schema: { $ref: `#/components/schemas/${op.body.name}` } } },
          },
        }
      : {}),
    responses,
  };
}

/** The document of API_ROUTES (JSON-ready). */
export function openApiDocument(): Record<string, unknown> {
  const ops = operations();
  const schemas: Record<string, unknown> = {
    ...responseSchemas(),
    Error: {
      type: 'object',
      properties: {
        error: { type: 'string', description: 'a literal code, e.g. ValidationError, Forbidden' },
        message: { type: 'string' },
      },
      required: ['error', 'message'],
    },
  };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of API_ROUTES) {
    paths[route.path] ??= {};
    paths[route.path][route.method.toLowerCase()] = operationOf(route, ops[routeKey(route)], schemas);
  }
  const errorResponse = (description: string, codes: readonly string[]) => ({
    description: `${description}. \`error\`: ${codes.map((c) => `\`${c}\``).join(', ')}`,
    'x-error-codes': codes,
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  });
  const responses: Record<string, unknown> = Object.fromEntries(
    Object.entries(ERRORS).map(([status, [name, description]]) => [
      name,
      errorResponse(description, status === '503' ? ['NotConfigured'] : ERROR_CODES[Number(status) as ErrorStatus]),
    ]),
  );
  responses.InternalError = errorResponse('the request could not be completed; it is safe to retry', ERROR_CODES[500]);
  const retryAfter = {
    'Retry-After': { description: 'seconds to wait before sending the request again', schema: { type: 'integer', minimum: 0 } },
  };
  for (const errors of [[], [503]] as ErrorStatus[][])
    for (const contended of [undefined, true] as const) {
      const { name, description } = unavailableResponse({ errors, contended });
      const codes = ['Unavailable', ...(errors.includes(503) ? ['NotConfigured'] : []), ...(contended ? ['ConcurrentUpdate'] : [])];
      responses[name] = { ...errorResponse(description, codes), headers: retryAfter };
    }
  return {
    openapi: '3.1.0',
    info: {
      title: 'xpu-reboot-coordinator',
      version: API_VERSION,
      description: 'Coordinates xPU (DPU/IPU/SmartNIC) reboots and host reboots. The same routes locally and behind API Gateway.',
    },
    security: [{ bearer: [] }],
    tags: ['events', 'reboots', 'agents', 'fleet', 'rollouts', 'reports', 'operations'].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'the operator token, a node agent or xPU agent token, or a BMC token (inventory)',
        },
        accessToken: {
          type: 'apiKey',
          in: 'query',
          name: 'access_token',
          description: "a BMC's token in the URL, for BMCs that send no custom headers (RFC 6750 §2.3)",
        },
      },
      schemas,
      responses,
    },
  };
}

/** Mounts GET /openapi.json: public, as it holds no secrets. */
export function registerOpenApiRoute(app: Hono): void {
  let doc: Record<string, unknown> | undefined;
  app.get(OPENAPI_PATH, (c) => {
    doc ??= openApiDocument();
    return c.json(doc);
  });
}
