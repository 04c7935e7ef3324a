// Lambda entry: the HTTP API's REQUEST authorizer over the token-hash items of the table (handlers/authorizer.ts).
import type { APIGatewayRequestAuthorizerEventV2 } from 'aws-lambda';
import { createAuthorizer } from '../handlers/authorizer.ts';
import { deps } from './runtime.ts';

const authorize = createAuthorizer(deps);

export const handler = (event: APIGatewayRequestAuthorizerEventV2) => authorize(event);
