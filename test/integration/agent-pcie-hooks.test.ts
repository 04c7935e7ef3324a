// The example protect-pcie / restore-pcie hooks against a fake sysfs, fake setpci and fake kernel: the host port above
// a card's own switch, lockdown, a vanished device, VFs on vfio-pci, a write that does not take, bit-level restore.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildFakePci, type FakeFn, type FakePci } from '../fixtures/agent/fake-pci.ts';

const HOOKS = resolve(import.meta.dirname, '../../agent/examples/hooks');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const HOST_PORT = '0000:02:08.0';
const CARD = ['0000:03:00.0', '0000:04:00.0', '0000:04:01.0', '0000:05:00.0', '0000:05:00.1', '0000:05:00.2', '0000:06:00.0'];

/**
 * A BlueField with switch emulation behind a host switch: root port > host switch (10b5) >
 * card switch (15b3) > two PFs, a VF and the rshim function.
 */
function blueFieldBehindHostSwitch(opts: { vfDriver?: string; readonly?: string[] } = {}): FakeFn[] {
  return [
    {
      bdf: '0000:00:01.0',
      vendor: '8086',
      type: 4,
      driver: 'pcieport',
      below: [
        {
          bdf: '0000:01:00.0',
          vendor: '10b5',
          type: 5,
          driver: 'pcieport',
          below: [
            {
              bdf: HOST_PORT,
              vendor: '10b5',
              type: 6,
              driver: 'pcieport',
              readonly: opts.readonly,
              below: [
                {
                  bdf: '0000:03:00.0',
                  vendor: '15b3',
                  type: 5,
                  driver: 'pcieport',
                  below: [
                    {
                      bdf: '0000:04:00.0',
                      vendor: '15b3',
                      type: 6,
                      driver: 'pcieport',
                      below: [
                        { bdf: '0000:05:00.0', vendor: '15b3', driver: 'mlx5_core', netdevs: ['p0'], dsn: 'b8-3f-d2-03-00-aa-bb-cc' },
                        { bdf: '0000:05:00.1', vendor: '15b3', driver: 'mlx5_core', netdevs: ['p1'] },
                        { bdf: '0000:05:00.2', vendor: '15b3', driver: opts.vfDriver ?? 'mlx5_core', physfn: '0000:05:00.0' },
                      ],
                    },
                    {
                      bdf: '0000:04:01.0',
                      vendor: '15b3',
                      type: 6,
                      driver: 'pcieport',
                      below: [{ bdf: '0000:06:00.0', vendor: '15b3', driver: 'rshim_pcie' }],
                    },
                  ],
                },
              ],
            },
          ],
        },
      ],
    },
  ];
}

function setup(roots: FakeFn[], opts: Parameters<typeof buildFakePci>[2] = {}): FakePci {
  const dir = mkdtempSync(join(tmpdir(), 'agent-pcie-'));
  dirs.push(dir);
  return buildFakePci(dir, roots, opts);
}

interface HookResult {
  code: number | null;
  out: string;
}

