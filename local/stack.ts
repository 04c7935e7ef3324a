// The embedded local stack: dynalite, fauxqs, the Step Functions server and the HTTP API, wired like AWS.
import { existsSync, mkdirSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, type ServerType } from '@hono/node-server';
import { ListStateMachinesCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { hashToken, InventoryIndex, loadInventoryFile, WEAK_TOKEN_CHARS, weakTokens } from '../lambdas/core/inventory.ts';
import { loadMapping } from '../lambdas/core/redfish/mapping.ts';
import { DynamoRebootStore } from '../lambdas/adapters/dynamo-store.ts';
import { SqsEventQueue } from '../lambdas/adapters/sqs-queue.ts';
import { DynamoIngestFailureLog, SqsDeadLetterQueue } from '../lambdas/adapters/sqs-dlq.ts';
import { withFailureLog } from '../lambdas/handlers/ingest-batch.ts';
import { SfnWorkflows } from '../lambdas/adapters/sfn-workflows.ts';
import { createApiApp } from '../lambdas/handlers/api.ts';
import { healthCheck } from '../lambdas/handlers/health.ts';
import { createReconciler, type ReconcileResult } from '../lambdas/handlers/reconciler.ts';
import { createIngestHandler } from '../lambdas/handlers/ingest.ts';
import { createAwaitHandler, createStepHandler } from '../lambdas/handlers/workflow.ts';
import { DynamoDownMarks } from '../lambdas/adapters/dynamo-down-marks.ts';
import { DynamoRolloutStore } from '../lambdas/adapters/dynamo-rollouts.ts';
import { createRolloutTasks, withRolloutTasks } from '../lambdas/handlers/rollout.ts';
import type { Deps, Logger } from '../lambdas/handlers/deps.ts';
import { systemClock, type Clock, type Metrics, type WorkflowKind } from '../lambdas/ports/index.ts';
import { LocalStepFunctions } from './sfn/engine.ts';
import { inProcessSfnHandler, startSfnServer } from './sfn/server.ts';
import { substitute } from './sfn/substitute.ts';
import { HoldingClock, systemClock as sfnSystemClock, type Clock as SfnClock } from './sfn/clock.ts';
import { startLocalDynamo, type LocalDynamo } from './dynamo.ts';
import { crashOn, noteReleased, startLocalSqs, type LocalSqs } from './sqs.ts';
import { startIngestPoller, type IngestPoller } from './ingest-poller.ts';
import { InProcessCommandSignal } from './command-signal.ts';
import { startMqttBroker, withWakeups, type MqttBroker } from './mqtt-broker.ts';
import { acquireDataDirLock } from './lock.ts';
import { CACHE_MIDDLEWARE, leanLocalClient, localClientConfig } from './sdk-clients.ts';
import type { Prestarted } from './prestart.ts';
import { startReportSchedule } from './report-schedule.ts';
import { CrashPoints } from './crash-points.ts';
import type { LocalConfig } from './config.ts';

export const WORKFLOWS_DIR = fileURLToPath(new URL('../workflows/', import.meta.url));
const REGION = 'us-east-1';
const ACCOUNT = '000000000000';

/** The same placeholders CDK fills with DefinitionSubstitutions, here with local function names. */
export const LOCAL_FUNCTIONS = {
  AwaitFunctionArn: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:workflow-await`,
  StepFunctionArn: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:workflow-step`,
} as const;

export interface Stack {
  url: string;
  port: number;
  /** The Step Functions API endpoint (for the AWS SDK's SFNClient). */
  sfnUrl: string;
  workflowArns: Record<WorkflowKind, string>;
  operatorToken: string;
  deps: Deps;
  engine: LocalStepFunctions;
  sqs: LocalSqs;
  dynamo: LocalDynamo;
  counters: Map<string, number>;
  /** The agents' MQTT push channel (absent with MQTT_PORT=-1). */
  mqtt?: MqttBroker;
  /** Milliseconds since the process started at which each start-up phase ended (docs/reliability.md). */
  startup: Record<string, number>;
  /** One reconciler pass now (it also runs at start and every RECONCILE_INTERVAL_SECONDS). */
  reconcile(): Promise<ReconcileResult>;
  close(): Promise<void>;
}

export interface StackOptions {
  config: LocalConfig;
  logger: Logger;
  /** Test time for the workflow engine's timers (deadlines, waits); defaults to real time. */
  sfnClock?: SfnClock;
  clock?: Clock;
  /** A dependency died for good; `npm start` exits non-zero. Without it, the error is logged. */
  onFatal?: (err: Error) => void;
  /** The lock and the emulator processes, when the caller started them early (local/prestart.ts). */
  prestarted?: Prestarted;
}

function operatorToken(config: LocalConfig, logger: Logger): string {
  if (config.OPERATOR_TOKEN) return config.OPERATOR_TOKEN;
  // No token configured: make one and keep it with the data, so it survives restarts.
  const file = join(config.DATA_DIR, 'operator-token');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  logger.info('generated an operator token (OPERATOR_TOKEN was not set)', { file });
  return token;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const { config, logger } = opts;
  const startup: Record<string, number> = {};
  const mark = (phase: string) => {
    startup[phase] = Math.round(performance.now());
  };
  mark('imports');
  // `npm start` took the lock and spawned the emulators before loading this module (local/prestart.ts).
  const pre = opts.prestarted;
  mkdirSync(config.DATA_DIR, { recursive: true });
  const releaseLock = pre?.releaseLock ?? acquireDataDirLock(config.DATA_DIR);
  mark('lock');
  const clock = opts.clock ?? systemClock;
  const index = new InventoryIndex(loadInventoryFile(config.NODES_FILE));
  const mapping = loadMapping(config.REDFISH_MAPPING_FILE ?? null);
  const token = operatorToken(config, logger);
  const weak = [...weakTokens(index.inventory), ...(token.length < WEAK_TOKEN_CHARS ? ['OPERATOR_TOKEN'] : [])];
  if (weak.length)
    logger.warn(`tokens shorter than ${WEAK_TOKEN_CHARS} characters are easy to guess; use long random ones`, { tokens: weak });

  const counters = new Map<string, number>();
  const metrics: Metrics = {
    count(name, value = 1) {
      counters.set(name, (counters.get(name) ?? 0) + value);
    },
  };
  // A child that dies is started again on its port (its data is on disk); one that cannot be kept alive
  // makes the stack unusable, and a supervisor of the stack should restart it (npm start exits non-zero).
  const supervise = {
    onExit: (i: { name: string; code: number | null; signal: string | null; restarted: boolean; error?: string }) => {
      metrics.count('ServiceRestarted');
      logger.warn(i.restarted ? `${i.name} died and was started again` : `${i.name} died`, {
        code: i.code,
        signal: i.signal,
        error: i.error,
      });
    },
    onGiveUp: (err: Error) => (opts.onFatal ? opts.onFatal(err) : logger.error(err.message)),
  };
  if (pre) Object.assign(pre.supervise, supervise);
  // The emulators boot in their own processes while this one compiles the workflows and opens the journals.
  const children = Promise.all([
    startLocalDynamo({ dataDir: join(config.DATA_DIR, 'dynamodb'), supervise, port: config.DYNAMODB_PORT, service: pre?.dynamo }).finally(
      () => mark('dynalite+table'),
    ),
    startLocalSqs({
      dataDir: join(config.DATA_DIR, 'sqs'),
      visibilityTimeoutSeconds: config.INGEST_VISIBILITY_SECONDS,
      supervise,
      port: config.SQS_PORT,
      service: pre?.sqs,
    }).finally(() => mark('fauxqs+queues')),
  ]);
  children.catch(() => undefined); // awaited below; a failure meanwhile is not an unhandled rejection
  // The push channel needs neither store nor queue: it starts while the emulators boot.
  const mqttStarting =
    config.MQTT_PORT >= 0
      ? startMqttBroker({
          host: config.HOST,
          port: config.MQTT_PORT,
          inventory: async () => index,
          operatorTokenHash: hashToken(token),
          logger,
        })
      : undefined;
  mqttStarting?.catch(() => undefined);

  // Work still running at shutdown (requests, Lambda invocations) must finish before the stores close.
  const inflight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inflight.add(p);
    p.then(
      () => inflight.delete(p),
      () => inflight.delete(p),
    );
    return p;
  };
  const drain = async (ms: number) => {
    const until = Date.now() + ms;
    while (inflight.size > 0 && Date.now() < until)
      await Promise.race([Promise.allSettled([...inflight]), new Promise((r) => setTimeout(r, 50))]);
  };

  // Task states invoke these as AWS invokes the Lambdas: by function name, with a JSON payload.
  const lambdas = new Map<string, (payload: unknown) => Promise<unknown>>();
  // Timers (deadlines, heartbeat timeouts) that ran out while the stack was down wait until the events queued
  // meanwhile have been processed once: a host's answer accepted before its deadline must not lose to it.
  const sfnClock = new HoldingClock(opts.sfnClock ?? sfnSystemClock);
  const engine = new LocalStepFunctions({
    dataDir: join(config.DATA_DIR, 'stepfunctions'),
    clock: sfnClock,
    invokeLambda: async (name, payload) => {
      const fn = lambdas.get(name);
      if (!fn) throw Object.assign(new Error(`no local function ${name}`), { name: 'Lambda.ResourceNotFoundException' });
      return JSON.parse(JSON.stringify((await track(fn(JSON.parse(JSON.stringify(payload ?? null))))) ?? null));
    },
  });
  mark('engine-journals');
  const sfnServer = await startSfnServer(engine, { host: '127.0.0.1', port: config.SFN_PORT });
  // The stack's own calls to the engine (StartExecution, SendTask*) stay in the process: sfn/server.ts says why.
  const sfnClient = leanLocalClient(
    new SFNClient({ ...localClientConfig(sfnServer.url), ...CACHE_MIDDLEWARE, requestHandler: inProcessSfnHandler(engine) }),
  );
  const arns = {} as Record<WorkflowKind, string>;
  for (const file of readdirSync(WORKFLOWS_DIR)
    .filter((f) => f.endsWith('.asl.json'))
    .sort()) {
    const name = file.replace(/\.asl\.json$/, '') as WorkflowKind;
    const definition = substitute(readFileSync(join(WORKFLOWS_DIR, file), 'utf8'), LOCAL_FUNCTIONS);
    const res = await engine.createStateMachine({ name, definition });
    arns[name] = res.stateMachineArn;
  }
  const crashPoints = config.STACK_TEST_CRASH_POINTS === '1' ? new CrashPoints() : undefined;
  crashPoints?.watch(sfnClient, 'sfn');
  const workflows = new SfnWorkflows(sfnClient, arns);
  mark('state-machines');

  const [dynamo, sqs] = await children.catch(async (err) => {
    await (await mqttStarting?.catch(() => undefined))?.close();
    throw err;
  });
  const mqtt = await mqttStarting;
  crashPoints?.watch(dynamo.client, 'dynamodb');
  crashPoints?.watch(sqs.client, 'sqs');
  const rollouts = new DynamoRolloutStore(dynamo.client, dynamo.table);
  const signal = new InProcessCommandSignal();
  const store = new DynamoRebootStore(dynamo.client, dynamo.table);
  const queue = new SqsEventQueue(sqs.client, sqs.ingestQueueUrl);
  const ingestFailures = new DynamoIngestFailureLog(dynamo.client, dynamo.table);
  const dlq = new SqsDeadLetterQueue(sqs.client, { dlqUrl: sqs.dlqUrl, queueUrl: sqs.ingestQueueUrl, failures: ingestFailures });
  if (mqtt) logger.info(`mqtt push channel at ${mqtt.url}`, { mqttUrl: mqtt.url });
  mark('children+mqtt');
  // Agents on the push channel are woken over MQTT; the others keep long-polling (the same signal).
  const deps: Deps = {
    store,
    workflows,
    queue,
    clock,
    inventory: async () => index,
    signal: mqtt ? withWakeups(signal, mqtt) : signal,
    metrics,
    logger,
    rollouts,
    downMarks: new DynamoDownMarks(dynamo.client, dynamo.table),
  };
  // Rollout Tasks (workflows/rollout.asl.json) share the two workflow functions, told apart by their action.
  const rolloutTasks = createRolloutTasks({ ...deps, rollouts });
  lambdas.set(LOCAL_FUNCTIONS.AwaitFunctionArn, withRolloutTasks(createAwaitHandler(deps), rolloutTasks));
  lambdas.set(LOCAL_FUNCTIONS.StepFunctionArn, withRolloutTasks(createStepHandler(deps), rolloutTasks));

  // Executions that were running when the process died go on from where they were.
  await engine.recover();
  mark('resume');

  // Messages the dead process had in flight: say why, in case they end in the DLQ (GET /v1/dlq shows it).
  await noteReleased(sqs.released, ingestFailures, logger, metrics);
  const ingest = crashOn(config.INGEST_TEST_CRASH_EVENT, createIngestHandler(deps));
  const poller: IngestPoller = startIngestPoller({
    sqs: sqs.client,
    queueUrl: sqs.ingestQueueUrl,
    handle: withFailureLog(ingest, ingestFailures),
    concurrency: config.INGEST_CONCURRENCY,
    holdMs: config.INGEST_TEST_HOLD_MS,
    onDrained: () => sfnClock.open(),
    suspects: sqs.released.suspects,
    logger,
  });
  // A queue that cannot be drained (store down) must not stop time for ever.
  const openAnyway = setTimeout(() => {
    if (sfnClock.holding) logger.warn('ingest backlog not drained within 30 s of start; workflow timers run anyway');
    sfnClock.open();
  }, 30_000);
  openAnyway.unref();
  // Usually the queue is empty at start: let that be seen before serving, so time runs from the first request.
  for (let i = 0; i < 25 && sfnClock.holding; i++) await new Promise((r) => setTimeout(r, 20));
  mark('backlog-seen');

  // Reboots whose execution ended, failed or is gone are ended and their claims released: at start, then periodically.
  const reconciler = createReconciler(deps);
  let reconciling: Promise<ReconcileResult> | undefined;
  const reconcile = () =>
    (reconciling ??= track(reconciler()).finally(() => {
      reconciling = undefined;
    }));
  const reconcileQuietly = () =>
    void reconcile().catch((err: Error) => logger.warn('reconciler pass failed; the next one retries', { error: String(err) }));
  reconcileQuietly();
  const reconcileTimer =
    config.RECONCILE_INTERVAL_SECONDS > 0 ? setInterval(reconcileQuietly, config.RECONCILE_INTERVAL_SECONDS * 1000) : undefined;
  reconcileTimer?.unref();

  const reports =
    config.REPORT_INTERVAL_SECONDS > 0
      ? startReportSchedule(deps, join(config.DATA_DIR, 'reports'), config.REPORT_INTERVAL_SECONDS, logger, {
          ready: () => !sfnClock.holding,
        })
      : undefined;

  const shutdown = new AbortController();
  const health = healthCheck({
    store: (abortSignal) => dynamo.client.send(new DescribeTableCommand({ TableName: dynamo.table }), { abortSignal }),
    queue: (abortSignal) =>
      sqs.client.send(new GetQueueAttributesCommand({ QueueUrl: sqs.ingestQueueUrl, AttributeNames: ['QueueArn'] }), { abortSignal }),
    workflows: (abortSignal) => sfnClient.send(new ListStateMachinesCommand({ maxResults: 1 }), { abortSignal }),
  });
  // A command handed to a poll just before a kill -9 may never have reached its agent: out again at once.
  const servingSince = deps.clock.now();
  const app = createApiApp({ ...deps, operatorTokenHash: hashToken(token), mapping, dlq, shutdown: shutdown.signal, health, servingSince });
  const server: ServerType = await new Promise((resolve) => {
    const handle = (req: Request, env: unknown) => Promise.resolve(app.fetch(req, env));
    const fetch = crashPoints ? (req: Request, env: unknown) => crashPoints.run(req, () => handle(req, env)) : handle;
    const s = serve(
      {
        fetch: (req, env) => track(fetch(req, env)),
        hostname: config.HOST,
        port: config.PORT,
        // Idle keep-alive connections stay open a minute, not Node's 5 s: a client (a BMC, an agent, the
        // CLI) that reuses one just as the server closes it gets ECONNRESET, and with a 5 s close that
        // moment comes after every short pause; clients drop theirs a little before the hinted timeout.
        serverOptions: { keepAliveTimeout: 65_000, headersTimeout: 66_000 },
      },
      () => resolve(s),
    );
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  const url = `http://${config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST}:${port}`;
  mark('http-listen');

  let closed = false;
  return {
    url,
    port,
    sfnUrl: sfnServer.url,
    workflowArns: arns,
    operatorToken: token,
    deps,
    engine,
    sqs,
    dynamo,
    counters,
    mqtt,
    startup,
    reconcile,
    async close() {
      if (closed) return;
      closed = true;
      // Stop taking requests first; long polls are woken so they answer (empty) at once.
      const stopped = new Promise<void>((r) => server.close(() => r()));
      shutdown.abort();
      signal.closeAll();
      (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      await drain(5_000);
      (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      await stopped;
      await mqtt?.close();
      reports?.stop();
      clearTimeout(openAnyway);
      clearInterval(reconcileTimer);
      await poller.stop();
      await engine.close();
      await drain(10_000);
      await sfnServer.close();
      sfnClient.destroy();
      await sqs.close();
      await dynamo.close();
      releaseLock();
    },
  };
}
