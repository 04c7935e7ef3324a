// `--token` and `--token-file` for every command that sends a bearer token: one helper, so each reads the file the same way.
import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';

export interface TokenOptions {
  token?: string;
  tokenFile?: string;
}

/** A bad --token/--token-file combination, or a token file that cannot be read; the message says which. */
export class TokenOptionError extends Error {
  override readonly name = 'TokenOptionError';
}

/**
 * Adds `--token <token>` and `--token-file <file>`. A flag shows in `ps` and shell history, and an
 * environment variable in /proc/PID/environ; a file (a systemd credential, a 0600 file) is in neither.
 */
export function addTokenOptions(cmd: Command, what = 'operator token', envVar = 'REBOOT_OPERATOR_TOKEN'): Command {
  return cmd
    .option('--token <token>', `${what} (default: $${envVar}; a flag shows in ps: prefer --token-file)`)
    .option(
      '--token-file <file>',
      `read the ${what} from this file (e.g. a systemd credential): then it is in no command line or environment`,
    );
}

/** The token from --token-file, --token or the env variable (in that order); undefined when none is given. */
export function readTokenOption(
  opts: TokenOptions,
  env: NodeJS.ProcessEnv = process.env,
  envVar = 'REBOOT_OPERATOR_TOKEN',
): string | undefined {
  if (opts.token !== undefined && opts.tokenFile !== undefined) throw new TokenOptionError('give either --token or --token-file, not both');
  if (opts.tokenFile !== undefined) return readTokenFile(opts.tokenFile);
  return opts.token ?? (env[envVar] || undefined);
}

/** Reads a token file: trimmed, non-empty, a regular file. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    if (!statSync(path).isFile()) throw new Error('not a regular file');
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new TokenOptionError(`cannot read the token file ${path}: ${(err as Error).message}`);
  }
  if (!text) throw new TokenOptionError(`the token file ${path} is empty`);
  if (/\s/.test(text)) throw new TokenOptionError(`the token file ${path} holds more than one word`);
  return text;
}
