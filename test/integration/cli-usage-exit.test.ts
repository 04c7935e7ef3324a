// Every `rebootctl` command exits 2 on a usage error and says so on stderr with its usage. The commands are
// not listed here: the test walks the tree commander builds (cli/program.ts), so a command added later is
// checked too. Real processes (`node cli/rebootctl.js`), no server: nothing here gets as far as a request.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../cli/program.ts';
import { childEnv, NODE, ROOT } from '../support/stack.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function rebootctl(args: string[]): Promise<Run> {
  return new Promise((res) => {
    execFile(
      NODE,
      [join(ROOT, 'cli/rebootctl.js'), ...args],
      // No token in the environment: a usage check must not depend on one.
      { cwd: ROOT, env: childEnv({ REBOOT_OPERATOR_TOKEN: '', REBOOT_AGENT_TOKEN: '' }), timeout: 30_000 },
      (err, stdout, stderr) => res({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

/** Runs the cases two at a time (the machine is shared). */
async function runAll(cases: string[][]): Promise<Run[]> {
  const out: Run[] = new Array(cases.length);
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const i = next++;
      out[i] = await rebootctl(cases[i]);
    }
  };
  await Promise.all([worker(), worker()]);
  return out;
}

/** Every command under `cmd`, with the words that name it (`['rollout', 'start']`); the root is `[]`. */
function walk(cmd: Command, path: string[] = []): Array<{ path: string[]; cmd: Command }> {
  return [{ path, cmd }, ...cmd.commands.flatMap((c) => walk(c, [...path, c.name()]))];
}

/** A value for each required argument, and each mandatory option with a value: what gets a command line past them. */
function filled(cmd: Command): { args: string[]; options: string[] } {
  const args = cmd.registeredArguments.filter((a) => a.required).map(() => 'x');
  const options = cmd.options.filter((o) => o.mandatory).flatMap((o) => (o.required || o.optional ? [o.long!, 'x'] : [o.long!]));
  return { args, options };
}

const USAGE_ERROR = /^error: (unknown option|unknown command|required option|missing required argument|too many arguments)/m;

describe('rebootctl usage errors exit 2 on every command', () => {
  const commands = walk(buildProgram());

  it('the walk sees the whole tree (a guard: an empty walk would check nothing)', () => {
    const names = commands.map((c) => c.path.join(' '));
    for (const known of ['', 'agent', 'agent check', 'bmc subscribe', 'bmc check', 'dlq list', 'reboots show', 'rollout start', 'status'])
      expect(names).toContain(known);
    expect(names.length).toBeGreaterThanOrEqual(20);
  });

  it('an unknown option, a missing required option or argument, an unknown sub-command: exit 2, the error and the usage on stderr', async () => {
    const cases: Array<{ args: string[]; error: RegExp }> = [];
    for (const { path, cmd } of commands) {
      const { args, options } = filled(cmd);
      // Everything required given, plus an option no command has: commander's unknown option.
      cases.push({ args: [...path, ...args, ...options, '--no-such-option'], error: /^error: unknown option '--no-such-option'/m });
      // The last mandatory option left out (commander names the first one missing; one process per command is enough).
      const mandatory = cmd.options.filter((o) => o.mandatory);
      const missing = mandatory.at(-1);
      if (missing) {
        const rest = mandatory.slice(0, -1).flatMap((o) => [o.long!, 'x']);
        cases.push({
          args: [...path, ...args, ...rest],
          error: new RegExp(`^error: required option '${missing.flags}' not specified`, 'm'),
        });
      }
      // Required arguments left out.
      if (args.length) cases.push({ args: [...path, ...options], error: /^error: missing required argument/m });
      // A group: a sub-command it does not have.
      if (cmd.commands.length) cases.push({ args: [...path, 'no-such-command'], error: USAGE_ERROR });
    }
    const results = await runAll(cases.map((c) => c.args));
    const wrong = cases
      .map((c, i) => ({ args: c.args.join(' '), ...results[i], error: c.error }))
      .filter((r) => r.code !== 2 || !r.error.test(r.stderr) || !/^Usage: rebootctl/m.test(r.stderr) || r.stdout !== '')
      .map((r) => ({ args: r.args, code: r.code, stderr: r.stderr.split('\n').slice(0, 3).join(' | ') }));
    expect(wrong).toEqual([]);
  }, 300_000);

  it('a command line that parses but makes no sense is a usage error too (2), before any request', async () => {
    const server = ['--server', 'http://127.0.0.1:9', '--token', 't'];
    const cases = [
      ['rollout', 'start', ...server, '--max-unavailable', '1', '--reason', 'r', '--node', 'a', '--rack', 'b'],
      ['rollout', 'start', ...server, '--max-unavailable', 'two', '--reason', 'r'],
      ['rollout', 'start', ...server, '--max-unavailable', '1', '--reason', 'r', '--max-failures', '0'],
      ['rollout', 'status', 'ro-1', ...server, '--watch', '--interval', 'soon'],
      ['rollout', 'list', '--server', 'not-a-url', '--token', 't'],
      ['rollout', 'list', '--server', 'http://127.0.0.1:9'], // no token anywhere
      ['reboots', 'list', ...server, '--limit', '0'],
      ['reboots', 'list', '--server', 'ftp://host', '--token', 't'],
      ['reboots', 'show', 'xr-1', '--server', 'http://127.0.0.1:9', '--token', 't', '--token-file', '/nonexistent'],
      ['dlq', 'list', ...server, '--limit', '500'],
      ['report', ...server, '--from', '2026-01-02', '--to', '2026-01-01'],
    ];
    const results = await runAll(cases);
    const wrong = cases
      .map((args, i) => ({ args: args.join(' '), code: results[i].code, stderr: results[i].stderr.trim() }))
      .filter((r) => r.code !== 2 || r.stderr === '' || /cannot reach/.test(r.stderr));
    expect(wrong).toEqual([]);
  }, 120_000);

  it('rollout and status read their token like every other command: a bad or missing one is a usage error, never sent again', async () => {
    const start = ['rollout', 'start', '--server', 'http://127.0.0.1:9', '--max-unavailable', '1', '--reason', 'r'];
    const cases = [
      start, // no token anywhere: nothing was sent, so there is nothing to send again
      [...start, '--token-file', '/nonexistent'],
      ['rollout', 'list', '--server', 'http://127.0.0.1:9', '--token-file', '/nonexistent'],
      ['status', '--server', 'http://127.0.0.1:9', '--token', 't', '--token-file', '/nonexistent'],
    ];
    const results = await runAll(cases);
    expect(results.map((r) => r.code)).toEqual([2, 2, 2, 2]);
    expect(results.filter((r) => /sending it again|^rebootctl [a-z ]+: ENOENT/m.test(r.stderr)).map((r) => r.stderr)).toEqual([]);
    expect(results[0].stderr).toMatch(/a token is needed/);
    expect(results[1].stderr).toMatch(/cannot read the token file \/nonexistent/);
    expect(results[3].stderr).toMatch(/either --token or --token-file/);
  }, 60_000);

  it('help is not an error: exit 0, on stdout, and it names the exit codes', async () => {
    const [root, leaf] = await runAll([['--help'], ['rollout', 'start', '--help']]);
    expect(root.code).toBe(0);
    expect(root.stdout).toMatch(/Exit codes \(every command\): 0 .*, 1 .*, 2 usage/);
    expect(leaf.code).toBe(0);
    expect(leaf.stdout).toMatch(/^Usage: rebootctl rollout start/m);
  });
});
