// Placeholder: the 'dlq' command is being built.
import type { Command } from 'commander';

export function registerDlqCommands(program: Command): void {
  program.command('dlq').description('(not built yet)').action(() => {
    console.error('rebootctl dlq: not built yet');
    process.exit(2);
  });
}
