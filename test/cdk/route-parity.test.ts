// Every route the hono app serves is an API Gateway route, and every gateway route is served by the app.
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { createApiApp, type ApiDeps } from '../../lambdas/handlers/api.ts';
import { API_ROUTES, gatewayPath, routeKey } from '../../lambdas/handlers/routes.ts';
import { buildTestApp } from './helpers.ts';

/** The app's routes as gateway route keys (hono lists middleware as method ALL: not routes). */
function appRouteKeys(): string[] {
  // Registering routes touches no dependency: an empty bag is enough to enumerate them.
  const app = createApiApp({ mapping: { rules: [] } } as unknown as ApiDeps);
  const keys = app.routes.filter((r) => r.method !== 'ALL').map((r) => routeKey({ method: r.method, path: gatewayPath(r.path) }));
  return [...new Set(keys)].sort();
}

describe('route parity', () => {
  const listed = API_ROUTES.map(routeKey).sort();

  it('every route of the app is in the route list (and so a gateway route)', () => {
    const missing = appRouteKeys().filter((k) => !listed.includes(k));
    expect(missing, 'add these to lambdas/handlers/routes.ts').toEqual([]);
  });

  it('every listed route is served by the app', () => {
    const served = new Set(appRouteKeys());
    const unserved = listed.filter((k) => !served.has(k));
    expect(unserved).toEqual([]);
  });

  it('the gateway has exactly the listed routes, public ones without the authorizer, and $default for the rest', () => {
    const { stack } = buildTestApp({ skipBundling: true, config: { stage: 'parity' } });
    const all = Object.values(Template.fromStack(stack).findResources('AWS::ApiGatewayV2::Route')).map((r) => r.Properties);
    // The rest goes to the API (its 404 in the contract's shape), behind the authorizer like every private route.
    const fallback = all.filter((r) => r.RouteKey === '$default');
    expect(fallback).toHaveLength(1);
    expect(fallback[0].AuthorizationType).toBe('CUSTOM');
    expect(fallback[0].Target).toEqual(all.find((r) => r.RouteKey === 'GET /v1/reboots')!.Target);
    const routes = all.filter((r) => r.RouteKey !== '$default');
    expect(routes.map((r) => r.RouteKey).sort()).toEqual(listed);
    for (const r of routes) {
      const isPublic = API_ROUTES.find((x) => routeKey(x) === r.RouteKey)!.public === true;
      expect(r.AuthorizationType, r.RouteKey).toBe(isPublic ? 'NONE' : 'CUSTOM');
    }
    expect(listed).toContain('GET /v1/dlq');
    expect(listed).toContain('POST /v1/dlq/redrive');
  }, 120_000);

  it('maps hono path parameters to gateway ones', () => {
    expect(gatewayPath('/v1/agents/:agentId/commands/:cmdId')).toBe('/v1/agents/{agentId}/commands/{cmdId}');
    expect(gatewayPath('/v1/reboots/:id{[a-z]+}')).toBe('/v1/reboots/{id}');
  });
});
