// Cold spawn vs warm gate, alternating in one process: startHook call → the hook's own $EPOCHREALTIME, and how long
// the call blocks the event loop. `node bench/probe-warm-gate.ts [n=200] [ballastMb=150]` (ballast: a larger process
// forks slower, as the bench's agent hosts with hundreds of agents do). Not part of `npm run bench`.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startHook } from '../agent/hook.ts';
import { WarmGate } from '../agent/warm-gate.ts';

const n = Number(process.argv[2] ?? 200);
const ballastMb = Number(process.argv[3] ?? 150);
const now = () => performance.timeOrigin + performance.now();
const ballast: number[][] = [];
for (let i = 0; i < ballastMb * 8; i++) ballast.push(Array.from({ length: 16_384 }, (_, j) => j + i)); // ~128 KiB each

const dir = mkdtempSync(join(tmpdir(), 'probe-warm-'));
const log = join(dir, 'log');
writeFileSync(log, '');
const hook = join(dir, 'hook');
writeFileSync(hook, `#!/bin/bash\necho "$EPOCHREALTIME" >> ${log}\n`);
chmodSync(hook, 0o755);
// What the agent hands a hook: the bench's 12 variables, 6 of them per command.
const env = Object.freeze({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  LC_ALL: 'C',
  HOME: dir,
  REBOOT_AGENT_SERVER: 'http://127.0.0.1:1',
  REBOOT_AGENT_ID: 'node-a',
});
const gate = new WarmGate(env, dir);
const result: Record<'cold' | 'warm', { stamp: number[]; blocked: number[] }> = {
  cold: { stamp: [], blocked: [] },
  warm: { stamp: [], blocked: [] },
};

for (let i = 0; i < 2 * n; i++) {
  const kind = i % 2 ? 'warm' : 'cold';
  if (kind === 'warm') gate.fill();
  await new Promise((r) => setTimeout(r, 15)); // idle in between, as an agent between commands
  const before = readFileSync(log, 'utf8').length;
  const t0 = now();
  const run = startHook({
    path: hook,
    stdin: '{"id":"c"}\n',
    env,
    commandEnv: {
      REBOOT_ID: 'xr-1',
      COMMAND_ID: `c${i}`,
      COMMAND_TYPE: 'migrate-workloads',
      NODE_ID: 'node-a',
      XPU_ID: '',
      DEADLINE: '2030-01-01T00:00:00.000Z',
    },
    cwd: dir,
    deadline: new Date(Date.now() + 30_000),
    maxOutputBytes: 65_536,
    killGraceMs: 1000,
    warm: kind === 'warm' ? gate : undefined,
  });
  const t1 = now();
  if (run.warm !== (kind === 'warm')) throw new Error(`expected a ${kind} start`);
  await run.done;
  const stamp = Number(readFileSync(log, 'utf8').slice(before).trim()) * 1000;
  result[kind].stamp.push(stamp - t0);
  result[kind].blocked.push(t1 - t0);
}
gate.close();
rmSync(dir, { recursive: true, force: true });

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))].toFixed(2);
const rss = Math.round(process.memoryUsage().rss / 1048576);
for (const kind of ['cold', 'warm'] as const) {
  const r = result[kind];
  console.log(
    `${kind}: call → hook stamp p10/p50/p90 ${q(r.stamp, 0.1)}/${q(r.stamp, 0.5)}/${q(r.stamp, 0.9)} ms; startHook blocks the loop p50 ${q(r.blocked, 0.5)} ms (n=${n}, rss ${rss} MB)`,
  );
}
void ballast.length;
