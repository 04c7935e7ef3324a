// Every route of the HTTP API in one list: the hono app serves them, API Gateway (cdk/constructs/http-api.ts) exposes them.
// test/cdk/route-parity.test.ts holds the two sides to this list.

export type RouteMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface ApiRoute {
  method: RouteMethod;
  /** API Gateway syntax: `{id}` for a path parameter (hono writes `:id`). */
  path: string;
  /** No authorizer in front (the route itself decides, or it reveals nothing). */
  public?: true;
}

export const API_ROUTES: readonly ApiRoute[] = [
  { method: 'GET', path: '/healthz', public: true },
  { method: 'POST', path: '/v1/events/redfish' },
  { method: 'POST', path: '/v1/events' },
  { method: 'GET', path: '/v1/reboots' },
  { method: 'GET', path: '/v1/reboots/{id}' },
  { method: 'POST', path: '/v1/reboots/{id}/extensions' },
  { method: 'GET', path: '/v1/agents/{agentId}/commands' },
  { method: 'POST', path: '/v1/agents/{agentId}/commands/{cmdId}' },
  { method: 'GET', path: '/v1/reports/compliance' },
  // Operator: the ingest dead-letter queue (lambdas/handlers/dlq.ts).
  { method: 'GET', path: '/v1/dlq' },
  { method: 'POST', path: '/v1/dlq/redrive' },
  // docs/reboot-model.md
  { method: 'GET', path: '/v1/nodes/{id}' },
  // docs/fleet-safety.md
  { method: 'POST', path: '/v1/holds' },
  { method: 'GET', path: '/v1/holds' },
  { method: 'DELETE', path: '/v1/holds/{id}' },
  { method: 'POST', path: '/v1/reboots/{id}/cancel' },
  { method: 'POST', path: '/v1/reboots/{id}/force' },
  { method: 'POST', path: '/v1/rollouts' },
  { method: 'GET', path: '/v1/rollouts' },
  // The fleet view behind `rebootctl status` and /ui.
  { method: 'GET', path: '/v1/fleet' },
  { method: 'GET', path: '/v1/rollouts/{id}' },
  { method: 'POST', path: '/v1/rollouts/{id}/cancel' },
  // The page asks for the operator token itself and calls the API with it.
  { method: 'GET', path: '/ui', public: true },
  // docs/api.md: a description of the API, no secrets in it.
  { method: 'GET', path: '/openapi.json', public: true },
];

/** `/v1/reboots/:id` → `/v1/reboots/{id}`. */
export function gatewayPath(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, '{$1}');
}

export const routeKey = (r: { method: string; path: string }) => `${r.method.toUpperCase()} ${r.path}`;
