// What the functions read from their environment, in one schema: CDK sets these (each with the grant
// behind it, cdk/constructs/grant-env.ts) and lambdas/entry/runtime.ts parses them once, frozen.
// No SDK import: the CDK tests load it to check every function's environment against it.
import { z } from 'zod';
import { WorkflowArnEnv } from '../core/workflow-io.ts';

const seconds = z.coerce.number().int().positive();

export const LambdaEnv = z
  .object({
    TABLE_NAME: z.string().min(1),
    QUEUE_URL: z.string().optional(),
    /** The ingest queue's DLQ: the API's operator routes /v1/dlq list and redrive it. */
    DLQ_URL: z.string().optional(),
    REPORT_BUCKET: z.string().optional(),
    IDEMPOTENCY_TABLE_NAME: z.string().optional(),
    /** Ingest: how long an event's idempotency record lives (past the queue's and the DLQ's retention). */
    IDEMPOTENCY_TTL_SECONDS: seconds.default(19 * 24 * 3600),
    /** How long a Lambda container keeps the inventory before reading it again. */
    INVENTORY_TTL_SECONDS: z.coerce.number().int().min(0).default(60),
    /** Days an ended reboot stays in the table (TTL); the daily reports in S3 keep the record. */
    REBOOT_RETENTION_DAYS: z.coerce.number().int().min(1).optional(),
    /** AWS IoT Core's data endpoint: wake-ups for agents on the push channel are published there. */
    IOT_DATA_ENDPOINT: z.string().min(1).optional(),
    /** API: the longest agent long poll; API Gateway ends every integration at 30 s. */
    LONG_POLL_MAX_SECONDS: z.coerce.number().int().min(0).max(29).default(25),
    /** API: the operator's Redfish mapping file in the bundle (cdk `redfishMappingFile`). */
    REDFISH_MAPPING_FILE: z.string().min(1).optional(),
    /** Report: the window of the scheduled report. */
    REPORT_WINDOW_SECONDS: seconds.default(86400),
    /** Watchdog: a BMC silent this long is counted as quiet. */
    QUIET_BMC_SECONDS: seconds.default(3600),
  })
  .extend(WorkflowArnEnv.shape);

export type LambdaEnv = z.infer<typeof LambdaEnv>;

/** Set by the Lambda runtime or CDK's function defaults, not by the coordinator's config. */
export const PLATFORM_ENV = /^(AWS_|POWERTOOLS_|NODE_OPTIONS$|LAMBDA_)/;
