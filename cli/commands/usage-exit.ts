// Commander's own usage errors (unknown option, missing required option) exit 1 by default; the edge kit's
// commands (agent, agent check, announce, host-reboot) document 2 for usage and keep 1 for a refusal or a failure.
import type { Command } from 'commander';

/** Exit code of a command line that could not be parsed: the same as a bad configuration of the agent. */
export const USAGE_EXIT = 2;

/** Makes the command's usage errors exit 2; help (exit 0) stays 0. Subcommands created afterwards inherit it. */
export function usageErrorsExit2(cmd: Command): Command {
  return cmd.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : USAGE_EXIT);
  });
}
