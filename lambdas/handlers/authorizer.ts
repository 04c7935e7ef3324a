// The HTTP API's REQUEST authorizer (simple responses): who the bearer token is, from the inventory's token hashes.
import { hashToken, type InventoryIndex } from '../core/inventory.ts';
import type { InventoryHint } from '../ports/index.ts';
import { authenticate, bearerToken } from './auth.ts';
import type { Logger } from './deps.ts';

export interface AuthorizerEvent {
  headers?: Record<string, string | undefined> | null;
  queryStringParameters?: Record<string, string | undefined> | null;
}

export type AuthorizerResult = { isAuthorized: true; context: { principal: string; node: string; agent: string } };

/**
 * A missing or unknown token goes through as nobody: the API answers it 401 `{"error":"Unauthorized",...}`
 * as the contract (section 3) and the local stack do. Refused here, API Gateway would answer 403
 * `{"message":"Forbidden"}` itself (an HTTP API cannot reshape that answer). The API authenticates every
 * request on its own (api.ts `principal`), so nothing is let further than before; the authorizer runs
 * for every request anyway (no identity source, no cache), the API function now for bad tokens too.
 */
export const NOBODY: AuthorizerResult = { isAuthorized: true, context: { principal: 'none', node: '', agent: '' } };

/** Thrown when the token could not be checked (store throttled, timed out): not a refusal. */
export class AuthorizerUnavailable extends Error {
  override readonly name = 'AuthorizerUnavailable';
}

export function tokenOf(event: AuthorizerEvent): string | undefined {
  return bearerToken(event.headers?.authorization ?? event.headers?.Authorization, event.queryStringParameters?.access_token);
}

/**
 * Who the token is, or NOBODY for a token that is missing or unknown (the API's 401; an agent stops,
 * a bad token does not get better). When the token cannot be checked (a DynamoDB throttle or timeout),
 * the handler throws instead: API Gateway then answers 500, which agents and BMCs retry.
 */
export function createAuthorizer(deps: { inventory: (hint?: InventoryHint) => Promise<InventoryIndex>; logger: Logger }) {
  return async (event: AuthorizerEvent): Promise<AuthorizerResult> => {
    const token = tokenOf(event);
    if (!token) return NOBODY;
    let index: InventoryIndex;
    try {
      index = await deps.inventory({ tokenHash: hashToken(token) });
    } catch (err) {
      deps.logger.error('authorizer could not read the inventory', { error: String(err), errorName: (err as Error).name });
      throw new AuthorizerUnavailable(`token not checked: ${(err as Error).name}`, { cause: err });
    }
    const who = authenticate(token, index);
    if (!who) return NOBODY;
    return {
      isAuthorized: true,
      context: { principal: who.kind, node: 'node' in who ? who.node : '', agent: who.kind === 'agent' ? (who.agent ?? '') : '' },
    };
  };
}
