// Micro-benchmark of the engine hop: StartExecution over HTTP of workflows/xpu-reboot.asl.json (and of the floor's
// one-Task machine) → the first Task's Lambda is called, with a stub Lambda that returns at once.
//   node bench/sfn-start-micro.ts [n=400] [--cpu-prof]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { LocalStepFunctions } from '../local/sfn/engine.ts';
import { startSfnServer } from '../local/sfn/server.ts';
import { substitute } from '../local/sfn/substitute.ts';
import { CACHE_MIDDLEWARE, leanLocalClient, localClientConfig } from '../local/sdk-clients.ts';

for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
const n = Number(process.argv[2] ?? 400);
const dir = mkdtempSync(join(tmpdir(), 'sfn-micro-'));
let onTask: ((t: number) => void) | undefined;
const engine = new LocalStepFunctions({
  dataDir: join(dir, 'sfn'),
  invokeLambda: async () => {
    onTask?.(performance.now());
    return {};
  },
});
const server = await startSfnServer(engine, { host: '127.0.0.1', port: 0 });
const sfn = leanLocalClient(new SFNClient({ ...localClientConfig(server.url), ...CACHE_MIDDLEWARE }));
const fn = 'arn:aws:lambda:us-east-1:000000000000:function:workflow-await';
const xpu = engine.createStateMachine({
  name: 'xpu-reboot',
  definition: substitute(readFileSync(new URL('../workflows/xpu-reboot.asl.json', import.meta.url), 'utf8'), {
    AwaitFunctionArn: fn,
    StepFunctionArn: fn.replace('await', 'step'),
  }),
}).stateMachineArn;
const one = engine.createStateMachine({
  name: 'floor',
  definition: JSON.stringify({ StartAt: 'T', States: { T: { Type: 'Task', Resource: fn, End: true } } }),
}).stateMachineArn;
const deadline = new Date(Date.now() + 600_000).toISOString();
const input = JSON.stringify({
  rebootId: '01JABCDEFGHJKMNPQRSTVWXYZ0',
  node: 'node-0001',
  xpu: 'dpu0',
  mode: 'planned',
  window: { noticeAt: new Date().toISOString(), deadline, secondsToDeadline: 600, signal: 'notified' },
  limits: { heartbeatSeconds: 30, recoverySeconds: 600, coredumpSeconds: 300, commandSeconds: 120 },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function once(machine: string, name: string) {
  await sleep(2);
  const got = new Promise<number>((r) => (onTask = r));
  const t0 = performance.now();
  await sfn.send(new StartExecutionCommand({ stateMachineArn: machine, name, input }));
  const reply = performance.now() - t0;
  return { task: (await got) - t0, reply };
}
// Interleaved, so both machines see the same load; the difference is what the workflow's first state costs.
const out = { xpuTask: [] as number[], xpuReply: [] as number[], oneTask: [] as number[], oneReply: [] as number[] };
for (let i = 0; i < n + 100; i++) {
  const x = await once(xpu, `x-${i}`);
  const o = await once(one, `o-${i}`);
  if (i < 100) continue; // warm-up
  out.xpuTask.push(x.task);
  out.xpuReply.push(x.reply);
  out.oneTask.push(o.task);
  out.oneReply.push(o.reply);
}
const diff = out.xpuTask.map((v, i) => v - out.oneTask[i]);
console.log(
  JSON.stringify({
    n,
    xpuStartToTaskP50: +p50(out.xpuTask).toFixed(3),
    oneTaskStartToTaskP50: +p50(out.oneTask).toFixed(3),
    xpuMinusOneP50: +p50(diff).toFixed(3),
    xpuReplyP50: +p50(out.xpuReply).toFixed(3),
    oneReplyP50: +p50(out.oneReply).toFixed(3),
  }),
);
await engine.close();
await server.close();
sfn.destroy();
rmSync(dir, { recursive: true, force: true });
