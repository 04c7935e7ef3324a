// The cost model: AWS list prices (us-east-1) and what one reboot, and one idle agent, costs at them.
import { round } from './lib.ts';

/**
 * us-east-1 list prices as given in issue 10's brief, written down on 2026-11-25 (not re-read from the AWS pages
 * by the bench). DynamoDB on-demand was listed at half these rates after the November 2024 price cut
 * ($0.625 per million WRU, $0.125 per million RRU): with the figures below DynamoDB is an upper bound.
 */
export const PRICES = {
  asOf: '2026-11-25',
  region: 'us-east-1',
  source: 'AWS list prices as given in issue 10 (Step Functions, Lambda, SQS, DynamoDB on-demand, API Gateway HTTP API)',
  stepFunctionsStandardPerTransition: 0.025 / 1_000,
  lambdaPerRequest: 0.2 / 1_000_000,
  /** arm64 (the CDK functions are ARM_64), first pricing tier. */
  lambdaPerGbSecondArm: 0.0000133334,
  sqsPerRequest: 0.4 / 1_000_000,
  dynamoPerWru: 1.25 / 1_000_000,
  dynamoPerRru: 0.25 / 1_000_000,
  apiGatewayHttpPerRequest: 1.0 / 1_000_000,
  /** Memory of the functions in cdk/stacks/coordinator-stack.ts. */
  memoryGb: { api: 0.5, authorizer: 0.25, ingest: 0.5, workflowTasks: 0.25 },
  /** The authorizer runs inline locally: its billed time per request is assumed, not measured. */
  authorizerSecondsAssumed: 0.005,
  /** AWS IoT Core (us-east-1 list, first tiers): connectivity per connection-minute, messages per message. */
  iotPerConnectionMinute: 0.08 / 1_000_000,
  iotPerMessage: 1.0 / 1_000_000,
  /** An agent's periodic fetch (`GET …/commands?wait=0`, no command): billed time of the API Lambda, assumed. */
  shortFetchSecondsAssumed: 0.03,
  /** CloudWatch: per standard alarm-month, per dashboard-month; KMS: per customer managed key-month. */
  cloudWatchAlarmMonth: 0.1,
  cloudWatchDashboardMonth: 3,
  kmsKeyMonth: 1,
} as const;

const MONTH_MINUTES = 30 * 24 * 60;

/**
 * What one idle agent costs per month on the push channel (agent/transport-mqtt.ts): an IoT Core
 * connection held all month, a reconnect a day (the authorizer's disconnectAfterInSeconds: one
 * authorizer Lambda, CONNECT + SUBSCRIBE counted as messages, an upper bound), no wake-ups (idle),
 * and a fetch every `fetchEverySeconds` (API Gateway + authorizer + a short API Lambda + reads:
 * token and node item for each of the two functions, the open-commands Query; caches ignored, so an
 * upper bound). MQTT keep-alive pings are not metered by IoT Core.
 */
export function costUsdPerAgentMonthIdle(opts: { fetchEverySeconds?: number; reconnectsPerMonth?: number } = {}) {
  const P = PRICES;
  const fetchEverySeconds = opts.fetchEverySeconds ?? 180;
  const reconnects = opts.reconnectsPerMonth ?? 30;
  const fetches = (MONTH_MINUTES * 60) / fetchEverySeconds;
  const usd = {
    iotConnectivity: MONTH_MINUTES * P.iotPerConnectionMinute,
    iotMessages: reconnects * 2 * P.iotPerMessage,
    apiGateway: fetches * P.apiGatewayHttpPerRequest,
    lambdaRequests: (fetches * 2 + reconnects) * P.lambdaPerRequest,
    lambdaDuration:
      (fetches * (P.shortFetchSecondsAssumed * P.memoryGb.api + P.authorizerSecondsAssumed * P.memoryGb.authorizer) +
        reconnects * P.authorizerSecondsAssumed * P.memoryGb.authorizer) *
      P.lambdaPerGbSecondArm,
    dynamoDb: (fetches * (4 * 0.5 + 0.5) + reconnects * 2 * 0.5) * P.dynamoPerRru,
  };
  return {
    fetchEverySeconds,
    fetchesPerMonth: Math.round(fetches),
    usdByService: Object.fromEntries(Object.entries(usd).map(([k, v]) => [k, round(v, 6)])),
    usd: round(
      Object.values(usd).reduce((a, b) => a + b, 0),
      4,
    ),
    target: 0.05,
  };
}

/** Fixed monthly cost of one deployment: its alarms, dashboard and KMS key (idle Lambdas, queues and tables cost nothing). */
export function deploymentMonthlyUsd(alarms: number) {
  return round(alarms * PRICES.cloudWatchAlarmMonth + PRICES.cloudWatchDashboardMonth + PRICES.kmsKeyMonth, 2);
}

