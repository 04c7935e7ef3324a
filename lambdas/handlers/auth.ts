// Who a request speaks for, and what that principal may do: one bearer-token parser and one set of
// rules for the API, the DLQ routes and the AWS authorizer (docs/api.md and docs/identities.md).
import { Forbidden, NotFound, Unauthorized } from '../core/errors.ts';
import { agentIdOf, hashToken, parseAgentId, type InventoryIndex } from '../core/inventory.ts';
import type { Principal } from '../core/principal.ts';

/**
 * The bearer token of a request: the `Authorization: Bearer` header, else (when `allowQuery`) the
 * `access_token` query parameter that BMCs without custom headers use (RFC 6750 §2.3).
 */
export function bearerToken(authorization: string | undefined, accessToken?: string | undefined): string | undefined {
  const m = authorization ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
  if (m) return m[1];
  return accessToken || undefined;
}

/**
 * Tokens are compared by hash, so stored inventories (AWS) need never hold the tokens themselves.
 * `operatorTokenHash` is OPERATOR_TOKEN's (unnamed `operator`); named operators come from the
 * inventory's `operators:` list.
 */
export function authenticate(token: string | undefined, index: InventoryIndex, operatorTokenHash?: string): Principal | undefined {
  if (!token) return undefined;
  const h = hashToken(token);
  const operator = operatorTokenHash ?? index.inventory.operatorTokenHash;
  if (operator && h === operator) return { kind: 'operator' };
  return index.principalByTokenHash(h);
}

/** Like authenticate, but a missing or unknown token is a 401. */
export function requirePrincipal(token: string | undefined, index: InventoryIndex, operatorTokenHash?: string): Principal {
  const who = authenticate(token, index, operatorTokenHash);
  if (!who) throw new Unauthorized();
  return who;
}

/**
 * May this principal act as the agent? The operator may act as any agent. An xPU's own token acts
 * only as that xPU's agent. A node's agentToken acts as its host agent and as every xPU agent of the
 * node that has no token of its own (the shared form of release 1).
 */
export function mayActAs(who: Principal, agentId: string, index: InventoryIndex): boolean {
  if (who.kind === 'operator') return true;
  if (who.kind !== 'agent') return false;
  const { node, xpu } = parseAgentId(agentId);
  if (who.node !== node) return false;
  if (who.agent === agentId) return true;
  if (who.agent !== undefined && who.agent !== node) return false; // an xPU's token, for another agent
  return xpu === null || !index.xpuHasOwnToken(node, xpu);
}

/**
 * Guards the agent routes: the node and xPU exist (404) and the principal may act as that agent
 * (403). `as` is the principal acting as that agent (for `by`).
 */
export function authorizeAgent(
  agentId: string,
  who: Principal,
  index: InventoryIndex,
): { node: string; xpu: string | null; as: Principal } {
  const { node, xpu } = parseAgentId(agentId);
  if (who.kind !== 'agent' && who.kind !== 'operator') throw new Forbidden('only agent tokens may use the agent routes');
  if (who.kind === 'agent' && who.node !== node) throw new Forbidden(`a token of node ${who.node} may not act as agent ${agentId}`);
  const def = index.node(node);
  if (!def) throw new NotFound(`node ${node} is not in the inventory`);
  // Said to the node's own token (or the operator's) only, after the node check: a mistyped xPU id shows what to fix.
  if (xpu && !def.xpus.some((x) => x.id === xpu))
    throw new NotFound(`node ${node} has no xPU ${xpu} (its agents: ${[node, ...def.xpus.map((x) => agentIdOf(node, x.id))].join(', ')})`);
  if (!mayActAs(who, agentId, index)) throw new Forbidden(`this token may not act as agent ${agentId}`);
  return { node, xpu, as: who.kind === 'agent' ? { ...who, agent: agentId } : who };
}

/**
 * Guards a native event: the node's BMC and the operator may post any event of that node; an agent
 * token only the events of an agent it may act as (`host.*` the host agent, `xpu.*` that xPU's).
 * Returns the principal the event is from, `agent` set to the agent it acted as.
 */
export function authorizeEvent(who: Principal, ev: { type: string; node: string; xpu?: string }, index: InventoryIndex): Principal {
  if (who.kind === 'operator') return who;
  if (who.node !== ev.node) throw new Forbidden(`a token of node ${who.node} may not post events for node ${ev.node}`);
  if (who.kind === 'bmc') return who;
  const agentId = agentIdOf(ev.node, ev.type.startsWith('xpu.') ? (ev.xpu ?? null) : null);
  if (!mayActAs(who, agentId, index)) throw new Forbidden(`this token may not post ${ev.type} as agent ${agentId}`);
  // The agent it acted as: with a node's shared token, the event's own agent (an xPU's xpu.ready is
  // that xPU agent's), so `by` names an agent, never a whole node.
  return { ...who, agent: agentId };
}
