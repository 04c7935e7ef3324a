// The warm gate (agent/warm-gate.ts): a hook started through it sees exactly what a cold spawn gives it; the cold
// spawn takes over whenever the warm path could not be exact.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHook, type HookSpec } from '../../agent/hook.ts';
import { identify, type ProcessIdentity } from '../../agent/proc.ts';
import { gateLines, WARM_GATE_NAME, WARM_GATE_SCRIPT, WarmGate } from '../../agent/warm-gate.ts';
import { isAlive, waitFor } from '../fixtures/agent/harness.ts';

const ROOT = resolve(import.meta.dirname, '../..');
let dir: string;
let hooks: string; // a symlink to the real directory, as an operator's /etc/... link may be
let real: string;
let rec: string;

// What the hook records: its initial environment as the kernel handed it over (/proc, not bash's view), its
// physical cwd, its stdin, its pid, process group and session.
const DUMP = `#!/bin/bash
out="$REC_DIR/$COMMAND_ID"
tr '\\0' '\\n' < /proc/$$/environ | grep -v '^COMMAND_ID=' | sort > "$out.env"
pwd -P > "$out.pwd"
ls > "$out.ls"
cat > "$out.stdin"
echo "$$ $(ps -o pgid=,sid= -p $$)" | tr -s ' ' > "$out.ids"
printf '%s' "\${NOTE-}"
`;