/**
 * Monthly cost of a fleet: every host runs a host agent and one agent per xPU, each idle on the
 * push channel; each xPU reboots `rebootsPerXpuPerMonth` times, at `costUsdPerReboot` (the bench's
 * figure, from real executions); plus the deployment's fixed cost.
 */
export function fleetMonthlyUsd(opts: {
  hosts: number;
  xpusPerHost: number;
  rebootsPerXpuPerMonth: number;
  costUsdPerReboot: number;
  alarms: number;
  fetchEverySeconds?: number;
}) {
  const agents = opts.hosts * (1 + opts.xpusPerHost);
  const idle = agents * costUsdPerAgentMonthIdle({ fetchEverySeconds: opts.fetchEverySeconds }).usd;
  const reboots = opts.hosts * opts.xpusPerHost * opts.rebootsPerXpuPerMonth;
  const rebootUsd = reboots * opts.costUsdPerReboot;
  const fixed = deploymentMonthlyUsd(opts.alarms);
  return {
    agents,
    reboots,
    idleUsd: round(idle, 2),
    rebootUsd: round(rebootUsd, 2),
    fixedUsd: fixed,
    usd: round(idle + rebootUsd + fixed, 2),
  };
}

export interface RebootCounts {
  reboots: number;
  stateTransitions: number;
  taskLambdaInvocations: number;
  taskLambdaSeconds: number;
  apiRequests: number;
  apiRequestsByRoute: Record<string, number>;
  apiLambdaSeconds: number;
  ingestBatches: number;
  ingestLambdaSeconds: number;
  sqsRequests: number;
  dynamoRru: number;
  dynamoWru: number;
  dynamoOps: number;
  /** The DynamoDB figures above by `<command> <item kind>` (kind: pk prefix; R reboot, A command, N node...; `+gsi`: index copies). */
  dynamoBy?: Record<string, { ops: number; rru: number; wru: number }>;
  stepFunctionsApiCalls: Record<string, number>;
}

/** Prices one reboot's counts. Every API request is an API Gateway request, an API Lambda and an authorizer Lambda. */
export function priceReboot(c: RebootCounts) {
  const P = PRICES;
  const lambdaInvocations = c.taskLambdaInvocations + c.ingestBatches + 2 * c.apiRequests;
  const gbSeconds =
    c.taskLambdaSeconds * P.memoryGb.workflowTasks +
    c.ingestLambdaSeconds * P.memoryGb.ingest +
    c.apiLambdaSeconds * P.memoryGb.api +
    c.apiRequests * P.authorizerSecondsAssumed * P.memoryGb.authorizer;
  const usd = {
    stepFunctions: c.stateTransitions * P.stepFunctionsStandardPerTransition,
    lambdaRequests: lambdaInvocations * P.lambdaPerRequest,
    lambdaDuration: gbSeconds * P.lambdaPerGbSecondArm,
    sqs: c.sqsRequests * P.sqsPerRequest,
    dynamoDb: c.dynamoWru * P.dynamoPerWru + c.dynamoRru * P.dynamoPerRru,
    apiGateway: c.apiRequests * P.apiGatewayHttpPerRequest,
  };
  const total = Object.values(usd).reduce((a, b) => a + b, 0);
  return {
    lambdaInvocations: round(lambdaInvocations, 2),
    lambdaGbSeconds: round(gbSeconds, 5),
    usdByService: Object.fromEntries(Object.entries(usd).map(([k, v]) => [k, round(v, 8)])),
    usd: round(total, 8),
  };
}

/**
 * What one idle agent costs per month in AWS, where its long poll is an API Gateway request held by the API Lambda
 * for the whole wait (billed duration), the authorizer runs per request, and PollingCommandSignal re-reads the
 * agent's open commands every second (two eventually consistent Queries of 0.5 RRU per round, as deliverable()
 * and heartbeatOpen() do), plus the authorizer's token read.
 */
export function idleAgentMonthlyUsd(waitSeconds: number) {
  const P = PRICES;
  const polls = (30 * 86_400) / waitSeconds;
  const perPoll = {
    apiGateway: P.apiGatewayHttpPerRequest,
    lambdaRequests: 2 * P.lambdaPerRequest,
    lambdaDuration: (waitSeconds * P.memoryGb.api + P.authorizerSecondsAssumed * P.memoryGb.authorizer) * P.lambdaPerGbSecondArm,
    dynamoDb: (waitSeconds * 2 * 0.5 + 0.5 + 0.5) * P.dynamoPerRru,
  };
  const usdByService = Object.fromEntries(Object.entries(perPoll).map(([k, v]) => [k, round(v * polls, 4)]));
  return {
    waitSeconds,
    pollsPerMonth: Math.round(polls),
    usdByService,
    usd: round(Object.values(perPoll).reduce((a, b) => a + b, 0) * polls, 2),
    note: 'not part of costUsdPerReboot: the standing cost of one agent (a node with one xPU runs two) long-polling the AWS deployment',
  };
}
