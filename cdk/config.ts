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

export const FUNCTION_NAMES = ['api', 'authorizer', 'ingest', 'workflow-await', 'workflow-step', 'report', 'watchdog', 'reconciler'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

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
    /** Steady-state requests per second and burst of the HTTP API's default stage. */
    apiThrottleRate: z.coerce.number().positive().default(50),
    apiThrottleBurst: z.coerce.number().int().positive().default(100),
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
     * Reserved concurrency per function, off by default: a new account's limit of 10 cannot
     * reserve anything, and the ingest function is already bounded by ingestMaxConcurrency.
     */
    reservedConcurrency: z.preprocess(jsonObject, z.partialRecord(z.enum(FUNCTION_NAMES), concurrency)).default({}),
  })
  .strict()
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

export const CONFIG_KEYS = Object.keys(StageConfigSchema.shape) as (keyof StageConfigInput)[];

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