beforeAll(() => {
  mkdirSync(join(ROOT, '.test-tmp'), { recursive: true });
  dir = mkdtempSync(join(ROOT, '.test-tmp', 'warm-gate-'));
  real = join(dir, 'hooks.d');
  hooks = join(dir, 'hooks');
  rec = join(dir, 'rec');
  mkdirSync(real);
  mkdirSync(rec);
  symlinkSync(real, hooks);
  writeHook(real);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeHook(where: string): void {
  writeFileSync(join(where, 'dump'), DUMP);
  chmodSync(join(where, 'dump'), 0o755);
}

const gates: WarmGate[] = [];
function warmGate(env: NodeJS.ProcessEnv): WarmGate {
  const gate = new WarmGate(env, hooks);
  gates.push(gate);
  gate.fill();
  return gate;
}

function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return Object.freeze({ PATH: process.env.PATH, REC_DIR: rec, SITE: 'lab 1', TRICKY: ' a\\tb "$x" ', ...extra });
}

function spec(id: string, env: NodeJS.ProcessEnv, extra: Partial<HookSpec> = {}): HookSpec {
  return {
    path: join(hooks, 'dump'),
    stdin: '{"id":"same"}\n',
    env,
    commandEnv: { REBOOT_ID: 'rb-1', COMMAND_ID: id, XPU_ID: '', DEADLINE: '2030-01-01T00:00:00.000Z' },
    cwd: hooks,
    deadline: new Date(Date.now() + 30_000),
    maxOutputBytes: 65_536,
    killGraceMs: 500,
    ...extra,
  };
}

const seen = (id: string, what: string) => readFileSync(join(rec, `${id}.${what}`), 'utf8');

describe('warm gate', () => {
  afterAll(() => {
    for (const g of gates) g.close();
  });

  it.each([
    ['the agent started elsewhere (PWD names another directory)', () => ({ PWD: '/', OLDPWD: '/tmp' })],
    ['the agent started in the hooks directory through its symlink', () => ({ PWD: hooks })],
  ])('gives the hook the same env, cwd, stdin and process group as a cold spawn: %s', async (_, extra) => {
    const env = baseEnv(extra());
    const gate = warmGate(env);
    const gatePid = gate.pid!;
    expect(gatePid).toBeGreaterThan(0);
    const gateIdentity = identify(gatePid);
    const id = `w${gatePid}`;
    let journaled: ProcessIdentity | undefined;
    const warm = startHook({
      ...spec(id, env, { warm: gate }),
      onSpawn: (identity) => {
        journaled = identity;
        expect(existsSync(join(rec, `${id}.env`))).toBe(false); // the gate has not opened yet
      },
    });
    expect(warm.warm).toBe(true);
    expect(warm.pid).toBe(gatePid);
    expect(journaled).toEqual(gateIdentity); // the journal names the process that runs the hook
    expect(gate.pid).toBeUndefined(); // taken: never handed out twice
    const cold = startHook(spec(`c${gatePid}`, env));
    expect(cold.warm).toBe(false);
    const [w, c] = await Promise.all([warm.done, cold.done]);
    expect([w.status, w.exitCode, c.status, c.exitCode]).toEqual(['succeeded', 0, 'succeeded', 0]);

    for (const what of ['env', 'pwd', 'ls', 'stdin']) expect([what, seen(id, what)]).toEqual([what, seen(`c${gatePid}`, what)]);
    expect(seen(id, 'env')).toContain('SITE=lab 1\n');
    expect(seen(id, 'pwd')).toBe(`${real}\n`);
    expect(seen(id, 'stdin')).toBe('{"id":"same"}\n');
    // pid == process group == session: the hook's own group, the one the deadline kills.
    expect(seen(id, 'ids').trim()).toBe(`${gatePid} ${gatePid} ${gatePid}`);
    const coldPid = cold.pid!;
    expect(seen(`c${gatePid}`, 'ids').trim()).toBe(`${coldPid} ${coldPid} ${coldPid}`);
  });

  it('follows a hooks directory replaced after the gate started (it runs from the new one, env as cold)', async () => {
    // PWD names the hooks directory through its symlink: dash keeps such a PWD, and so must the gate after its cd.
    const env = baseEnv({ PWD: hooks, OLDPWD: '/tmp' });
    const gate = warmGate(env);
    const gatePid = gate.pid!;
    // What deployment tools do: the new directory moved into place, the old one moved away.
    const fresh = join(dir, 'hooks.new');
    mkdirSync(fresh);
    writeHook(fresh);
    writeFileSync(join(fresh, 'MARKER'), '');
    renameSync(real, join(dir, 'hooks.old'));
    renameSync(fresh, real);
    try {
      const warm = startHook(spec('replaced-w', env, { warm: gate }));
      const cold = startHook(spec('replaced-c', env));
      expect([warm.warm, warm.pid]).toEqual([true, gatePid]);
      expect((await warm.done).status).toBe('succeeded');
      expect((await cold.done).status).toBe('succeeded');
      expect(seen('replaced-w', 'ls')).toContain('MARKER');
      for (const what of ['env', 'pwd', 'ls']) expect([what, seen('replaced-w', what)]).toEqual([what, seen('replaced-c', what)]);
    } finally {
      rmSync(join(dir, 'hooks.old'), { recursive: true, force: true });
    }
  });

  it('spawns cold when a per-command value has a newline, and keeps the idle gate for the next command', async () => {
    const env = baseEnv();
    const gate = warmGate(env);
    const gatePid = gate.pid!;
    const run = startHook(spec('newline', env, { warm: gate, commandEnv: { COMMAND_ID: 'newline', NOTE: 'two\nlines' } }));
    expect(run.warm).toBe(false);
    expect(run.pid).not.toBe(gatePid);
    expect(await run.done).toMatchObject({ status: 'succeeded', output: 'two\nlines' });
    expect(gate.pid).toBe(gatePid);
    const next = startHook(spec('after-newline', env, { warm: gate }));
    expect([next.warm, next.pid]).toEqual([true, gatePid]);
    expect((await next.done).status).toBe('succeeded');
  });

  it('spawns cold when the idle gate died, whether or not Node has seen its exit yet', async () => {
    const env = baseEnv();
    const gate = warmGate(env);
    const first = gate.pid!;
    process.kill(first, 'SIGKILL');
    while (isAlive(first)); // synchronously: Node cannot have handled its SIGCHLD yet
    // Still handed out by Node's bookkeeping until its 'exit' is processed; /proc says it is gone.
    const racing = startHook(spec('dead-racing', env, { warm: gate }));
    expect(racing.warm).toBe(false);
    expect((await racing.done).status).toBe('succeeded');

    gate.fill();
    const second = gate.pid!;
    expect(second).not.toBe(first);
    process.kill(second, 'SIGKILL');
    await waitFor(() => gate.pid === undefined); // its exit seen: forgotten
    const run = startHook(spec('dead-seen', env, { warm: gate }));
    expect(run.warm).toBe(false);
    expect((await run.done).status).toBe('succeeded');
    expect(seen('dead-seen', 'stdin')).toBe('{"id":"same"}\n');
  });

  it('spawns cold for an env or cwd other than the gate was started with', () => {
    const env = baseEnv();
    const gate = warmGate(env);
    expect(gate.take({ path: '/x', cwd: hooks, env: { ...env } })).toBeNull();
    expect(gate.take({ path: '/x', cwd: '/', env })).toBeNull();
    expect(gate.take({ path: '/x', cwd: hooks, env, commandEnv: { 'NOT-A-NAME': '1' } })).toBeNull();
    expect(gate.take({ path: '/x\0', cwd: hooks, env })).toBeNull();
    expect(gate.pid).toBeGreaterThan(0);
    // A gate that cannot start (its hooks directory is gone) leaves nothing idle: the command spawns cold.
    const orphan = new WarmGate(env, join(dir, 'no-such-dir'));
    orphan.fill();
    expect(orphan.pid).toBeUndefined();
    expect(orphan.take({ path: '/x', cwd: join(dir, 'no-such-dir'), env })).toBeNull();
    expect(gateLines({ path: '/h/x', cwd: '/h', env: { PWD: '/p' }, commandEnv: { A: 'a b', B: '' } })).toBe(
      '/h/x\n/h\n/p\nA=a b\nB=\ngo\n',
    );
  });

  it('reports a hook that vanished after the check the same way as the cold gate (exec: not found)', async () => {
    const env = baseEnv();
    const gate = warmGate(env);
    const warm = startHook(spec('gone', env, { warm: gate, path: join(hooks, 'nope') }));
    const cold = startHook(spec('gone', env, { path: join(hooks, 'nope') }));
    expect(warm.warm).toBe(true);
    const [w, c] = await Promise.all([warm.done, cold.done]);
    for (const o of [w, c]) {
      expect(o.status).toBe('failed');
      expect(o.exitCode).toBe(127);
      expect(o.output).toMatch(new RegExp(`^hook exited with code 127\\n.*: 1: exec: ${join(hooks, 'nope')}: not found\\n$`));
    }
    expect(w.output).toContain(`${WARM_GATE_NAME}: 1: exec:`);
  });

  it('exits 125 without running anything on EOF, on a stray line, or when closed idle', async () => {
    const marker = join(rec, 'ran');
    writeFileSync(join(real, 'touch'), `#!/bin/sh\ntouch ${marker}\n`);
    chmodSync(join(real, 'touch'), 0o755);
    const gate = (input: string) => spawnSync('/bin/sh', ['-c', WARM_GATE_SCRIPT, WARM_GATE_NAME], { input, cwd: hooks, encoding: 'utf8' });
    const lines = gateLines({ path: join(hooks, 'touch'), cwd: hooks, env: {}, commandEnv: { A: '1' } })!;
    for (const cut of ['', lines.slice(0, 5), lines.replace('go\n', ''), lines.replace('go\n', 'go'), lines.replace('A=1', 'A1')]) {
      expect([cut, gate(cut).status]).toEqual([cut, 125]);
      expect(existsSync(marker)).toBe(false);
    }
    expect(gate(lines).status).toBe(0);
    expect(existsSync(marker)).toBe(true);

    const idle = warmGate(baseEnv());
    const pid = idle.pid!;
    idle.close();
    await waitFor(() => !isAlive(pid));
    idle.fill(); // closed for good: the agent is stopping
    expect(idle.pid).toBeUndefined();
  });
});
