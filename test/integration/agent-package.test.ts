// The self-contained agent (npm run package:agent): runs from a folder without node_modules, re-executes itself lean,
// talks to systemd (READY/WATCHDOG through systemd-notify, journald priorities); the .deb and the unit file.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { command, FakeServer } from '../fixtures/agent/fake-server.ts';
import { waitFor } from '../fixtures/agent/harness.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const TOKEN = 'tok-package-42';
const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;

let dir: string;
let bundle: string;
let server: FakeServer;

beforeAll(async () => {
  execFileSync(process.execPath, [join(ROOT, 'scripts/package-agent.mjs')], { cwd: ROOT, stdio: 'pipe' });
  // A folder far from the repository: no node_modules to fall back on.
  dir = mkdtempSync(join(tmpdir(), 'agent-pkg-'));
  bundle = join(dir, 'rebootctl-agent.mjs');
  copyFileSync(join(ROOT, 'dist/agent/rebootctl-agent.mjs'), bundle);
  writeFileSync(join(dir, 'token'), TOKEN + '\n', { mode: 0o600 });
  mkdirSync(join(dir, 'hooks'));
  for (const t of ['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads']) {
    writeFileSync(
      join(dir, 'hooks', t),
      `#!/bin/sh\ncat >/dev/null\necho $$ > "${dir}/$COMMAND_ID.pid"\nwhile [ ! -e "${dir}/go" ]; do sleep 0.05; done\necho "${t} ok"\n`,
    );
    chmodSync(join(dir, 'hooks', t), 0o755);
  }
  server = await new FakeServer({ tokens: { [TOKEN]: 'node-a' } }).start();
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The bundle under Node 24 (`nodeFlags` before it), cwd outside the repository, no NODE_PATH. */
function runBundle(args: string[], env: Record<string, string> = {}, stderr: 'pipe' | number = 'pipe', nodeFlags: string[] = []) {
  return spawn(process.execPath, [...nodeFlags, bundle, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH!, HOME: dir, ...env },
    stdio: ['ignore', 'pipe', stderr],
  });
}

function collect(child: ReturnType<typeof runBundle>): Promise<{ code: number | null; out: string; err: string }> {
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (err += c));
  return new Promise((r) => child.on('close', (code) => r({ code, out, err })));
}

const agentArgs = (state: string, extra: string[] = []) => [
  'agent',
  '--server',
  server.url,
  '--agent',
  'node-a',
  '--hooks',
  join(dir, 'hooks'),
  '--state',
  join(dir, state),
  '--token-file',
  join(dir, 'token'),
  '--wait',
  '1',
  ...extra,
];

