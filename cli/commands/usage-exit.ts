// Commander's own usage errors (unknown option, missing required option, unknown command) exit 1 by default; every
// rebootctl command exits 2 for usage and keeps 1 for a refusal or a failure (cli/program.ts sets it on the root).
import type { Command } from 'commander';

/** Exit code of a command line that could not be parsed: the same as a bad configuration of the agent. */
export const USAGE_EXIT = 2;

/** Makes the command's usage errors exit 2; help (exit 0) stays 0. Subcommands created afterwards inherit it. */
export function usageErrorsExit2(cmd: Command): Command {
  return cmd.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : USAGE_EXIT);
  });
}

/** A command line that parsed but does not make sense (two selectors, a count that is not a number, no token): exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A whole number of at least `min` from an option's text, or a UsageError naming the option. */
export function wholeNumber(text: string, option: string, min = 1): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < min)
    throw new UsageError(`${option} must be a whole number from ${min}, not '${text}'`);
  return n;
}

/** A number of seconds above 0 from an option's text, or a UsageError naming the option. */
export function positiveSeconds(text: string, option: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new UsageError(`${option} must be a number of seconds above 0, not '${text}'`);
  return n;
}

/** `--server` as an http(s) URL, or a UsageError. */
export function serverUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--server '${text}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--server must be an http(s) URL');
  return url;
}
