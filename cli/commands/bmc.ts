// Placeholder: the 'bmc' command is being built.
import type { Command } from 'commander';

export function registerBmcCommands(program: Command): void {
  program.command('bmc').description('(not built yet)').action(() => {
    console.error('rebootctl bmc: not built yet');
    process.exit(2);
  });
}
