// A diagnostic preload (not used by any run unless asked): every GC pause and every event-loop stall of over
// 12 ms of the process that loads it, as JSON lines {at: epoch ms, ms, kind} (kind: V8's GC kind, 1 scavenge,
// 4 mark-compact, 8 incremental marking; or "stall") in $BENCH_PAUSE_DIR/<script>-<pid>.log. Through
// BENCH_STACK_NODE_OPTIONS it reaches the stack and, by inheritance, its dynalite and fauxqs children:
//   BENCH_PAUSE_DIR=/tmp/p BENCH_STACK_NODE_OPTIONS="--import $PWD/bench/pause-log.mjs" node bench/run.ts --only=latency
// The 4 ms stall timer costs each process a little CPU: compare runs with it, not with runs without.
import { appendFileSync, mkdirSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const dir = process.env.BENCH_PAUSE_DIR;
if (dir) {
  mkdirSync(dir, { recursive: true });
  const out = `${dir}/${(process.argv[1] ?? 'node').split('/').pop()}-${process.pid}.log`;
  const lines = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      lines.push(JSON.stringify({ at: performance.timeOrigin + e.startTime, ms: e.duration, kind: e.detail?.kind }));
  }).observe({ entryTypes: ['gc'] });
  let last = performance.now();
  setInterval(() => {
    const t = performance.now();
    if (t - last > 12) lines.push(JSON.stringify({ at: performance.timeOrigin + last, ms: t - last, kind: 'stall' }));
    last = t;
  }, 4).unref();
  setInterval(() => lines.length && appendFileSync(out, `${lines.splice(0).join('\n')}\n`), 1000).unref();
}
