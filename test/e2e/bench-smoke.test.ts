// `node bench/run.ts --quick`: the bench runs end to end and reports every figure beside its target.
// Correctness only (nothing lost, every duplicate suppressed, every malformed event rejected): no timing assertions.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

function runQuickBench(out: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(ROOT, 'node_modules/.bin')}:${process.env.PATH}` };
  for (const k of Object.keys(env)) if (k.startsWith('VITEST') || k.startsWith('AWS_')) delete env[k];
  return new Promise((res) => {
    const proc = spawn(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'bench/run.ts'), '--quick', `--out=${out}`], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    proc.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

const isNumber = (v: unknown) => typeof v === 'number' && Number.isFinite(v);

describe('npm run bench --quick', () => {
  it('prints and writes every figure with its target; loses nothing, suppresses every duplicate, rejects every malformed event', async () => {
    const dir = join(ROOT, '.test-tmp');
    mkdirSync(dir, { recursive: true });
    const out = join(dir, `bench-smoke-${process.pid}.json`);
    const run = await runQuickBench(out);
    expect(run.code, run.stderr.slice(-4000)).toBe(0);
    const r = JSON.parse(run.stdout);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(r);
    rmSync(out, { force: true });
    expect(r.mode).toBe('quick');

    // The contract's figures, each beside its target.
    for (const k of ['p50', 'p95', 'p99']) expect(isNumber(r.eventToFirstHookMs[k]), k).toBe(true);
    expect(r.eventToFirstHookMs.target).toEqual({ p50: 12, p99: 40 });
    expect(typeof r.eventToFirstHookMs.pass).toBe('boolean');
    expect(r.eventToFirstHookMs.samples).toBeGreaterThan(0);
    expect(isNumber(r.eventToFirstHookMs.hookSpawnMs.p50)).toBe(true);
    expect(isNumber(r.floorRatio)).toBe(true);
    expect(isNumber(r.floorMs)).toBe(true);
    expect(r).toHaveProperty('floorRatioTarget');
    expect(isNumber(r.burst.eventsPerSecond)).toBe(true);
    expect(r.burst.eventsPerSecondTarget).toBe(2500);
    expect(isNumber(r.costUsdPerReboot)).toBe(true);
    expect(r.costUsdPerRebootTarget).toBe(0.0003);
    expect(r.cost.prices.asOf).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(isNumber(r.agentIdleRssMb)).toBe(true);
    expect(r.agentIdleRssMbTarget).toBe(45);
    expect(isNumber(r.scale.stackPeakPssMb)).toBe(true);
    expect(r.scale.stackPeakPssMbTarget).toBe(512);
    for (const c of r.checks) {
      expect(typeof c.figure).toBe('string');
      expect(typeof c.target).toBe('string');
      expect([true, false, null]).toContain(c.pass);
    }

    // Correctness of the burst: every distinct accepted event has its reboot, no duplicate made a second one.
    expect(r.burst.lostEvents).toBe(0);
    expect(r.burst.duplicatesSuppressedPct).toBe(100);
    expect(r.burst.malformedRejectedPct).toBe(100);
    expect(r.burst.validRejected).toBe(0);
    expect(r.burst.rebootsStarted).toBe(r.burst.distinctEvents);
    expect(r.burst.executions).toBe(r.burst.distinctEvents);
    // Every parked workflow of the scale run completed.
    expect(r.scale.inFlight).toBe(r.scale.workflows);
    expect(r.scale.completed).toBe(r.scale.workflows);
    expect(r.scale.completedViaApi).toBe(r.scale.workflows);
  }, 300_000);
});
