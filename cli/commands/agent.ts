// `rebootctl agent`: the edge daemon's command line; resolves and validates the configuration, then starts the daemon.
import { mkdirSync } from 'node:fs';
import module from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { AGENT_OPTIONS } from '../../agent/options.ts';
import { readTokenFile, TokenOptionError } from './token-option.ts';
import { usageErrorsExit2 } from './usage-exit.ts';

export function registerAgentCommand(program: Command): void {
  const cmd = program
    .command('agent')
    .description(
      'run the edge agent: long-poll the server for commands and run their hooks (every option also from REBOOT_AGENT_* env or --config)',
    );
  usageErrorsExit2(cmd); // before `check` is added: it inherits the override
  for (const opt of AGENT_OPTIONS) cmd.option(opt.flag, `${opt.help} [env ${opt.env}]`);
  cmd.addHelpText(
    'after',
    '\nPrecedence: flag > env > config file > default. Exit codes: 0 stopped/done, 1 failure, 2 bad configuration, 3 token refused (401/403).',
  );
  registerAgentCheck(program, cmd);
  cmd.action(async (flags: Record<string, unknown>) => {
    // Loaded here, not at the top: other rebootctl commands should not pay for zod.
    const { resolveAgentConfig, ConfigError } = await import('../../agent/config.ts');
    let config: Awaited<ReturnType<typeof resolveAgentConfig>>;
    try {
      config = await resolveAgentConfig({ flags, env: process.env });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`rebootctl agent: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    enableCompileCache(config.state);
    const { startDaemon } = await import('../../agent/daemon.ts');
    await startDaemon(config);
  });
}

/**
 * Node strips TypeScript with a WebAssembly compiler that stays resident (~17 MB). The compile
 * cache keeps it out of the re-executed daemon, which inherits NODE_COMPILE_CACHE from here. Its
 * V8 flags key a cache of their own (agent/daemon.ts): its first start fills it and starts again.
 */
function enableCompileCache(stateRoot: string): void {
  if (process.env.NODE_COMPILE_CACHE) return; // node already enabled it at startup
  const dir = join(stateRoot, '.node-compile-cache');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const res = module.enableCompileCache(dir);
    if (res.directory) {
      process.env.NODE_COMPILE_CACHE = res.directory;
      process.env.REBOOT_AGENT_OWN_COMPILE_CACHE = '1';
    }
  } catch {
    // only a memory optimisation
  }
}

interface CheckFlags {
  agent?: string;
  hooks?: string;
  server?: string;
  tokenFile?: string;
  caFile?: string;
  clientCert?: string;
  clientKey?: string;
  config?: string;
  allowOffline?: boolean;
  hookSelfCheck?: boolean;
}

/**
 * `rebootctl agent check`: the unit's ExecStartPre. Exit 0 when the role's required hooks are
 * present, executable, and writable only by root or the agent's user, and (with --server) the
 * server accepts the token; else 1, one line per problem.
 */
function registerAgentCheck(program: Command, agent: Command): void {
  // `agent` has options of its own (--server, --agent...): without positional options they would
  // be taken by `agent` instead of `agent check`.
  program.enablePositionalOptions();
  agent.enablePositionalOptions();
  agent
    .command('check')
    .description(
      "check the agent's set-up: required hooks present, executable, not group/world-writable, owned by root or the agent's user; with --server, the token",
    )
    .option('--agent <id>', 'the agent id: node-a (host) or node-a.dpu0 (xPU) [env REBOOT_AGENT_ID]')
    .option('--hooks <dir>', 'the hooks directory [env REBOOT_AGENT_HOOKS]')
    .option('--server <url>', 'also check the token against this server [env REBOOT_AGENT_SERVER]')
    .option('--token-file <file>', 'the agent token [env REBOOT_AGENT_TOKEN_FILE]')
    .option('--ca-file <file>', 'PEM CA bundle for the server certificate [env REBOOT_AGENT_CA_FILE]')
    .option('--client-cert <file>', 'PEM client certificate [env REBOOT_AGENT_CLIENT_CERT]')
    .option('--client-key <file>', 'PEM client key [env REBOOT_AGENT_CLIENT_KEY]')
    .option('--config <file>', "the agent's config file; flags and env win over it [env REBOOT_AGENT_CONFIG]")
    .option('--allow-offline', 'an unreachable server is a warning, not a failure (the agent retries on its own)')
    .option(
      '--hook-self-check',
      'also run each required hook with REBOOT_HOOK_CHECK=1 (tools, card, lockdown); ONLY for hooks that support it, like the examples',
    )
    .action(async (flags: CheckFlags) => {
      process.exitCode = await runAgentCheck(flags, process.env);
    });
}

export async function runAgentCheck(flags: CheckFlags, env: NodeJS.ProcessEnv): Promise<number> {
  const say = (line: string) => process.stderr.write(`rebootctl agent check: ${line}\n`);
  const { isLoopback, readConfigFile, ConfigError } = await import('../../agent/config.ts');
  // The agent's own precedence (flag > env > config file): the unit runs this check as ExecStartPre
  // with the agent's environment, which may name a config file holding everything.
  const configPath = flags.config ?? (env.REBOOT_AGENT_CONFIG || undefined);
  let file: { path: string; values: Record<string, unknown> } | undefined;
  if (configPath) {
    try {
      file = await readConfigFile(resolve(configPath));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      say(err.message);
      return 2;
    }
  }
  const fromFile = (key: string, isPath: boolean) => {
    const v = file?.values[key];
    if (v === undefined || v === null) return undefined;
    return isPath ? resolve(dirname(file!.path), String(v)) : String(v);
  };
  const pick = (v: string | undefined, name: string, key: string, isPath = false) => v ?? (env[name] || undefined) ?? fromFile(key, isPath);
  const agentId = pick(flags.agent, 'REBOOT_AGENT_ID', 'agent');
  const hooks = pick(flags.hooks, 'REBOOT_AGENT_HOOKS', 'hooks', true);
  const server = pick(flags.server, 'REBOOT_AGENT_SERVER', 'server');
  const tokenFile = pick(flags.tokenFile, 'REBOOT_AGENT_TOKEN_FILE', 'tokenFile', true);
  if (!agentId || !hooks) {
    say('--agent and --hooks are required (or REBOOT_AGENT_ID and REBOOT_AGENT_HOOKS, or in the --config file)');
    return 2;
  }
  const { runCheck } = await import('../../agent/check.ts');
  const problems: string[] = [];
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(agentId))
    problems.push(`agent id ${JSON.stringify(agentId)} is not like node-a or node-a.dpu0`);
  let token: string | undefined;
  if (server) {
    let url: URL | undefined;
    try {
      url = new URL(server);
    } catch {
      problems.push(`--server ${server} is not a URL`);
    }
    if (url && url.protocol === 'http:' && !isLoopback(url.hostname))
      problems.push(`--server ${server}: http:// is allowed only to a loopback address; use https://`);
    else if (url && url.protocol !== 'http:' && url.protocol !== 'https:') problems.push(`--server ${server} is not an http(s) URL`);
    if (!tokenFile) problems.push('--server needs --token-file (or REBOOT_AGENT_TOKEN_FILE)');
    else {
      try {
        token = readTokenFile(tokenFile);
      } catch (err) {
        if (!(err instanceof TokenOptionError)) throw err;
        problems.push(err.message);
      }
    }
  }
  const report = await runCheck({
    agent: agentId,
    hooks,
    server: problems.length ? undefined : server,
    token,
    tokenFile,
    tls: {
      caFile: pick(flags.caFile, 'REBOOT_AGENT_CA_FILE', 'caFile', true),
      clientCert: pick(flags.clientCert, 'REBOOT_AGENT_CLIENT_CERT', 'clientCert', true),
      clientKey: pick(flags.clientKey, 'REBOOT_AGENT_CLIENT_KEY', 'clientKey', true),
    },
    allowOffline: flags.allowOffline,
    hookSelfCheck: flags.hookSelfCheck,
    env,
  });
  problems.push(...report.problems);
  for (const w of report.warnings) say(`warning: ${w}`);
  for (const p of problems) say(`problem: ${p}`);
  if (problems.length) {
    say(`${problems.length} problem(s): the agent must not start like this`);
    return 1;
  }
  for (const line of report.ok) process.stdout.write(`ok: ${line}\n`);
  return 0;
}
