// rebootctl's command tree: each sub-command lives in cli/commands and registers itself here. Built by a
// function so that tests can walk the tree commander knows (test/integration/cli-usage-exit.test.ts).
import { Command } from 'commander';
import { registerAgentCommand } from './commands/agent.ts';
import { registerBmcCommands } from './commands/bmc.ts';
import { registerReportCommand } from './commands/report.ts';
import { registerDlqCommands } from './commands/dlq.ts';
import { registerDemoCommand } from './commands/demo.ts';
import { registerInventoryCommands } from './commands/inventory.ts';
import { registerRebootsCommands } from './commands/reboots.ts';
import { registerAnnounceCommand } from './commands/announce.ts';
import { registerHostRebootCommand } from './commands/host-reboot.ts';
import { registerRolloutCommands } from './commands/rollout.ts';
import { usageErrorsExit2 } from './commands/usage-exit.ts';

export function buildProgram(): Command {
  const program = new Command('rebootctl')
    .description('Coordinates xPU (DPU/IPU/SmartNIC) and host reboots: operator CLI and edge agent')
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nExit codes (every command): 0 done, 1 failed or refused, 2 usage (a command line that does not parse, a bad value);\nsome commands add their own (see --help of agent, host-reboot, bmc).',
    );
  // Before any sub-command is added: `.command()` copies the override into each, at every level.
  usageErrorsExit2(program);
  registerAgentCommand(program);
  registerBmcCommands(program);
  registerReportCommand(program);
  registerDlqCommands(program);
  registerDemoCommand(program);
  registerInventoryCommands(program);
  registerRebootsCommands(program);
  registerAnnounceCommand(program);
  registerHostRebootCommand(program);
  registerRolloutCommands(program);
  return program;
}
