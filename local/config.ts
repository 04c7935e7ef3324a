// The local stack's configuration, from the environment, parsed once and frozen.
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { z } from 'zod';

export const EXAMPLE_NODES_FILE = fileURLToPath(new URL('../config/nodes.example.yaml', import.meta.url));

const ConfigSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** The embedded DynamoDB, SQS and Step Functions endpoints (on 127.0.0.1), for the AWS CLI; 0: any free port. */
  DYNAMODB_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  SQS_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  SFN_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  /** The agents' push channel (MQTT, local/mqtt-broker.ts): 0 picks a free port (printed at start); -1 runs none. */
  MQTT_PORT: z.coerce.number().int().min(-1).max(65535).default(0),
  DATA_DIR: z
    .string()
    .min(1)
    .default('./.data')
    .transform((p) => resolve(p)),
  NODES_FILE: z
    .string()
    .min(1)
    .default(EXAMPLE_NODES_FILE)
    .transform((p) => resolve(p)),
  // Any length starts (a short one is warned of at start: local/stack.ts).
  OPERATOR_TOKEN: z.string().min(1).optional(),
  REDFISH_MAPPING_FILE: z.string().min(1).optional(),
  /**
   * Ingest consumers. One is enough to keep up, and leaves the CPU to the API during a burst:
   * the queue, not the API, should absorb a burst, so BMCs are answered fast.
   */
  INGEST_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(1),
  /** How long a failed event waits before it is retried (SQS visibility timeout). */
  INGEST_VISIBILITY_SECONDS: z.coerce.number().int().min(1).max(43200).default(30),
  /** Write the compliance report under DATA_DIR/reports every this many seconds (0: never). */
  REPORT_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(0),
  /** Reconcile reboots with their workflow executions at start and then every this many seconds (0: only at start). */
  RECONCILE_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(60),
  /** Tests only: the ingest consumer holds each batch this long before handling it (to kill -9 it there). */
  INGEST_TEST_HOLD_MS: z.coerce.number().int().min(0).default(0),
  /** Tests only: the stack kills itself (SIGKILL) when the ingest consumer handles the event with this id. */
  INGEST_TEST_CRASH_EVENT: z.string().min(1).optional(),
  /** Tests only: a request may ask the stack to kill itself after its N-th write (local/crash-points.ts). */
  STACK_TEST_CRASH_POINTS: z.enum(['0', '1']).default('0'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
});

export type LocalConfig = Readonly<z.infer<typeof ConfigSchema>>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function parseConfig(env: Record<string, string | undefined>): LocalConfig {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const res = ConfigSchema.safeParse(cleaned);
  if (!res.success) {
    const issue = res.error.issues[0];
    throw new ConfigError(`${issue.path.join('.')}: ${issue.message}`);
  }
  return Object.freeze(res.data);
}
