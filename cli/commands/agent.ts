// `rebootctl agent`: the edge daemon's command line; resolves and validates the configuration, then starts the daemon.
import { mkdirSync } from 'node:fs';
import module from 'node:module';
import { join } from 'node:path';
import type { Command } from 'commander';
import { AGENT_OPTIONS } from '../../agent/options.ts';

export function registerAgentCommand(program: Command): void {
  const cmd = program
    .command('agent')
    .description(
      'run the edge agent: long-poll the server for commands and run their hooks (every option also from REBOOT_AGENT_* env or --config)',
    );
  for (const opt of AGENT_OPTIONS) cmd.option(opt.flag, `${opt.help} [env ${opt.env}]`);
  cmd.addHelpText(
    'after',
    '\nPrecedence: flag > env > config file > default. Exit codes: 0 stopped/done, 1 failure, 2 bad configuration, 3 token refused (401/403).',
  );
  cmd.action(async (flags: Record<string, unknown>) => {
    // Loaded here, not at the top: other rebootctl commands should not pay for zod.
    const { resolveAgentConfig, ConfigError } = await import('../../agent/config.ts');
    let config;
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
 * Node strips TypeScript with a WebAssembly compiler that stays resident (~17 MB). With the
 * compile cache, the agent's modules compiled here are reused by the re-executed daemon, which
 * then never loads that compiler.
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
