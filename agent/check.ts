// `rebootctl agent check`: what must hold before the agent may run (the unit's ExecStartPre): hooks, their modes and owners, the token.
import { spawn } from 'node:child_process';
import { readdirSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { createHttpClient, type TlsFiles } from './http.ts';
import { describeError } from './log.ts';
import { REQUIRED_HOOKS, roleOf } from './roles.ts';
import { unknownAgentReason } from './unknown-agent.ts';

export interface CheckOptions {
  agent: string;
  hooks: string;
  /** Owners a hook may have besides root: the agent's user (default: this process's uid). */
  uid?: number;
  server?: string;
  token?: string;
  tls?: TlsFiles;
  /** The token file, to check its mode. */
  tokenFile?: string;
  /** An unreachable server is a warning, not a problem (the agent retries on its own). */
  allowOffline?: boolean;
  timeoutMs?: number;
  /**
   * Also run each required hook with REBOOT_HOOK_CHECK=1 (tools, card identity, lockdown): only
   * for hooks that support it (the examples do); any other hook would do its real work.
   */
  hookSelfCheck?: boolean;
  /** The environment the self-checks run in (default process.env, without any token). */
  env?: NodeJS.ProcessEnv;
}

export interface CheckReport {
  problems: string[];
  warnings: string[];
  ok: string[];
}

/** Owned by root or the agent's user, and writable by nobody else. */
function modeProblems(what: string, path: string, st: Stats, uid: number): string[] {
  const out: string[] = [];
  if (st.uid !== 0 && st.uid !== uid) out.push(`${what} ${path} is owned by uid ${st.uid}, not by root or the agent's user (uid ${uid})`);
  if (st.mode & 0o022)
    out.push(
      `${what} ${path} is ${st.mode & 0o020 ? 'group' : 'world'}-writable (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}): chmod go-w`,
    );
  return out;
}

export function checkHooks(opts: Pick<CheckOptions, 'agent' | 'hooks' | 'uid'>): CheckReport {
  const report: CheckReport = { problems: [], warnings: [], ok: [] };
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  const role = roleOf(opts.agent);
  let dir: Stats;
  try {
    dir = statSync(opts.hooks);
  } catch (err) {
    report.problems.push(`hooks directory ${opts.hooks}: ${describeError(err)}`);
    return report;
  }
  if (!dir.isDirectory()) {
    report.problems.push(`hooks directory ${opts.hooks} is not a directory`);
    return report;
  }
  // Whoever may write the directory may replace any hook in it.
  report.problems.push(...modeProblems('hooks directory', opts.hooks, dir, uid));
  for (const type of REQUIRED_HOOKS[role]) {
    const path = join(opts.hooks, type);
    let st: Stats;
    try {
      st = statSync(path);
    } catch {
      report.problems.push(`required hook ${type} is missing (${path}); a ${role} agent needs ${REQUIRED_HOOKS[role].join(', ')}`);
      continue;
    }
    if (!st.isFile()) report.problems.push(`required hook ${type} (${path}) is not a regular file`);
    else if (!(st.mode & 0o111)) report.problems.push(`required hook ${type} (${path}) is not executable: chmod +x`);
    else report.ok.push(`required hook ${type} present`);
  }
  // Every file in the directory: hooks, and what they source (the examples' _lib.sh, hooks.env).
  for (const name of readdirSync(opts.hooks)) {
    const path = join(opts.hooks, name);
    try {
      const st = statSync(path);
      if (st.isFile()) report.problems.push(...modeProblems('hook file', path, st, uid));
    } catch (err) {
      report.warnings.push(`${path}: ${describeError(err)}`);
    }
  }
  return report;
}

/** Runs one hook in self-check mode: exit 0 within the timeout, else its output names the problem. */
function selfCheck(path: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(path, [], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let output = '';
    const take = (c: Buffer) => (output = (output + c.toString('utf8')).slice(-2000));
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.stdin.on('error', () => {});
    child.stdin.end('{}\n');
    const timer = setTimeout(() => {
      output += `\n(no answer within ${timeoutMs / 1000} s)`;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, output: err.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ ok: code === 0, output: output.trim() });
    });
  });
}

/** Hooks, and with a server the token: an authenticated poll that returns at once (wait=0). */
export async function runCheck(opts: CheckOptions): Promise<CheckReport> {
  const report = checkHooks(opts);
  if (opts.hookSelfCheck) {
    const { REBOOT_AGENT_TOKEN: _t, ...base } = opts.env ?? process.env;
    for (const type of REQUIRED_HOOKS[roleOf(opts.agent)]) {
      const path = join(opts.hooks, type);
      if (!report.ok.includes(`required hook ${type} present`)) continue;
      const res = await selfCheck(path, { ...base, REBOOT_HOOK_CHECK: '1', REBOOT_AGENT_ID: opts.agent, COMMAND_TYPE: type }, 20_000);
      if (res.ok) report.ok.push(`hook ${type} self-check passed${res.output ? `: ${res.output.split('\n').join('; ')}` : ''}`);
      else report.problems.push(`hook ${type} self-check failed: ${res.output || 'no output'}`);
    }
  }
  if (opts.tokenFile) {
    try {
      const st = statSync(opts.tokenFile);
      if (st.mode & 0o077)
        report.problems.push(
          `token file ${opts.tokenFile} is readable or writable by group or others (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}): chmod 0600`,
        );
    } catch (err) {
      report.problems.push(`token file ${opts.tokenFile}: ${describeError(err)}`);
    }
  }
  if (!opts.server) return report;
  if (!opts.token) {
    report.problems.push('a server was given but no token (--token-file)');
    return report;
  }
  const http = createHttpClient(opts.server, opts.token, `rebootctl-agent-check (${opts.agent})`, opts.tls);
  try {
    // A read the agent does anyway: commands are handed out until their result is posted, so
    // looking at them changes nothing on the server.
    const res = await http.request('GET', `v1/agents/${encodeURIComponent(opts.agent)}/commands?wait=0`, {
      timeoutMs: opts.timeoutMs ?? 10_000,
    });
    if (res.status === 200) report.ok.push(`the server ${opts.server} accepts the token of agent ${opts.agent}`);
    else if (res.status === 401) report.problems.push(`the server ${opts.server} does not accept the token (401)`);
    else if (res.status === 403)
      report.problems.push(
        `the server ${opts.server} refuses agent ${opts.agent} with this token (403): the token belongs to another node, or this agent id is not allowed`,
      );
    else if (res.status === 404) report.problems.push(unknownAgentReason(opts.agent, opts.server, res));
    else
      (opts.allowOffline ? report.warnings : report.problems).push(
        `the server ${opts.server} answered HTTP ${res.status}; the token could not be checked`,
      );
  } catch (err) {
    (opts.allowOffline ? report.warnings : report.problems).push(
      `the server ${opts.server} is unreachable (${describeError(err)}); the token could not be checked`,
    );
  } finally {
    http.close();
  }
  return report;
}
