// Starts the real local stack (`node local/main.ts`) and real agents as child processes for tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { eventually } from './eventually.ts';
import { captureOutput } from './output.ts';

export { eventually } from './eventually.ts';
export { captureOutput } from './output.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'node_modules/.bin');
export const NODE = join(BIN, 'node');
export const OPERATOR_TOKEN = 'operator-token-for-tests';

export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${BIN}:${process.env.PATH}` };
  for (const k of Object.keys(env)) if (k.startsWith('AWS_') || k.startsWith('VITEST')) delete env[k];
  return { ...env, ...extra };
}

export function tempDir(prefix: string): string {
  const base = join(ROOT, '.test-tmp');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, `${prefix}-`));
}

export interface RunningStack {
  url: string;
  proc: ChildProcess;
  dataDir: string;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `node local/main.ts` and resolves once it printed its ready line. */
export async function startStackProcess(opts: { dataDir: string; nodesFile: string; env?: Record<string, string> }): Promise<RunningStack> {
  const proc = spawn(NODE, [join(ROOT, 'local/main.ts')], {
    cwd: ROOT,
    env: childEnv({
      PORT: '0',
      HOST: '127.0.0.1',
      DATA_DIR: opts.dataDir,
      NODES_FILE: opts.nodesFile,
      OPERATOR_TOKEN,
      INGEST_VISIBILITY_SECONDS: '2',
      ...opts.env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const shown = captureOutput(`the stack (DATA_DIR ${opts.dataDir})`, () => out);
  proc.once('exit', () => shown.stopped());
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`stack did not get ready:\n${out}`)), 90_000); // a loaded 2-core machine may take a minute
    const onData = () => {
      const m = /ready at (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout!.off('data', onData);
        res(m[1]);
      }
    };
    proc.stdout!.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`stack exited with ${code}:\n${out}`));
    });
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    url,
    proc,
    dataDir: opts.dataDir,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}

export interface RunningAgent {
  proc: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function startAgent(opts: {
  url: string;
  agent: string;
  token: string;
  hooks: string;
  state: string;
  env?: Record<string, string>;
  args?: string[];
}): RunningAgent {
  const proc = spawn(
    NODE,
    [
      join(ROOT, 'cli/rebootctl.js'),
      'agent',
      '--server',
      opts.url,
      '--agent',
      opts.agent,
      '--hooks',
      opts.hooks,
      '--state',
      opts.state,
      '--wait',
      '5',
      ...(opts.args ?? []),
    ],
    { cwd: ROOT, env: childEnv({ REBOOT_AGENT_TOKEN: opts.token, ...opts.env }), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const shown = captureOutput(`agent ${opts.agent}`, () => out);
  proc.once('exit', () => shown.stopped());
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    proc,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      await exited;
    },
  };
}

/** Writes executable hooks; each body is a shell script fragment run with `set -eu`. */
export function writeHooks(dir: string, hooks: Record<string, string>): string {
  mkdirSync(dir, { recursive: true });
  for (const [name, body] of Object.entries(hooks)) {
    const file = join(dir, name);
    writeFileSync(file, `#!/usr/bin/env bash\nset -eu\n${body}\n`);
    chmodSync(file, 0o755);
  }
  return dir;
}

export async function api(url: string, path: string, opts: { method?: string; token?: string; body?: unknown; raw?: string } = {}) {
  const res = await fetch(url + path, {
    method: opts.method ?? (opts.body !== undefined || opts.raw !== undefined ? 'POST' : 'GET'),
    headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), 'content-type': 'application/json' },
    body: opts.raw ?? (opts.body !== undefined ? JSON.stringify(opts.body) : undefined),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** eventually with this module's older default (30 s, every 100 ms); same argument order. */
export function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<NonNullable<T>> {
  return eventually(what, fn, timeoutMs, everyMs);
}

export function writeInventory(dir: string, yaml: string): string {
  const file = join(dir, 'nodes.yaml');
  writeFileSync(file, yaml);
  return file;
}

export function tmp(): string {
  return tmpdir();
}

/** A port that was free a moment ago: restarts reuse it so agents find the stack again. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

/** Waits until the reboot satisfies `ok` (read as the operator); a time-out says its status and last history entries. */
export function waitForReboot(url: string, id: string, ok: (r: any) => boolean, what: string, ms = 20_000, token = OPERATOR_TOKEN) {
  return waitFor(
    `${id}: ${what}`,
    async () => {
      const r = (await api(url, `/v1/reboots/${id}`, { token })).json;
      if (ok(r)) return r;
      throw new Error(`${r?.status}: ${JSON.stringify(r?.history?.slice(-4).map((h: any) => `${h.phase} ${h.detail}`))}`);
    },
    ms,
  );
}

/**
 * An inventory of trusted one-xPU nodes, each in a rack of its own (r0, r1, …), zone z1, tenant t1, with
 * `bmc-token-<id>`/`agent-token-<id>` and the usual Redfish systems; notice 300 s, 600 s of extensions in 3.
 */
export function rackPerNodeInventory(ids: readonly string[]): string {
  const node = (id: string, rack: string) => `
  - id: ${id}
    rack: ${rack}
    zone: z1
    tenant: t1
    trusted: true
    redfishSystem: /redfish/v1/Systems/system
    bmcToken: bmc-token-${id}
    agentToken: agent-token-${id}
    xpus: [{ id: dpu0, redfishSystem: /redfish/v1/Systems/Bluefield }]`;
  return `
policy:
  xpuReboot: { noticeSeconds: 300, maxExtensionSeconds: 600, maxExtensions: 3 }
nodes:${ids.map((id, i) => node(id, `r${i}`)).join('')}
`;
}
