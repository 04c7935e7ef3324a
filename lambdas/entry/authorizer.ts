// Lambda entry: the HTTP API's REQUEST authorizer (simple responses) over the hashed tokens in the table.
import type { APIGatewayRequestAuthorizerEventV2 } from 'aws-lambda';
import { authenticate } from '../handlers/api.ts';
import { deps, powertoolsLogger } from './runtime.ts';

function tokenOf(event: APIGatewayRequestAuthorizerEventV2): string | undefined {
  const header = event.headers?.authorization ?? event.headers?.Authorization;
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (m) return m[1];
  // BMCs that send no custom headers carry the token in the URL (RFC 6750 §2.3).
  return event.queryStringParameters?.access_token;
}

export const handler = async (event: APIGatewayRequestAuthorizerEventV2) => {
  try {
    const who = authenticate(tokenOf(event), await deps.inventory());
    if (!who) return { isAuthorized: false };
    return { isAuthorized: true, context: { principal: who.kind, node: 'node' in who ? who.node : '' } };
  } catch (err) {
    powertoolsLogger.error('authorizer failed', { error: String(err) });
    return { isAuthorized: false };
  }
};
