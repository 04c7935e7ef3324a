// Lambda entry: the HTTP API behind API Gateway (HTTP API, payload v2).
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { handle } from 'hono/aws-lambda';
import { hashToken } from '../core/inventory.ts';
import { loadMapping } from '../core/redfish/mapping.ts';
import { createApiApp } from '../handlers/api.ts';
import { tokenOf } from '../handlers/authorizer.ts';
import type { InventoryHint } from '../ports/index.ts';
import { fitLambdaResponse } from './response-limit.ts';
import { deadLetters, deps, env, flushWakeups, powertoolsMetrics } from './runtime.ts';

/**
 * What this request will look up in the inventory: the caller's token and the node a posted event
 * names. A Lambda container serves one request at a time, so the hint of the current request is
 * safe to keep here; the app's own inventory() calls (which name nothing) get it.
 */
let requestHint: InventoryHint = {};

export function hintOf(
  event: Pick<APIGatewayProxyEventV2, 'headers' | 'queryStringParameters' | 'body' | 'isBase64Encoded'>,
): InventoryHint {
  const token = tokenOf(event);
  const nodes: string[] = [];
  // A posted native event names its node, which may not be the token's (403, or 404 when unknown).
  if (event.body && event.body.length < 64 * 1024) {
    try {
      const body = JSON.parse(event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body);
      if (typeof body?.node === 'string') nodes.push(body.node);
    } catch {
      /* the app answers 400 */
    }
  }
  return { ...(token ? { tokenHash: hashToken(token) } : {}), nodes };
}

// API Gateway HTTP APIs cut integrations at 30 s: long polls end a little before that.
const app = createApiApp({
  ...deps,
  inventory: (hint) => deps.inventory(hint ?? requestHint),
  dlq: deadLetters,
  mapping: loadMapping(env.REDFISH_MAPPING_FILE ?? null),
  maxWaitSeconds: env.LONG_POLL_MAX_SECONDS,
});
const serve = handle(app);

export const handler = async (event: Parameters<typeof serve>[0], context: Context) => {
  requestHint = hintOf(event as unknown as APIGatewayProxyEventV2);
  try {
    const result = await serve(event, context);
    const fitted = fitLambdaResponse(result);
    if (fitted !== result) deps.logger.warn('answer too large for Lambda', { path: (event as unknown as APIGatewayProxyEventV2).rawPath });
    return fitted;
  } finally {
    await flushWakeups();
    // Powertools keeps metrics in memory until published: without this the API's counts never reach CloudWatch.
    if (powertoolsMetrics.hasStoredMetrics()) powertoolsMetrics.publishStoredMetrics();
  }
};
