// Placeholder: the 'report' command is being built.
import type { Command } from 'commander';

export function registerReportCommand(program: Command): void {
  program.command('report').description('(not built yet)').action(() => {
    console.error('rebootctl report: not built yet');
    process.exit(2);
  });
}
