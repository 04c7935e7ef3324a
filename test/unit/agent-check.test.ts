// `rebootctl agent check` on the file system: required hooks per role, executable, owner, group/world-writable; --token-file for every CLI command.
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { checkHooks } from '../../agent/check.ts';
import { isLoopback } from '../../agent/config.ts';
import { isSafeId } from '../../agent/ids.ts';
import { readTokenOption } from '../../cli/commands/token-option.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function hooksDir(hooks: Record<string, number>): string {
  const dir = mkdtempSync(join(tmpdir(), 'agent-check-'));
  dirs.push(dir);
  chmodSync(dir, 0o755);
  for (const [name, mode] of Object.entries(hooks)) {
    writeFileSync(join(dir, name), '#!/bin/sh\nexit 0\n');
    chmodSync(join(dir, name), mode);
  }
  return dir;
}

const HOST = { 'migrate-workloads': 0o755, 'protect-pcie': 0o755, 'restore-pcie': 0o755, 'resume-workloads': 0o755 };

describe('agent check: hooks', () => {
  it('passes a host whose four required hooks are present and safe', () => {
    const r = checkHooks({ agent: 'node-a', hooks: hooksDir(HOST), uid: 1000 });
    expect(r.problems).toEqual([]);
    expect(r.ok).toHaveLength(4);
  });

  // chown needs root; the rest of the file runs as anyone.
  it.skipIf(process.getuid?.() !== 0)(
    'names each problem: missing, not executable, group- or world-writable, foreign owner, writable directory',
    () => {
      const dir = hooksDir({ 'migrate-workloads': 0o644, 'protect-pcie': 0o775, 'restore-pcie': 0o757, '_lib.sh': 0o666 });
      chownSync(join(dir, 'restore-pcie'), 4242, 4242);
      chmodSync(join(dir, 'restore-pcie'), 0o755);
      chmodSync(dir, 0o777);
      const r = checkHooks({ agent: 'node-a', hooks: dir, uid: 1000 });
      const text = r.problems.join('\n');
      expect(text).toMatch(/required hook resume-workloads is missing/);
      expect(text).toMatch(/required hook migrate-workloads .* is not executable/);
      expect(text).toMatch(/protect-pcie is group-writable \(mode 0775\)/);
      expect(text).toMatch(/restore-pcie is owned by uid 4242, not by root or the agent's user \(uid 1000\)/);
      expect(text).toMatch(/_lib.sh is group-writable/);
      expect(text).toMatch(/hooks directory .* is group-writable \(mode 0777\)/);
    },
  );

  it.skipIf(process.getuid?.() !== 0)("accepts hooks owned by the agent's own user", () => {
    const dir = hooksDir({ 'free-host-context': 0o755, reprovision: 0o700 });
    chownSync(join(dir, 'reprovision'), 1000, 1000);
    expect(checkHooks({ agent: 'node-a.dpu0', hooks: dir, uid: 1000 }).problems).toEqual([]);
    expect(checkHooks({ agent: 'node-a.dpu0', hooks: dir, uid: 1001 }).problems).toEqual([expect.stringMatching(/owned by uid 1000/)]);
  });

  it('the role follows from the agent id: an xPU needs free-host-context and reprovision, not the host hooks', () => {
    const r = checkHooks({ agent: 'node-a.dpu0', hooks: hooksDir(HOST), uid: 0 });
    expect(r.problems.map((p) => p.split(' ')[2])).toEqual(['free-host-context', 'reprovision']);
  });
});

describe('ids and transport rules', () => {
  it('lets plain ids through and refuses paths, option look-alikes and control characters', () => {
    for (const ok of ['01JD8ZKQ0M3B5Y6N7P8R9S0T1V', 'node-a', 'dpu0', 't1', 'rb-1', 'tenant.blue', 'a:b@c+d=e'])
      expect(isSafeId(ok)).toBe(true);
    for (const bad of ['', '../etc', 'a/b', '-rf', '.hidden', 'a..b', 'a b', 'a\nb', 'x\u0000', 'é', 'a'.repeat(201), 42, null])
      expect(isSafeId(bad)).toBe(false);
  });

  it('no accepted id can leave its directory, look like an option or break a line (property, seeded)', () => {
    // fast-check prints the seed and the shrunk counterexample when this fails.
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('a', 'Z', '0', '.', '-', '_', ':', '@', '/', '\\', '\n', ' ', '\u0000', 'é'), maxLength: 12 }),
        (s) => {
          if (!isSafeId(s)) return true;
          return (
            !s.includes('/') &&
            !s.includes('..') &&
            !s.startsWith('-') &&
            !s.startsWith('.') &&
            // biome-ignore lint/suspicious/noControlCharactersInRegex: ids with control characters are what the agent must refuse.
            !/[\s\u0000-\u001f\u007f]/.test(s) &&
            s.length <= 200
          );
        },
      ),
      { seed: 20261206, numRuns: 2000 },
    );
  });

  it('plain http only to loopback', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '[::1]']) expect(isLoopback(h)).toBe(true);
    for (const h of ['10.0.0.1', 'example.com', '128.0.0.1', 'localhost.example.com', '[::2]']) expect(isLoopback(h)).toBe(false);
  });
});

describe('--token-file on the CLI commands', () => {
  it('reads and trims the file; refuses both flags, an empty file or a missing one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-token-'));
    dirs.push(dir);
    const f = join(dir, 'token');
    writeFileSync(f, 'sekrit\n', { mode: 0o600 });
    expect(readTokenOption({ tokenFile: f }, {})).toBe('sekrit');
    expect(readTokenOption({}, { REBOOT_OPERATOR_TOKEN: 'from-env' })).toBe('from-env');
    expect(readTokenOption({ token: 'flag' }, { REBOOT_OPERATOR_TOKEN: 'from-env' })).toBe('flag');
    expect(readTokenOption({}, {})).toBeUndefined();
    expect(() => readTokenOption({ token: 'a', tokenFile: f })).toThrow(/either --token or --token-file/);
    writeFileSync(join(dir, 'empty'), '\n');
    expect(() => readTokenOption({ tokenFile: join(dir, 'empty') })).toThrow(/is empty/);
    expect(() => readTokenOption({ tokenFile: join(dir, 'nope') })).toThrow(/cannot read the token file/);
    mkdirSync(join(dir, 'adir'));
    expect(() => readTokenOption({ tokenFile: join(dir, 'adir') })).toThrow(/not a regular file/);
  });
});
