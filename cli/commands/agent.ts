// Placeholder: the 'agent' command is being built.
import type { Command } from 'commander';

export function registerAgentCommand(program: Command): void {
  program.command('agent').description('(not built yet)').action(() => {
    console.error('rebootctl agent: not built yet');
    process.exit(2);
  });
}
