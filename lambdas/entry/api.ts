// Lambda entry: the HTTP API behind API Gateway (HTTP API, payload v2).
import { handle } from 'hono/aws-lambda';
import { loadMapping } from '../core/redfish/mapping.ts';
import { createApiApp } from '../handlers/api.ts';
import { deadLetters, deps } from './runtime.ts';

// API Gateway HTTP APIs cut integrations at 30 s: long polls end a little before that.
const app = createApiApp({ ...deps, dlq: deadLetters, mapping: loadMapping(process.env.REDFISH_MAPPING_FILE ?? null), maxWaitSeconds: Number(process.env.LONG_POLL_MAX_SECONDS ?? 25) });

export const handler = handle(app);
