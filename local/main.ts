// `npm start`: the whole pipeline, embedded, on this machine.
//
// V8 flags (`npm start` passes them, package.json; the bench runs the stack with the same ones): the API, ingest and
// engine allocate short-lived garbage per request, and with V8's defaults the heap held ~3x its live size (1,000
// workflows driven to completion: heap 250 MB of which 100 MB live). --max-semi-space-size=8 caps the young
// generation at 2 x 8 MB (Node 24's default grows to 2 x 64 MB: no pointer compression); --heap-growing-percent=100
// lets the old generation grow to twice its live size before a full GC (default up to 4x). Together: the stack
// process 360 -> 125 MB PSS at the peak of 300 workflows (bench/README.md, "Round 2"), for more GC work. 100 rather
// than the 30 of round 2: a full GC's pause lands on whichever event is in flight, and at 30 % the stack ran one
// every ~1.4 s under the latency bench (18 in 25 s, 0.16-0.45 s of pauses); at 100 %, 6 (0.08 s), for +40 MiB at the
// peak of 1,000 workflows (314 -> 355 MiB PSS; bench/README.md "Round 2, fourth pass").
//
// Start-up order (docs/reliability.md, "Restart"): the compile cache first, so that this process and the emulator
// processes reuse the code compiled by the previous start (no TypeScript stripped again); then the DATA_DIR lock and
// the emulators (local/prestart.ts), whose boot overlaps the loading of the rest; only then the stack's modules.
import module from 'node:module';
import type { Stack } from './stack.ts';

if (!process.env.NODE_COMPILE_CACHE) {
  try {
    const res = module.enableCompileCache?.();
    // Children (dynalite, fauxqs) inherit it through the environment.
    if (res?.directory) process.env.NODE_COMPILE_CACHE = res.directory;
  } catch {
    // only a start-up optimisation
  }
}
const { parseConfig } = await import('./config.ts');
const { jsonLogger } = await import('./logger.ts');

// The local stack talks to its own emulators only: never let a stray AWS profile reach AWS.
for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];

let config: ReturnType<typeof parseConfig>;
try {
  config = parseConfig(process.env);
} catch (err) {
  console.error(`xpu-reboot-coordinator: ${(err as Error).message}`);
  process.exit(2);
}
const logger = jsonLogger(config.LOG_LEVEL);

let stack: Stack;
try {
  const { prestart } = await import('./prestart.ts');
  const prestarted = prestart({ dataDir: config.DATA_DIR, dynamoPort: config.DYNAMODB_PORT, sqsPort: config.SQS_PORT });
  const { startStack } = await import('./stack.ts');
  stack = await startStack({
    config,
    logger,
    prestarted,
    onFatal: (err) => {
      // A dependency that cannot be kept alive: exit so that whatever supervises us starts us again.
      console.error(`xpu-reboot-coordinator: ${err.message}; exiting`);
      process.exit(1);
    },
  });
} catch (err) {
  console.error(`xpu-reboot-coordinator: cannot start: ${(err as Error).message}`);
  process.exit(1);
}
const { INGEST_DLQ, INGEST_QUEUE } = await import('./sqs.ts');

// The embedded AWS services answer the AWS CLI and SDKs (README: "Look inside with the AWS CLI").
// One write: whoever waits for the ready line gets the endpoints with it.
console.log(
  [
    `xpu-reboot-coordinator ready at ${stack.url} (DATA_DIR ${config.DATA_DIR}, inventory ${config.NODES_FILE})`,
    `dynamodb endpoint ${stack.dynamo.url} (table ${stack.dynamo.table})`,
    `sqs endpoint ${stack.sqs.url} (queues ${INGEST_QUEUE}, ${INGEST_DLQ})`,
    `stepfunctions endpoint ${stack.sfnUrl} (state machines ${Object.keys(stack.workflowArns).join(', ')})`,
    ...(stack.mqtt ? [`agents' push channel (MQTT) at ${stack.mqtt.url}`] : []),
  ].join('\n'),
);
// Ms since the process started at the end of each phase (docs/reliability.md); a start over the 3 s target is a warning.
const startupMs = Math.round(performance.now());
if (startupMs > 3_000) logger.warn('slow start', { startupMs, phases: stack.startup });
else logger.info('started', { startupMs, phases: stack.startup });
// Node writes its compile cache at exit, which a kill -9 never reaches: write it now, for the next start.
module.flushCompileCache?.();
if (!config.OPERATOR_TOKEN) console.log(`operator token: ${stack.operatorToken} (set OPERATOR_TOKEN to choose one)`);

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.info('stopping', { signal });
  const force = setTimeout(() => {
    logger.error('did not stop within 20 s; exiting anyway (state on disk is consistent)');
    process.exit(1);
  }, 20_000);
  force.unref();
  try {
    await stack.close();
    console.log('xpu-reboot-coordinator stopped');
    process.exit(0);
  } catch (err) {
    logger.error('error while stopping', { error: String(err) });
    process.exit(1);
  }
}
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
