// Issue 14: `npm run chaos --quick`: the real stack and real agents under load, one fault of each kind, then the
// invariant checker (no lost event, no hook run twice, every reboot ended, no host blamed for downtime).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { childEnv, NODE, ROOT, tempDir } from '../support/stack.ts';

describe('chaos --quick', () => {
  it('injects each kind of fault and finds no violation', () => {
    const out = join(tempDir('chaos-quick'), 'results.json');
    const run = spawnSync(NODE, [join(ROOT, 'chaos/run.ts'), '--quick', '--seed', '14', '--out', out], {
      cwd: ROOT,
      env: childEnv(),
      encoding: 'utf8',
      timeout: 400_000,
    });
    const results = JSON.parse(readFileSync(out, 'utf8'));
    expect(results.violations, run.stdout.slice(-4000) + run.stderr.slice(-4000)).toEqual([]);
    expect(run.status).toBe(0);
    expect(Object.keys(results.faults).sort()).toEqual(['kill-agent', 'kill-dynalite', 'kill-fauxqs', 'stack-kill', 'torn-journal']);
    expect(results.events.accepted).toBeGreaterThan(0);
    expect(results.events.lost).toBe(0);
    expect(results.hooks.ranTwice).toBe(0);
  }, 420_000);
});