describe('the bundled agent (dist/agent/rebootctl-agent.mjs)', () => {
  it('is one file without node_modules: help, agent --help and agent check run under Node 24 from another folder', async () => {
    expect(existsSync(join(dir, 'node_modules'))).toBe(false);
    const text = readFileSync(bundle, 'utf8');
    expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(text).not.toMatch(/@aws-sdk|dynalite|classic-level/);
    const help = await collect(runBundle(['agent', '--help']));
    expect(help.code).toBe(0);
    expect(help.out).toContain('--token-file <file>');
    expect(help.out).toContain('check [options]');
    // What hooks (reboot-xpu) and the host's shutdown gate call come with it.
    const top = await collect(runBundle(['--help']));
    expect(top.out).toMatch(/announce \[options\][\s\S]*host-reboot \[options\]/);
    // Usage errors exit 2 at the top as in every sub-command (cli/commands/usage-exit.ts).
    for (const args of [['bogus'], ['--bogus'], ['agent', '--bogus']]) {
      const bad = await collect(runBundle(args));
      expect([bad.code, bad.out], args.join(' ')).toEqual([2, '']);
      expect(bad.err, args.join(' ')).toMatch(/error: unknown (command|option)/);
    }
    const check = await collect(
      runBundle([
        'agent',
        'check',
        '--agent',
        'node-a',
        '--hooks',
        join(dir, 'hooks'),
        '--server',
        server.url,
        '--token-file',
        join(dir, 'token'),
      ]),
    );
    expect(check.err).toBe('');
    expect(check.code).toBe(0);
  });

  it('runs an agent session: re-executes itself as the lean daemon (token in no argv/environ), runs the hook, delivers the result', async () => {
    rmSync(join(dir, 'go'), { force: true });
    server.enqueue('node-a', command('b1', 'migrate-workloads'));
    const child = runBundle(agentArgs('state-1'));
    const done = collect(child);
    const hookPid = Number(
      await waitFor(() => existsSync(join(dir, 'b1.pid')) && readFileSync(join(dir, 'b1.pid'), 'utf8').trim(), 15_000),
    );
    const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
    expect(cmdline).toContain('--max-semi-space-size=1'); // the re-executed image
    expect(cmdline.at(-2)).toBe(bundle);
    for (const pid of [child.pid!, hookPid]) {
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8') + readFileSync(`/proc/${pid}/environ`, 'utf8')).not.toContain(TOKEN);
    }
    writeFileSync(join(dir, 'go'), '');
    const result = await waitFor(() => server.finalResults('b1')[0], 15_000);
    expect(result).toMatchObject({ status: 'succeeded', output: 'migrate-workloads ok\n' });
    child.kill('SIGTERM');
    expect((await done).code).toBe(0);
  });

  it('runs on the oldest Node it promises (22.0: no process.getBuiltinModule, no process.execve), simulated on Node 24', async () => {
    const node22 = ['--import', 'data:text/javascript,delete process.getBuiltinModule; delete process.execve'];
    const help = await collect(runBundle(['agent', '--help'], {}, 'pipe', node22));
    expect(help.err).toBe('');
    expect(help.out).toContain('--token-file <file>');
    rmSync(join(dir, 'go'), { force: true });
    server.enqueue('node-a', command('old-node-1', 'protect-pcie'));
    const child = runBundle(agentArgs('state-old-node'), {}, 'pipe', node22);
    const done = collect(child);
    await waitFor(() => existsSync(join(dir, 'old-node-1.pid')), 15_000);
    writeFileSync(join(dir, 'go'), '');
    const result = await waitFor(() => server.finalResults('old-node-1')[0], 15_000);
    expect(result).toMatchObject({ status: 'succeeded', output: 'protect-pcie ok\n' });
    child.kill('SIGTERM');
    expect((await done).code).toBe(0);
    // Node 22.15-22.17 re-execute (execve) but have no import.meta.main: the daemon file must not depend on it.
    expect(readFileSync(join(ROOT, 'dist/agent/rebootctl-agent-daemon.mjs'), 'utf8')).not.toContain('import.meta.main');
  });

  it('tells systemd READY=1, pings WATCHDOG=1 every WatchdogSec/2 and says STOPPING=1 (through systemd-notify)', async () => {
    const bin = join(dir, 'fakebin');
    mkdirSync(bin, { recursive: true });
    const rec = join(dir, 'notify.log');
    writeFileSync(join(bin, 'systemd-notify'), `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> "${rec}"\n`);
    chmodSync(join(bin, 'systemd-notify'), 0o755);
    const child = runBundle(agentArgs('state-2'), {
      PATH: `${bin}:${process.env.PATH}`,
      NOTIFY_SOCKET: '/run/fake/notify',
      WATCHDOG_USEC: '300000',
    });
    const done = collect(child);
    const lines = () => (existsSync(rec) ? readFileSync(rec, 'utf8').trim().split('\n') : []);
    await waitFor(
      () => lines().filter((l) => l.endsWith('WATCHDOG=1')).length >= 3,
      15_000,
      () => lines().join('\n'),
    );
    child.kill('SIGTERM');
    expect((await done).code).toBe(0);
    await waitFor(
      () => lines().at(-1)?.endsWith('STOPPING=1'),
      5000,
      () => lines().join('\n'),
    );
    expect(lines()[0]).toBe('/run/fake/notify READY=1');
  });

  it('prefixes each log line with its syslog priority when stderr is the journal stream', async () => {
    const logFile = join(dir, 'journal.out');
    const fd = openSync(logFile, 'w');
    const st = fstatSync(fd);
    // A token the server does not know: an info line at start, an error line, exit 3.
    writeFileSync(join(dir, 'bad-token'), 'nope\n', { mode: 0o600 });
    const args = agentArgs('state-3', ['--once']).map((a) => (a === join(dir, 'token') ? join(dir, 'bad-token') : a));
    const child = runBundle(args, { JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd);
    closeSync(fd);
    expect((await collect(child)).code).toBe(3);
    const out = readFileSync(logFile, 'utf8').trim().split('\n');
    expect(out.find((l) => l.includes('"agent starting"'))).toMatch(/^<6>\{/);
    expect(out.find((l) => l.includes('"level":"error"'))).toMatch(/^<3>\{/);
    // Without JOURNAL_STREAM (or another stream) the lines stay plain JSON.
    const plain = await collect(runBundle(args));
    expect(plain.err.split('\n')[0]).toMatch(/^\{/);
  });
});

describe('installing it', () => {
  it.skipIf(!has('dpkg-deb'))(
    'npm run package:agent -- --deb builds an architecture-independent .deb with the bundle, the unit and the example hooks',
    () => {
      execFileSync(process.execPath, [join(ROOT, 'scripts/package-agent.mjs'), '--deb'], { cwd: ROOT, stdio: 'pipe' });
      const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
      const deb = join(ROOT, `dist/agent/rebootctl-agent_${version}_all.deb`);
      expect(execFileSync('dpkg-deb', ['-f', deb, 'Architecture', 'Depends'], { encoding: 'utf8' })).toBe(
        'Architecture: all\nDepends: nodejs (>= 22)\n',
      );
      const files = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' });
      for (const f of [
        './usr/lib/rebootctl/rebootctl-agent.mjs',
        './usr/lib/rebootctl/rebootctl-agent-daemon.mjs',
        './lib/systemd/system/rebootctl-agent.service',
        './lib/systemd/system/rebootctl-host-reboot-gate.service',
        './usr/share/polkit-1/rules.d/50-rebootctl.rules',
        './usr/share/doc/rebootctl-agent/examples/hooks/protect-pcie',
        './usr/bin/rebootctl-agent',
      ]) {
        expect(files).toContain(f);
      }
      expect(files).toMatch(/^drwxr-xr-x root\/root .* \.\/$/m);
    },
  );

  const verify = has('systemd-analyze');
  if (!verify) console.warn('agent-package.test.ts: systemd-analyze not installed: the unit files are not verified');
  it.skipIf(!verify)(`the unit files pass systemd-analyze verify${verify ? '' : ' (skipped: systemd-analyze not installed)'}`, () => {
    const units = mkdtempSync(join(tmpdir(), 'agent-units-'));
    try {
      for (const u of ['rebootctl-agent.service']) copyFileSync(join(ROOT, 'agent', u), join(units, u));
      const res = spawnSync('systemd-analyze', ['verify', '--man=no', join(units, 'rebootctl-agent.service')], { encoding: 'utf8' });
      expect(res.stderr.split('\n').filter((l) => l.includes('rebootctl-agent.service'))).toEqual([]);
      expect(res.status).toBe(0);
      const unit = readFileSync(join(ROOT, 'agent/rebootctl-agent.service'), 'utf8');
      expect(unit).not.toMatch(/^RestartSteps=/m); // systemd >= 254 only
      for (const line of [
        'WatchdogSec=60',
        'NotifyAccess=all',
        'User=rebootctl',
        'LoadCredential=agent-token:/etc/rebootctl/agent.token',
        'ProtectSystem=yes',
        'Environment=KUBECONFIG=/etc/rebootctl/kubeconfig',
      ]) {
        expect(unit).toContain(line);
      }
      expect(unit).toMatch(/^ExecStartPre=.* agent check/m);
    } finally {
      rmSync(units, { recursive: true, force: true });
    }
  });
});
