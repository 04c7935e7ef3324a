// The shipped shutdown gate unit (docs/identities.md): bounded, run at shutdown, and valid for systemd.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const NAME = 'rebootctl-host-reboot-gate.service';
const UNIT = readFileSync(join(ROOT, 'agent', NAME), 'utf8');
const hasAnalyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).status === 0;

/** Every value of a key in a section, comments and line continuations aside. */
function values(section: string, key: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const line of UNIT.split('\n')) {
    const t = line.trim();
    if (t.startsWith('[')) current = t;
    else if (current === `[${section}]` && t.startsWith(`${key}=`)) out.push(t.slice(key.length + 1));
  }
  return out;
}

describe('rebootctl-host-reboot-gate.service', () => {
  it("runs `rebootctl host-reboot` when a shutdown stops it, bounded above the gate's own wait", () => {
    expect(values('Service', 'Type')).toEqual(['oneshot']);
    expect(values('Service', 'RemainAfterExit')).toEqual(['yes']);
    const stop = values('Service', 'ExecStop');
    expect(stop).toHaveLength(1);
    expect(stop[0]).toMatch(/^\/usr\/bin\/node \/usr\/lib\/rebootctl\/rebootctl-agent\.mjs host-reboot .*--wait \$\{REBOOT_GATE_WAIT\}/);
    // The host agent's token file (agent/README.md): agent.env holds no token in the edge kit's install.
    expect(values('Service', 'Environment')).toContain('REBOOT_AGENT_TOKEN_FILE=/etc/rebootctl/agent.token');
    expect(values('Service', 'LoadCredential')).toEqual([]); // a missing file would keep the gate from starting
    const wait = Number(/REBOOT_GATE_WAIT=(\d+)/.exec(values('Service', 'Environment').join(' '))?.[1]);
    const timeout = Number(values('Service', 'TimeoutStopSec')[0]);
    expect(wait).toBeGreaterThan(0);
    expect(timeout).toBeGreaterThan(wait);
    expect(values('Unit', 'Before').join(' ')).toMatch(/shutdown\.target.*reboot\.target/);
    expect(values('Unit', 'Conflicts')).toContain('shutdown.target');
    // Stopped before the network goes down: the gate must reach the coordinator.
    expect(values('Unit', 'After').join(' ')).toContain('network-online.target');
  });

  it.skipIf(!hasAnalyze)('passes `systemd-analyze verify`', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gate-unit-'));
    writeFileSync(join(dir, NAME), UNIT);
    const res = spawnSync('systemd-analyze', ['verify', join(dir, NAME)], { encoding: 'utf8' });
    expect(`${res.stdout}${res.stderr}`.trim()).toBe('');
    expect(res.status).toBe(0);
  });

  it.runIf(!hasAnalyze)('skips `systemd-analyze verify`: this machine has no systemd-analyze', () => {
    console.warn('systemd-analyze not found: the gate unit was not verified by systemd');
  });
});
