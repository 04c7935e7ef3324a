// Placeholder: the 'demo' command is being built.
import type { Command } from 'commander';

export function registerDemoCommand(program: Command): void {
  program.command('demo').description('(not built yet)').action(() => {
    console.error('rebootctl demo: not built yet');
    process.exit(2);
  });
}
