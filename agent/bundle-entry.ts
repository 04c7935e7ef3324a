// Entry of the self-contained agent (`npm run package:agent` → dist/agent/rebootctl-agent.mjs): `agent`, `agent check`,
// and `announce` / `host-reboot` for hooks and shutdown gates; no server code. Also the lean daemon the CLI re-executes into.
import { CONFIG_ENV, daemonMain } from './daemon.ts';

if (process.env[CONFIG_ENV]) {
  // The re-executed daemon: commander and zod are bundled in this file too, but as lazily
  // initialised modules they are never evaluated on this path.
  await daemonMain();
} else {
  const { Command } = await import('commander');
  const { registerAgentCommand } = await import('../cli/commands/agent.ts');
  // What hooks and shutdown gates on the same machine call: announce (reboot-xpu) and host-reboot.
  const { registerAnnounceCommand } = await import('../cli/commands/announce.ts');
  const { registerHostRebootCommand } = await import('../cli/commands/host-reboot.ts');
  const { usageErrorsExit2 } = await import('../cli/commands/usage-exit.ts');
  const program = new Command('rebootctl-agent')
    .description('the xPU reboot coordinator edge agent (run: rebootctl-agent.mjs agent --help)')
    .showHelpAfterError();
  // As rebootctl's root (cli/program.ts): before the sub-commands, so each inherits exit 2 for usage.
  usageErrorsExit2(program);
  registerAgentCommand(program);
  registerAnnounceCommand(program);
  registerHostRebootCommand(program);
  await program.parseAsync(process.argv);
}
