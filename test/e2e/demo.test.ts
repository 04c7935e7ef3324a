// The README's 60-second demo: `npx rebootctl demo` completes one reboot and prints its history.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { childEnv, NODE, ROOT } from '../support/stack.ts';

describe('rebootctl demo', () => {
  it('runs a reboot end to end with two agents and prints its history in order', () => {
    const res = spawnSync(NODE, [join(ROOT, 'cli/rebootctl.js'), 'demo'], {
      cwd: ROOT,
      env: childEnv(),
      encoding: 'utf8',
      timeout: 90_000,
    });
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/reboot xr-\S+: completed/);
    const phases = [...res.stdout.matchAll(/^\s+\S+Z\s+(\S+)/gm)].map((m) => m[1]);
    expect(phases[0]).toBe('notified');
    expect(phases.indexOf('rebooting')).toBeGreaterThan(phases.indexOf('preparing'));
    expect(phases.at(-1)).toBe('completed');
    for (const type of ['migrate-workloads', 'protect-pcie', 'proceed-reboot', 'restore-pcie', 'resume-workloads'])
      expect(res.stdout).toMatch(new RegExp(`${type}\\s+\\S+\\s+succeeded`));
  });
});
