// Lambda entry: the HTTP API's REQUEST authorizer (simple responses) over the hashed tokens in the table.
import type { APIGatewayRequestAuthorizerEventV2 } from 'aws-lambda';
import { authenticate, bearerToken } from '../handlers/auth.ts';
import { deps, powertoolsLogger } from './runtime.ts';

function tokenOf(event: APIGatewayRequestAuthorizerEventV2): string | undefined {
  return bearerToken(event.headers?.authorization ?? event.headers?.Authorization, event.queryStringParameters?.access_token);
}

export const handler = async (event: APIGatewayRequestAuthorizerEventV2) => {
  try {
    const who = authenticate(tokenOf(event), await deps.inventory());
    if (!who) return { isAuthorized: false };
    return { isAuthorized: true, context: { principal: who.kind, node: 'node' in who ? who.node : '', agent: who.kind === 'agent' ? (who.agent ?? '') : '' } };
  } catch (err) {
    powertoolsLogger.error('authorizer failed', { error: String(err) });
    return { isAuthorized: false };
  }
};
