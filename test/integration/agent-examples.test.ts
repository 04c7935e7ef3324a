// The example hooks, run by the real agent in dry-run mode against a fake sysfs: they parse, find the device, and change nothing.
import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { COMMAND_TYPES } from '../../lambdas/core/types.ts';
import { command, FakeServer } from '../fixtures/agent/fake-server.ts';
import { buildFakePci, type FakePci } from '../fixtures/agent/fake-pci.ts';
import { removeWorkspaces, startAgent, workspace, type Workspace } from '../fixtures/agent/harness.ts';

const EXAMPLES = resolve(import.meta.dirname, '../../agent/examples/hooks');
const servers: FakeServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
  removeWorkspaces();
});

/** A card without a switch: function 0000:3b:00.0 (mlx5_core) below root port 0000:3a:00.0. */
function fakeSysfs(ws: Workspace): FakePci {
  return buildFakePci(ws.dir, [
    {
      bdf: '0000:3a:00.0',
      vendor: '8086',
      type: 4,
      driver: 'pcieport',
      below: [{ bdf: '0000:3b:00.0', vendor: '15b3', driver: 'mlx5_core', netdevs: ['p0'] }],
    },
  ]);
}

function siteConfig(ws: Workspace): string {
  const path = join(ws.dir, 'hooks.env');
  writeFileSync(
    path,
    [
      'XPU_PCI_ADDRS_dpu0="0000:3b:00.0"',
      'MIGRATE_CMD=/bin/true',
      'RESUME_CMD=/bin/true',
      'DEVLINK_DEV=pci/0000:03:00.0',
      'HOST_BRIDGES=br-host',
      'HOST_PFS=p0',
      'REPROVISION_CMD=/bin/true',
    ].join('\n') + '\n',
  );
  return path;
}

function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

describe('example hooks (dry run)', () => {
  it('every example hook succeeds in a dry run through the agent and only prints what it would do', async () => {
    const ws = workspace();
    const pci = fakeSysfs(ws);
    const sys = pci.sys;
    const before = listing(ws.dir);
    const server = await new FakeServer({ tokens: { 'tok-a': 'node-a' } }).start();
    servers.push(server);
    const args: Record<string, Record<string, unknown>> = {
      'migrate-workloads': { target: 'other-host' },
      reprovision: { tenant: 't2' },
      'deny-host-reboot': { reason: 'xpu-rebooting' },
      'postpone-reboot': { deadline: '2030-01-01T00:00:00.000Z', reason: 'extension' },
      'cancel-reboot': { reason: 'operator' },
      'reboot-xpu': { reason: 'firmware', noticeSeconds: 300, rolloutId: 'ro-1' },
    };
    const types = COMMAND_TYPES;
    server.enqueue('node-a', ...types.map((t, i) => command(`e${i}`, t, { xpu: 'dpu0', args: args[t] ?? {} })));

    const a = startAgent(ws, ['--once', '--server', server.url, '--agent', 'node-a', '--hooks', EXAMPLES, '--state', ws.state], {
      REBOOT_AGENT_TOKEN: 'tok-a',
      REBOOT_HOOK_DRY_RUN: '1',
      ...pci.env,
      REBOOT_HOOK_CONFIG: siteConfig(ws),
      REBOOT_HOOK_STATE: join(ws.dir, 'hook-state'),
    });
    expect(await a.exited).toBe(0);

    const results = server.finalResults();
    // A dry run never reports succeeded: the host agent's required hooks fail, the others are skipped.
    const required = ['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads'];
    for (const r of results) {
      const type = types[Number(r.id.slice(1))];
      expect({ type, status: r.status, output: r.output }).toMatchObject({
        status: required.includes(type) ? 'failed' : 'skipped',
        output: expect.stringMatching(/^dry run \(REBOOT_HOOK_DRY_RUN=1\): the hook exited 0/),
      });
    }
    expect(results).toHaveLength(types.length);
    const out = Object.fromEntries(results.map((r) => [types[Number(r.id.slice(1))], r.output ?? '']));
    expect(out['protect-pcie']).toContain(`would run: ${pci.env.REBOOT_SETPCI} -s 0000:3a:00.0 ECAP_AER+0x08.L=00000020:00000020`);
    expect(out['protect-pcie']).toContain(`would write 1 to ${sys}/bus/pci/devices/0000:3b:00.0/remove`);
    expect(out['restore-pcie']).toContain(`would write 1 to ${sys}/bus/pci/devices/0000:3a:00.0/rescan`);
    expect(out['postpone-reboot']).toMatch(/would write \d+ 2030-01-01T00:00:00.000Z to .*reboot-deadline-rb-1/);
    expect(out['reboot-xpu']).toMatch(/would run: \S*rebootctl(-agent)? announce .*--token-file \S+ --reason firmware --notice 300/);
    expect(out['reboot-host']).toMatch(/would run: (systemd-run .*systemctl reboot|shutdown -r)/);
    expect(out.reprovision).toContain('would run: timeout');
    // A dry run changes nothing: no saved state, no files written (only the agent's own state dir is new).
    expect(listing(ws.dir).filter((p) => !p.startsWith('state') && p !== 'hooks.env' && p !== 'setpci.log')).toEqual(before);
    expect(pci.setpciLog().filter((l) => l.includes('='))).toEqual([]);
  });

  it('protect-pcie succeeds, saying so, when the xPU device is gone already', () => {
    const ws = workspace();
    const pci = fakeSysfs(ws);
    const res = spawnSync(join(EXAMPLES, 'protect-pcie'), [], {
      input: '{}',
      encoding: 'utf8',
      env: {
        ...process.env,
        ...pci.env,
        REBOOT_HOOK_CONFIG: '/nonexistent',
        REBOOT_HOOK_STATE: join(ws.dir, 'hs'),
        XPU_ID: 'dpu1',
        XPU_PCI_ADDRS_dpu1: '0000:5e:00.0',
      },
    });
    expect(res.status).toBe(0);
    expect(res.stdout).toContain("xPU 'dpu1' has no PCI function left (already gone): nothing to protect");
  });
});