function hook(pci: FakePci, name: string, env: Record<string, string>): Promise<HookResult> {
  return new Promise((done) => {
    const child = spawn(join(HOOKS, name), [], {
      env: {
        PATH: process.env.PATH,
        ...pci.env,
        REBOOT_HOOK_CONFIG: '/nonexistent',
        REBOOT_HOOK_STATE: join(pci.dir, 'hook-state'),
        REBOOT_ID: 'rb-1',
        COMMAND_ID: 'c-1',
        XPU_ID: 'dpu0',
        DEADLINE: new Date(Date.now() + 60_000).toISOString(),
        ...env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stdin.end('{}\n');
    child.on('close', (code) => done({ code, out }));
  });
}

const writes = (pci: FakePci) => pci.setpciLog().filter((l) => l.includes('='));
const ANCHOR = { XPU_PCI_ADDRS_dpu0: '0000:05:00.0' };

describe('protect-pcie and restore-pcie on a card with its own switch behind a host switch', () => {
  it('masks the host switch port (not the card upstream port), removes every function, and restores exactly the bits it changed', async () => {
    const pci = setup(blueFieldBehindHostSwitch());
    const p = await hook(pci, 'protect-pcie', ANCHOR);
    expect(p.out).toContain(`host-side port ${HOST_PORT}`);
    expect(p.code).toBe(0);
    expect(p.out).toMatch(/PCIe protected on host port 0000:02:08.0 .* removed 7 function\(s\)/);
    // Only the host-side port was written; never the card's own ports, never the root port.
    expect(new Set(writes(pci).map((l) => l.split(' ')[2]))).toEqual(new Set([HOST_PORT]));
    expect(pci.reg(HOST_PORT, 'ECAP_AER+0x08.L')).toBe('00400020'); // Surprise Down masked, bit 22 kept
    expect(pci.reg(HOST_PORT, 'ECAP_DPC+0x06.W')).toBe('0040'); // trigger off, interrupt enable kept
    expect(pci.reg(HOST_PORT, 'CAP_EXP+0x18.W')).toBe('0401'); // PDC, HPIE, DLLSC off; ABP and bit 10 kept
    for (const f of CARD) expect(pci.exists(f)).toBe(false);
    expect(pci.exists(HOST_PORT)).toBe(true);
    expect(pci.kernelLog()).toEqual([`write 1 > bus/pci/devices/0000:03:00.0/remove`]);

    // The xPU reboots. Meanwhile something else (pciehp, an operator) clears bit 0 of Slot Control,
    // and the reset latches link and presence events and a Surprise Down.
    pci.cardDown(true);
    pci.setReg(HOST_PORT, 'CAP_EXP+0x18.W', '0400');
    pci.setReg(HOST_PORT, 'CAP_EXP+0x1a.W', '0148');
    pci.setReg(HOST_PORT, 'ECAP_AER+0x04.L', '00000020');
    pci.setReg(HOST_PORT, 'ECAP_DPC+0x08.W', '0001');
    const restoring = hook(pci, 'restore-pcie', {});
    await new Promise((r) => setTimeout(r, 600));
    expect(pci.kernelLog()).toHaveLength(1); // no rescan while the link is down
    pci.cardDown(false);
    const r = await restoring;
    expect(r.out).toMatch(/PCIe restored for xPU 'dpu0' on port 0000:02:08.0: 6 function\(s\) back/);
    expect(r.code).toBe(0);
    expect(pci.kernelLog().at(-1)).toBe(`write 1 > bus/pci/devices/${HOST_PORT}/rescan`);
    for (const f of CARD) expect(pci.exists(f)).toBe(true);
    expect(pci.driver('0000:05:00.0')).toBe('mlx5_core');
    expect(pci.driver('0000:06:00.0')).toBe('rshim_pcie');
    // Latched status cleared (presence detect state, read-only, stays), and only the changed bits restored.
    expect(pci.reg(HOST_PORT, 'CAP_EXP+0x1a.W')).toBe('0040');
    expect(pci.reg(HOST_PORT, 'ECAP_AER+0x04.L')).toBe('00000000');
    expect(pci.reg(HOST_PORT, 'ECAP_DPC+0x08.W')).toBe('0000');
    expect(pci.reg(HOST_PORT, 'ECAP_AER+0x08.L')).toBe('00400000');
    expect(pci.reg(HOST_PORT, 'ECAP_DPC+0x06.W')).toBe('0041');
    expect(pci.reg(HOST_PORT, 'CAP_EXP+0x18.W')).toBe('1428'); // bit 0 stays as changed meanwhile
    const log = pci.setpciLog().join('\n');
    expect(log.indexOf('CAP_EXP+0x1a.W=010f')).toBeGreaterThan(0);
    expect(log.indexOf('CAP_EXP+0x1a.W=010f')).toBeLessThan(log.indexOf('ECAP_AER+0x08.L=00400000:00000020')); // cleared before unmasking
    expect(existsSync(join(pci.dir, 'hook-state/pcie-dpu0.env'))).toBe(false);
  });

  it('finds the same host port by serial number, by slot and by port', async () => {
    const identities: Record<string, string>[] = [
      { XPU_DSN_dpu0: 'B8-3F-D2-03-00-AA-BB-CC' },
      { XPU_SLOT_dpu0: '3' },
      { XPU_PORT_dpu0: HOST_PORT },
    ];
    for (const env of identities) {
      const pci = setup(blueFieldBehindHostSwitch(), { slots: { '3': '0000:03:00' } });
      const p = await hook(pci, 'protect-pcie', { ...env, REBOOT_HOOK_DRY_RUN: '1' });
      expect({ env, code: p.code }).toEqual({ env, code: 0 });
      expect(p.out).toContain(`host-side port ${HOST_PORT}`);
      expect(p.out).toContain(`dry run: would run: ${pci.env.REBOOT_SETPCI} -s ${HOST_PORT} ECAP_AER+0x08.L=00000020:00000020`);
      expect(p.out).toContain('dry run: would write 1 to');
      expect(p.out).toMatch(/dry run: nothing changed; would have: PCIe protected/);
      expect(writes(pci)).toEqual([]);
      expect(pci.kernelLog()).toEqual([]);
    }
  });

  it('refuses under kernel lockdown and changes nothing', async () => {
    const pci = setup(blueFieldBehindHostSwitch(), { lockdown: 'none [integrity] confidentiality\n' });
    const p = await hook(pci, 'protect-pcie', ANCHOR);
    expect(p.code).toBe(1);
    expect(p.out).toMatch(/kernel lockdown is active \(none \[integrity\] confidentiality\)/);
    expect(writes(pci)).toEqual([]);
    expect(pci.exists('0000:05:00.0')).toBe(true);
  });

  it('succeeds when the device is already gone', async () => {
    const pci = setup(blueFieldBehindHostSwitch());
    const p = await hook(pci, 'protect-pcie', { XPU_PCI_ADDRS_dpu0: '0000:09:00.0' });
    expect(p.code).toBe(0);
    expect(p.out).toMatch(/has no PCI function left \(already gone\): nothing to protect/);
    expect(writes(pci)).toEqual([]);
  });

  it('refuses while a VF is bound to vfio-pci', async () => {
    const pci = setup(blueFieldBehindHostSwitch({ vfDriver: 'vfio-pci' }));
    const p = await hook(pci, 'protect-pcie', ANCHOR);
    expect(p.code).toBe(1);
    expect(p.out).toMatch(/0000:05:00.2 is bound to vfio-pci/);
    expect(writes(pci)).toEqual([]);
    expect(pci.exists('0000:05:00.2')).toBe(true);
  });

  it('fails when a write does not take although setpci exits 0, and undoes the masks it had set', async () => {
    const pci = setup(blueFieldBehindHostSwitch({ readonly: ['ECAP_DPC+0x06.W'] }));
    const p = await hook(pci, 'protect-pcie', ANCHOR);
    expect(p.code).toBe(1);
    expect(p.out).toMatch(/write did not take: ECAP_DPC\+0x06.W of 0000:02:08.0 reads 0041/);
    expect(p.out).toMatch(/could not mask DPC_CTL on 0000:02:08.0/);
    expect(pci.reg(HOST_PORT, 'ECAP_AER+0x08.L')).toBe('00400000'); // undone
    expect(pci.exists('0000:05:00.0')).toBe(true);
  });

  it('refuses when the root file system or the default route uses the card', async () => {
    const pci = setup(blueFieldBehindHostSwitch());
    const blk = join(
      pci.sys,
      'devices/pci0000:00/0000:00:01.0/0000:01:00.0',
      HOST_PORT,
      '0000:03:00.0/0000:04:00.0/0000:05:00.1/block/sda1',
    );
    mkdirSync(blk, { recursive: true });
    symlinkSync(blk, join(pci.sys, 'class/block/sda1'));
    const disk = await hook(pci, 'protect-pcie', { ...ANCHOR, REBOOT_ROOT_SOURCE: '/dev/sda1' });
    expect(disk.code).toBe(1);
    expect(disk.out).toMatch(/the root file system \(\/dev\/sda1\) is on the card/);
    const route = await hook(pci, 'protect-pcie', { ...ANCHOR, REBOOT_DEFAULT_ROUTE_DEV: 'p1' });
    expect(route.code).toBe(1);
    expect(route.out).toMatch(/the default route goes through p1/);
    expect(writes(pci)).toEqual([]);
  });

  it('restore-pcie fails for a function that comes back dead, and keeps its state for another try', async () => {
    const pci = setup(blueFieldBehindHostSwitch());
    expect((await hook(pci, 'protect-pcie', ANCHOR)).code).toBe(0);
    pci.markDead('0000:05:00.1');
    const r = await hook(pci, 'restore-pcie', {});
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/0000:05:00.1 is back but does not answer config reads \(dead\)/);
    expect(existsSync(join(pci.dir, 'hook-state/pcie-dpu0.env'))).toBe(true);
  });

  it('rebootctl agent check --hook-self-check runs the example hooks in check mode: card found, tools there, no lockdown', async () => {
    const run = async (pci: FakePci) => {
      const config = join(pci.dir, 'hooks.env');
      writeFileSync(config, `XPU_DSN_dpu0="b8-3f-d2-03-00-aa-bb-cc"\nMIGRATE_CMD=/bin/true\nRESUME_CMD=/bin/true\n`);
      return new Promise<HookResult>((done) => {
        const child = spawn(
          process.execPath,
          [join(HOOKS, '../../../cli/rebootctl.js'), 'agent', 'check', '--agent', 'node-a', '--hooks', HOOKS, '--hook-self-check'],
          {
            env: { ...process.env, ...pci.env, REBOOT_HOOK_CONFIG: config, REBOOT_HOOK_STATE: join(pci.dir, 'hook-state') },
          },
        );
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
        child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
        child.on('close', (code) => done({ code, out }));
      });
    };
    const pci = setup(blueFieldBehindHostSwitch());
    const ok = await run(pci);
    expect(ok.out).toContain(
      `hook protect-pcie self-check passed: check: xPU 'dpu0': card found by serial number b8-3f-d2-03-00-aa-bb-cc (0000:05:00.0), host-side port ${HOST_PORT}`,
    );
    expect(ok.out).toContain('hook migrate-workloads self-check passed');
    expect(ok.code).toBe(0);
    expect(writes(pci)).toEqual([]); // a check changes nothing
    expect(pci.kernelLog()).toEqual([]);

    const locked = await run(setup(blueFieldBehindHostSwitch(), { lockdown: 'none integrity [confidentiality]\n' }));
    expect(locked.code).toBe(1);
    expect(locked.out).toMatch(/problem: hook protect-pcie self-check failed: .*kernel lockdown is active/);
    expect(locked.out).toMatch(/problem: hook restore-pcie self-check failed/);
  });
});
