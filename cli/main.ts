// rebootctl's composition root: each sub-command lives in cli/commands and registers itself here.
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

const program = new Command('rebootctl')
  .description('Coordinates xPU (DPU/IPU/SmartNIC) and host reboots: operator CLI and edge agent')
  .showHelpAfterError();

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

await program.parseAsync(process.argv);
