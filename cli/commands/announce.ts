// `rebootctl announce`: the in-band path (docs/identities.md). The xPU's agent posts `xpu.reboot.pending`
// for its own xPU; the notice goes through the same model as a BMC's and joins it when both arrive.
import type { Command } from 'commander';
import { parseAgentId } from '../../lambdas/core/inventory.ts';
import { rebootIdFor } from '../../lambdas/core/reboot.ts';
import {
  Client,
  EXIT,
  TimedOut,
  UsageError,
  findReboot,
  resolveToken,
  seconds,
  sleep,
  stableEventId,
  type ParticipantOpts,
} from './participant.ts';
import { usageErrorsExit2 } from './usage-exit.ts';

interface AnnounceOpts extends ParticipantOpts {
  reason: string;
  notice?: string;
  id?: string;
  wait: string;
  json?: boolean;
}

export async function announce(opts: AnnounceOpts, io = { out: console.log, err: console.error }): Promise<number> {
  try {
    const { node, xpu } = parseAgentId(opts.agent);
    if (!xpu) throw new UsageError(`--agent must name an xPU agent (node.xpu), not ${opts.agent}`);
    const token = resolveToken(opts);
    const notice = opts.notice === undefined ? undefined : seconds(opts.notice, '--notice');
    const wait = seconds(opts.wait, '--wait');
    const id = opts.id ?? stableEventId(`announce-${xpu}`, [opts.agent, opts.reason, String(notice ?? '')]);
    const client = new Client(opts.server, token, Date.now() + wait * 1000);
    await client.request('POST', '/v1/events', {
      id,
      type: 'xpu.reboot.pending',
      node,
      xpu,
      data: { reason: opts.reason, ...(notice !== undefined ? { noticeSeconds: notice } : {}) },
    });
    // The event is queued; the reboot it starts (or joins) shows once the coordinator took it in.
    const own = rebootIdFor('xpu', `native:${node}:${id}`);
    for (;;) {
      const r = await findReboot(client, node, id, own, (r) => r.kind === 'xpu' && r.xpu === xpu);
      if (r) {
        if (opts.json) io.out(JSON.stringify({ rebootId: r.id, deadline: r.deadline, status: r.status, eventId: id }));
        else io.out(`reboot ${r.id} deadline ${r.deadline ?? '-'} (${r.status}; event ${id})`);
        return EXIT.ok;
      }
      if (Date.now() + 300 > client.until)
        throw new TimedOut(`the notice was accepted (event ${id}) but no reboot of ${opts.agent} showed within ${wait}s`);
      await sleep(300);
    }
  } catch (err) {
    io.err(`rebootctl announce: ${(err as Error).message}`);
    if (err instanceof UsageError) return EXIT.usage;
    if (err instanceof TimedOut) return EXIT.timedOut;
    return EXIT.error;
  }
}

export function registerAnnounceCommand(program: Command): void {
  usageErrorsExit2(program.command('announce'))
    .description("the xPU announces its own reboot (in-band): posts xpu.reboot.pending, prints the reboot's id and deadline")
    .requiredOption('--server <url>', 'the coordinator API')
    .requiredOption('--agent <node.xpu>', 'this xPU agent, e.g. node-a.dpu0')
    .option('--token <token>', "the xPU's agent token (default: env REBOOT_AGENT_TOKEN)")
    .option('--token-file <file>', 'read the token from this file (default: env REBOOT_AGENT_TOKEN_FILE)')
    .requiredOption('--reason <text>', 'why the xPU reboots (shown in the reboot and the report)')
    .option('--notice <seconds>', "notice to give; capped at the policy's noticeSeconds")
    .option('--id <event-id>', 'event id (default: stable for this boot, reason and notice, so a rerun is deduped)')
    .option('--wait <seconds>', 'how long to wait for the coordinator and the reboot to show', '30')
    .option('--json', 'print {"rebootId","deadline","status","eventId"}')
    .action(async (opts: AnnounceOpts) => {
      process.exitCode = await announce(opts);
    });
}
