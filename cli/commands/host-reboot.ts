// `rebootctl host-reboot`: what a host's shutdown hook calls (docs/identities.md). Posts
// `host.reboot.requested` and waits until every xPU freed the host context (exit 0), the reboot is
// denied (3, the reason on stderr) or --wait runs out (4).
import { randomUUID } from 'node:crypto';
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
  type ParticipantOpts,
  type RebootView,
} from './participant.ts';
import { usageErrorsExit2 } from './usage-exit.ts';

interface HostRebootOpts extends ParticipantOpts {
  method: string;
  wait: string;
  id?: string;
  reason?: string;
}

const METHODS = ['shell', 'ipmi', 'perst'];
/** Statuses a host reboot reaches only after its free step: the coordinator no longer waits for xPUs. */
const PAST_FREE = new Set(['rebooting', 'recovering', 'completed', 'failed']);
const POLL_MS = 300;

type Verdict = { exit: number; message: string; stream: 'out' | 'err' } | undefined;

/** What the reboot's state means for the shutdown waiting on it; undefined while it must wait on. */
export function verdict(r: RebootView): Verdict {
  if (r.status === 'denied')
    return { exit: EXIT.denied, message: `host reboot ${r.id} denied: ${r.denyReason ?? 'denied by policy'}`, stream: 'err' };
  if (r.status === 'cancelled')
    return { exit: EXIT.denied, message: `host reboot ${r.id} was cancelled${r.cancelReason ? `: ${r.cancelReason}` : ''}`, stream: 'err' };
  const frees = Object.values(r.commands ?? {}).filter((c) => c.type === 'free-host-context');
  const done = (c: { status: string }) => c.status === 'succeeded' || c.status === 'skipped';
  const final = (c: { status: string }) => ['succeeded', 'skipped', 'failed', 'timed-out'].includes(c.status);
  if (frees.length > 0 && frees.every(done)) {
    return {
      exit: EXIT.ok,
      message: `host reboot ${r.id} allowed: ${frees.map((c) => c.agent).join(', ')} freed the host context`,
      stream: 'out',
    };
  }
  if (frees.length > 0 && frees.every(final)) {
    // The coordinator lets the host reboot anyway; the shutdown may go on, but not as "freed".
    const bad = frees.filter((c) => !done(c)).map((c) => `${c.agent} ${c.status}`);
    return { exit: EXIT.timedOut, message: `host reboot ${r.id}: not every xPU freed the host context (${bad.join(', ')})`, stream: 'err' };
  }
  if (frees.length === 0 && PAST_FREE.has(r.status))
    return { exit: EXIT.ok, message: `host reboot ${r.id} allowed: no xPU had to free the host context`, stream: 'out' };
  return undefined;
}

export async function hostReboot(opts: HostRebootOpts, io = { out: console.log, err: console.error }): Promise<number> {
  try {
    const { node, xpu } = parseAgentId(opts.agent);
    if (xpu) throw new UsageError(`--agent must name the host agent (the node id), not the xPU agent ${opts.agent}`);
    if (!METHODS.includes(opts.method)) throw new UsageError(`--method must be one of ${METHODS.join(', ')}`);
    const token = resolveToken(opts);
    const wait = seconds(opts.wait, '--wait');
    // One id per run: retries within it are deduped; a later run (after a denial) is a new request.
    const id = opts.id ?? `host-reboot-${node}-${randomUUID()}`;
    const client = new Client(opts.server, token, Date.now() + wait * 1000);
    await client.request('POST', '/v1/events', {
      id,
      type: 'host.reboot.requested',
      node,
      data: { method: opts.method, ...(opts.reason ? { reason: opts.reason } : {}) },
    });
    const own = rebootIdFor('host', `native:${node}:${id}`);
    let last: RebootView | undefined;
    for (;;) {
      const r = await findReboot(client, node, id, own, () => false);
      if (r) {
        last = r;
        const v = verdict(r);
        if (v) {
          (v.stream === 'out' ? io.out : io.err)(v.message);
          return v.exit;
        }
      }
      if (Date.now() + POLL_MS > client.until) {
        const open = last
          ? Object.values(last.commands ?? {}).filter(
              (c) => c.type === 'free-host-context' && c.status !== 'succeeded' && c.status !== 'skipped',
            )
          : [];
        const what = last
          ? `host reboot ${last.id} is ${last.status}${open.length ? `; still waiting for ${open.map((c) => `${c.agent} (${c.status})`).join(', ')}` : ''}`
          : `no reboot showed for event ${id}`;
        throw new TimedOut(`--wait ${wait}s ran out: ${what}`);
      }
      await sleep(POLL_MS);
    }
  } catch (err) {
    io.err(`rebootctl host-reboot: ${(err as Error).message}`);
    if (err instanceof UsageError) return EXIT.usage;
    if (err instanceof TimedOut) return EXIT.timedOut;
    return EXIT.error;
  }
}

export function registerHostRebootCommand(program: Command): void {
  usageErrorsExit2(program.command('host-reboot'))
    .description(
      'the host asks to reboot and waits for its xPUs: exit 0 allowed (every xPU freed the host context), 3 denied, 4 --wait ran out',
    )
    .requiredOption('--server <url>', 'the coordinator API')
    .requiredOption('--agent <node>', 'this host agent (the node id)')
    .option('--token <token>', "the host's agent token (default: env REBOOT_AGENT_TOKEN)")
    .option('--token-file <file>', 'read the token from this file (default: env REBOOT_AGENT_TOKEN_FILE)')
    .option('--method <method>', 'how the host reboots: shell, ipmi or perst', 'shell')
    .option('--wait <seconds>', 'how long to wait for the xPUs', '120')
    .option('--reason <text>', 'why (recorded with the request)')
    .option('--id <event-id>', 'event id (default: a new one per run)')
    .action(async (opts: HostRebootOpts) => {
      process.exitCode = await hostReboot(opts);
    });
}
