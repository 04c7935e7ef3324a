// The one line an agent (and `agent check`) says when the server answers 404 on the agent's own commands
// route: which agent id, and what the coordinator's inventory has instead (its 404 names the node's agents).
import type { HttpResponse } from './http.ts';

/**
 * One line for a 404 on the agent's commands route: the coordinator's own answer names what its
 * inventory has (`node n has no xPU x (its agents: …)`); any other 404 means --server is not its API.
 */
export function unknownAgentReason(agent: string, server: string, res: HttpResponse): string {
  let body: { error?: unknown; message?: unknown } | undefined;
  try {
    body = JSON.parse(res.body);
  } catch {
    body = undefined;
  }
  // The coordinator's inventory answers (handlers/auth.ts authorizeAgent); its unknown-route answer is `no route …`.
  if (body?.error === 'NotFound' && typeof body.message === 'string' && /^node \S+ (has no xPU|is not in the inventory)/.test(body.message))
    return `unknown agent ${agent}: the server's inventory does not have it (404: ${body.message})`;
  return `unknown agent ${agent}, or ${server} is not the coordinator's API: 404 on the agent's commands route (${res.body.slice(0, 200) || 'no message'})`;
}
