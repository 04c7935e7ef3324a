// The floor: the same hops as an event's path with none of our logic, in a process like the stack's.
//   sqs:      SendMessageBatch to fauxqs (same wrapper, same SQLite persistence) → a waiting ReceiveMessage returns it
//   sfn:      StartExecution through the stack's own transport (same engine, in process) of a one-Task machine → the Task's Lambda is called
//   longpoll: a plain node:http long poll answered by this process → the bench process has the response
//   post:     a plain node:http POST from the bench process → this process has read the body (one way)
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { startLocalSqs } from '../local/sqs.ts';
import { LocalStepFunctions } from '../local/sfn/engine.ts';
import { inProcessSfnHandler, startSfnServer } from '../local/sfn/server.ts';
import { CACHE_MIDDLEWARE, leanLocalClient, localClientConfig } from '../local/sdk-clients.ts';
import { serveIpc, sleep } from './lib.ts';

for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
const now = () => performance.timeOrigin + performance.now();
const dataDir = process.env.FLOOR_DATA_DIR!;
mkdirSync(dataDir, { recursive: true });

// ---- fauxqs
const sqs = await startLocalSqs({ dataDir: join(dataDir, 'sqs'), visibilityTimeoutSeconds: 30 });
let onMessage: ((t: number) => void) | undefined;
let receiving = true;
const receiver = (async () => {
  while (receiving) {
    try {
      const res = await sqs.client.send(
        new ReceiveMessageCommand({ QueueUrl: sqs.ingestQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 5 }),
      );
      const msgs = res.Messages ?? [];
      if (msgs.length === 0) continue;
      const t = now();
      onMessage?.(t);
      await sqs.client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: sqs.ingestQueueUrl,
          Entries: msgs.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    } catch {
      if (!receiving) return;
      await sleep(50);
    }
  }
})();

// ---- Step Functions: the same engine and HTTP server, a machine with one Task
let onTask: ((t: number) => void) | undefined;
const engine = new LocalStepFunctions({
  dataDir: join(dataDir, 'stepfunctions'),
  invokeLambda: async () => {
    onTask?.(now());
    return {};
  },
});
const sfnServer = await startSfnServer(engine, { host: '127.0.0.1', port: 0 });
// The same client options as the stack's (local/sdk-clients.ts, local/stack.ts), in-process transport included,
// so the floor pays what the stack pays per call.
const sfn = leanLocalClient(
  new SFNClient({ ...localClientConfig(sfnServer.url), ...CACHE_MIDDLEWARE, requestHandler: inProcessSfnHandler(engine) }),
);
const machine = engine.createStateMachine({
  name: 'floor',
  definition: JSON.stringify({
    StartAt: 'T',
    States: { T: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:floor', End: true } },
  }),
}).stateMachineArn;

// ---- raw HTTP: long poll answered after a short park, and a POST timed on arrival
const server = http.createServer((req, res) => {
  if (req.url?.startsWith('/poll')) {
    setTimeout(() => {
      const t = now();
      const body = JSON.stringify([{ t }]);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    }, 15);
    return;
  }
  const t0 = Number(req.headers['x-t0']);
  req.resume();
  req.on('end', () => {
    const oneWay = now() - t0;
    const body = JSON.stringify({ oneWay });
    res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
const port = (server.address() as { port: number }).port;

const body = JSON.stringify({
  id: 'ev',
  type: 'xpu.reboot.pending',
  node: 'n',
  xpu: 'dpu0',
  time: new Date().toISOString(),
  data: { reason: 'bench' },
  source: 'native',
  dedupKey: 'native:n:ev',
  receivedAt: new Date().toISOString(),
});

serveIpc({
  async sqs({ n }: { n: number }) {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      await sleep(10); // the receiver is parked in its long poll again
      const got = new Promise<number>((r) => (onMessage = r));
      const t0 = now();
      await sqs.client.send(new SendMessageBatchCommand({ QueueUrl: sqs.ingestQueueUrl, Entries: [{ Id: '0', MessageBody: body }] }));
      out.push((await got) - t0);
    }
    return out;
  },
  async sfn({ n }: { n: number }) {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      await sleep(5);
      const got = new Promise<number>((r) => (onTask = r));
      const t0 = now();
      await sfn.send(new StartExecutionCommand({ stateMachineArn: machine, name: `floor-${process.pid}-${i}`, input: body }));
      out.push((await got) - t0);
    }
    return out;
  },
  port: () => port,
});

async function stop() {
  receiving = false;
  server.close();
  server.closeAllConnections();
  await engine.close();
  await sfnServer.close();
  sfn.destroy();
  await sqs.close();
  await Promise.race([receiver, sleep(6000)]);
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('disconnect', () => void stop());
process.send!({ event: 'ready' });
