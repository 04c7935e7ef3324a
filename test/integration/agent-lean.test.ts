// Issue 19: what the idle agent daemon keeps loaded. RSS itself is measured by `npm run bench` (agentIdleRssMb);
// here, deterministically, the causes: the re-executed daemon must not load Node's TypeScript compiler (its modules
// come from the compile cache the CLI wrote), nor the built-ins an idle agent does not use.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeServer } from '../fixtures/agent/fake-server.ts';
import { waitFor } from '../fixtures/agent/harness.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const TOKEN = 'tok-lean-7';
let dir: string;
let server: FakeServer;

beforeAll(async () => {
  mkdirSync(join(ROOT, '.test-tmp'), { recursive: true });
  dir = mkdtempSync(join(ROOT, '.test-tmp', 'agent-lean-'));
  mkdirSync(join(dir, 'hooks'));
  // Written by the daemon only (the process that carries the resolved configuration; on a loaded
  // machine the CLI may live past 2.5 s before it re-executes): the built-ins it loaded.
  writeFileSync(
    join(dir, 'modules.cjs'),
    `if (process.env.REBOOT_AGENT_RESOLVED_CONFIG) setTimeout(() => require('fs').writeFileSync(process.env.LEAN_MODULES_OUT, process.moduleLoadList.join('\\n')), 2500).unref();\n`,
  );
  server = await new FakeServer({ tokens: { [TOKEN]: 'node-a' } }).start();
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs `<entry> agent` (by default for the first time, on a fresh state dir) until the daemon wrote its module list. */
async function firstStart(entry: string, name: string, state = join(dir, `state-${name}`)) {
  const out = join(dir, `${name}.modules`);
  // stderr into a file, not a pipe: Node writes its NODE_DEBUG_NATIVE lines with fprintf to the same (non-blocking)
  // descriptor, and when the reader is slow (a loaded machine) a full pipe drops them (EAGAIN) — it was the CLI's
  // "flushCompileCache() finished" line, just before it re-executes, that went missing. A file takes every line.
  const errFile = join(dir, `${name}.stderr`);
  const errFd = openSync(errFile, 'w');
  const child = spawn(
    process.execPath,
    [entry, 'agent', '--server', server.url, '--agent', 'node-a', '--hooks', join(dir, 'hooks'), '--state', state, '--wait', '1'],
    {
      cwd: dir,
      env: {
        PATH: process.env.PATH!,
        HOME: dir,
        REBOOT_AGENT_TOKEN: TOKEN,
        NODE_DEBUG_NATIVE: 'COMPILE_CACHE',
        NODE_OPTIONS: `--require ${join(dir, 'modules.cjs')}`,
        LEAN_MODULES_OUT: out,
      },
      stdio: ['ignore', 'ignore', errFd],
    },
  );
  closeSync(errFd);
  let cmdline: string[] = [];
  try {
    await waitFor(() => existsSync(out) && readFileSync(out, 'utf8').length > 0, 30_000);
    cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
  }
  return { modules: readFileSync(out, 'utf8').split('\n'), debug: readFileSync(errFile, 'utf8'), cmdline };
}

/** Built-ins an idle daemon has no use for: each stays resident once loaded. */
// Not child_process: an idle agent keeps the next hook's gate shell forked ahead (agent/warm-gate.ts; ~0.9 MB RSS
// outside systemd, nothing more under it, where systemd-notify loads it at start anyway).
const UNUSED_WHILE_IDLE = [
  'NativeModule internal/fs/promises', // `import … from 'node:fs'` builds fs.promises
  'NativeModule internal/readline/interface', // `import … from 'node:module'`
  'NativeModule internal/deps/undici/undici', // fetch, or `import … from 'node:http'`
];

describe('the idle daemon', () => {
  it('from the repository: its first start ends in an image that strips no TypeScript (every module from the compile cache), runs without JIT and loads no unused built-in', async () => {
    const { modules, debug, cmdline } = await firstStart(join(ROOT, 'cli/rebootctl.js'), 'repo');
    // The daemon's V8 flags key a compile cache of their own: its first image strips the modules,
    // flushes the cache and starts again from it. The last image's log starts at the last flush.
    const flushes = debug.split('module.flushCompileCache() finished');
    expect(flushes.length).toBe(3); // the CLI's flush before its execve, the first daemon image's before its own
    const daemonLog = flushes.at(-1)!;
    expect(daemonLog).toContain('retrieving transpile cache for StrippedTypeScript');
    expect(daemonLog.match(/no transpile cache for StrippedTypeScript \S+/g) ?? []).toEqual([]);
    expect(modules).not.toContain('NativeModule internal/deps/amaro/dist/index');
    for (const flag of ['--no-opt', '--no-maglev', '--no-sparkplug']) expect(cmdline).toContain(flag);
    for (const m of UNUSED_WHILE_IDLE) expect(modules).not.toContain(m);
  }, 60_000);

  it('from the repository, a later start: the daemon starts once, from the cache', async () => {
    const { modules, debug } = await firstStart(join(ROOT, 'cli/rebootctl.js'), 'repo-again', join(dir, 'state-repo'));
    const flushes = debug.split('module.flushCompileCache() finished');
    expect(flushes.length).toBe(2); // the CLI's only
    expect(flushes[1]).toContain('retrieving transpile cache for StrippedTypeScript');
    expect(flushes[1].match(/no transpile cache for StrippedTypeScript \S+/g) ?? []).toEqual([]);
    expect(modules).not.toContain('NativeModule internal/deps/amaro/dist/index');
  }, 60_000);

  it('from the bundle: the daemon-only file next to it, no unused built-in, in V8 lite mode', async () => {
    execFileSync(process.execPath, [join(ROOT, 'scripts/package-agent.mjs')], { cwd: ROOT, stdio: 'pipe' });
    const { modules, cmdline } = await firstStart(join(ROOT, 'dist/agent/rebootctl-agent.mjs'), 'bundle');
    // Not the bundle itself: V8 would parse and keep its CLI part (commander, zod) too. Without the file the bundle
    // runs the daemon itself (agent-package.test.ts copies the bundle alone).
    expect(cmdline.at(-2)).toBe(join(ROOT, 'dist/agent/rebootctl-agent-daemon.mjs'));
    expect(cmdline).toContain('--lite-mode');
    for (const m of UNUSED_WHILE_IDLE) expect(modules).not.toContain(m);
  }, 60_000);
});
