// Stage configuration of the AWS deployment: parsed once from CDK context (or props), with defaults.
import { RemovalPolicy } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { z } from 'zod';

/** The values CloudWatch Logs accepts as a retention period (RetentionDays minus INFINITE). */
const RETENTION_DAYS = new Set(
  Object.values(RetentionDays).filter((v): v is number => typeof v === 'number' && v !== RetentionDays.INFINITE),
);

/** Context values given with `-c key=value` arrive as strings; objects may arrive as JSON text. */
const jsonObject = (value: unknown) => (typeof value === 'string' && value.trim().startsWith('{') ? JSON.parse(value) : value);

const concurrency = z.coerce.number().int().min(1).max(1000);

export const FUNCTION_NAMES = [
  'api',
  'authorizer',
  'ingest',
  'workflow-await',
  'workflow-step',
  'report',
  'watchdog',
  'reconciler',
  'iot-authorizer',
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/**
 * Default reservations (223 in all; AWS keeps 100 of an account's limit unreserved, so the
 * account needs a limit of 323 or more: the default is 1,000). The API's share bounds how many
 * agents may long-poll at once; with the push channel (IoT) agents long-poll only as a fallback.
 */
export const RESERVED_CONCURRENCY: Readonly<Partial<Record<FunctionName, number>>> = Object.freeze({
  api: 100,
  authorizer: 50,
  'workflow-await': 20,
  'workflow-step': 20,
  report: 1,
  watchdog: 1,
  // One periodic sweep at a time: two would only race each other ending the same reboots.
  reconciler: 1,
  // Agents connect to IoT Core once, and again after each disconnect (at most daily).
  'iot-authorizer': 20,
});

export const StageConfigSchema = z
  .object({
    /** Prefix of the stack and of every named resource (state machines, alarms, dashboard). */
    stage: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,19}$/, 'lower-case letters, digits and dashes, starting with a letter, at most 20')
      .default('dev'),
    /** Retention of every log group (Lambda, state machines, API access logs). */
    logRetentionDays: z.coerce
      .number()
      .int()
      .refine((d) => RETENTION_DAYS.has(d), { message: `one of ${[...RETENTION_DAYS].join(', ')}` })
      .default(30),
    /** Optional e-mail subscription of the alarm topic. */
    alarmEmail: z.email().optional(),
    /** Upper bound of concurrent ingest invocations on the SQS event source (AWS allows 2..1000). */
    ingestMaxConcurrency: z.coerce.number().int().min(2).max(1000).default(10),
    /**
     * Steady-state requests per second and burst of the HTTP API's default stage. The fleet's agents
     * alone fetch every 3 minutes (30,000 agents: ~170/s), besides wake-up fetches, results and
     * events; at the former 50/s most periodic fetches were answered 429.
     */
    apiThrottleRate: z.coerce.number().positive().default(500),
    apiThrottleBurst: z.coerce.number().int().positive().default(1000),
    /** What happens to the tables, buckets, key and log groups when the stack is deleted. */
    removalPolicy: z.enum(['retain', 'destroy']).default('retain'),
    /** EventBridge Scheduler expression of the daily compliance report. */
    reportSchedule: z
      .string()
      .regex(/^(cron|rate)\(.+\)$/, 'an EventBridge Scheduler expression: cron(...) or rate(...)')
      .default('cron(0 6 * * ? *)'),
    /** IANA time zone the report cron is read in. */
    reportTimeZone: z.string().min(1).default('UTC'),
    /** Powertools log level of every function. */
    logLevel: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
    /**
     * Reserved concurrency per function (merged over RESERVED_CONCURRENCY; `"none"` reserves
     * nothing, for accounts whose limit is still 10). Reserving caps each function and keeps the
     * rest for the others: agents' long polls on the API cannot take the workflow Lambdas' share.
     */
    reservedConcurrency: z
      .preprocess(jsonObject, z.union([z.literal('none'), z.partialRecord(z.enum(FUNCTION_NAMES), concurrency)]))
      .optional(),
    /**
     * An operator's Redfish mapping file (path at synth time): validated, shipped in the api
     * function's bundle and named by its REDFISH_MAPPING_FILE, like the local stack's env var.
     */
    redfishMappingFile: z.string().min(1).optional(),
    /**
     * The account's IoT Core data endpoint (`aws iot describe-endpoint --endpoint-type iot:Data-ATS`):
     * the functions that write commands publish agents' wake-ups there. Unset: no wake-ups are
     * published, and agents on the push channel fetch at their periodic fetch (3 minutes).
     */
    iotDataEndpoint: z
      .string()
      .regex(/^[a-z0-9-]+(-ats)?\.iot\.[a-z0-9-]+\.amazonaws\.com$/, 'the iot:Data-ATS endpoint address')
      .optional(),
    /** Days an ended reboot stays in the table (TTL); the daily reports in S3 keep it after that. */
    rebootRetentionDays: z.coerce.number().int().min(1).max(3650).default(90),
  })
  .strict()
  .transform(({ reservedConcurrency, ...c }) => ({
    ...c,
    reservedConcurrency: (reservedConcurrency === 'none'
      ? {}
      : // The event source runs up to ingestMaxConcurrency batches: reserve at least that for ingest.
        { ...RESERVED_CONCURRENCY, ingest: c.ingestMaxConcurrency, ...reservedConcurrency }) as Partial<Record<FunctionName, number>>,
  }))
  .refine((c) => c.apiThrottleBurst >= c.apiThrottleRate, {
    message: 'apiThrottleBurst must be at least apiThrottleRate',
    path: ['apiThrottleBurst'],
  })
  .refine((c) => c.reservedConcurrency.ingest === undefined || c.reservedConcurrency.ingest >= c.ingestMaxConcurrency, {
    // Fewer reserved than the event source may run throttles pollers and sends healthy messages to the DLQ.
    message: 'reservedConcurrency.ingest must be at least ingestMaxConcurrency',
    path: ['reservedConcurrency', 'ingest'],
  });

export type StageConfigInput = z.input<typeof StageConfigSchema>;
export type StageConfig = z.output<typeof StageConfigSchema>;

export const CONFIG_KEYS = Object.keys(StageConfigSchema.in.shape) as (keyof StageConfigInput)[];

/** Parses stage config; the error names every bad key. */
export function parseStageConfig(input: unknown): StageConfig {
  const result = StageConfigSchema.safeParse(input);
  if (!result.success) {
    throw new Error(`Invalid stage config:\n${z.prettifyError(result.error)}`);
  }
  return Object.freeze(result.data);
}

export function removalPolicyOf(config: StageConfig): RemovalPolicy {
  return config.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
}

export function retentionOf(config: StageConfig): RetentionDays {
  return config.logRetentionDays as RetentionDays;
}
