// Writing commands and getting them to their agents' long polls (docs/command-delivery.md).
import { toCommand, type PlannedCommand, type StoredReboot } from '../core/reboot.ts';
import type { PollClaim, StoredCommand } from '../ports/index.ts';
import type { Deps } from './deps.ts';

/** A command as written: `order` keeps the commands of one step in the order they were planned. */
export type NewCommand = StoredCommand & { order: number };

/** The commands a step planned, as they are first written: pending, in the order planned. */
export function newCommands(reboot: StoredReboot, planned: readonly PlannedCommand[], step: string, at: string): NewCommand[] {
  return planned.map((p, order) => ({
    ...toCommand(p, reboot),
    agent: p.agent,
    step,
    status: 'pending',
    noticePhase: p.noticePhase,
    createdAt: at,
    order,
  }));
}

/**
 * Writes new commands (each only if it does not exist yet) and gets them to their agents.
 *
 * Where the signal shares memory with the long polls (local), an agent with a poll parked gets its
 * commands written already marked delivered to that poll (what `markDelivered` would set) and handed
 * to it: the poll answers without a write or a read of its own, one round trip less on the way to the
 * first hook. Every other command is written pending and its agent notified, as in AWS.
 *
 * Faults: a claim is taken before the write, so no second poll of the agent can get the commands.
 * A write that throws: what the others wrote is handed over all the same, the claims of agents with
 * nothing written are released (their polls look as usual), and the Task's retry writes the rest.
 * A poll gone between its claim and the hand-over (client away, claim waited too long) got nothing:
 * its commands are flagged for redelivery and the agent notified, so its next poll takes them at once.
 * A process killed between the write and the hand-over leaves them delivered to nobody: redelivered
 * after REDELIVER_AFTER_MS, as a response lost on the wire is.
 */
export async function writeCommands(deps: Pick<Deps, 'store' | 'signal' | 'logger'>, commands: NewCommand[], now: Date): Promise<void> {
  if (commands.length === 0) return;
  const agents = [...new Set(commands.map((c) => c.agent))];
  const claims = new Map<string, PollClaim>();
  for (const agent of agents) {
    const claim = deps.signal.claim?.(agent);
    if (claim) claims.set(agent, claim);
  }
  try {
    const at = now.toISOString();
    const items = commands.map((c): NewCommand => (claims.get(c.agent)?.live ? delivered(c, at) : c));
    // Settled, not all: a command written as delivered to a poll is handed to it even when another write
    // failed (else it would be delivered to nobody); the failure is thrown after, for the Task to retry.
    const settled = await Promise.allSettled(items.map((c) => deps.store.putCommand(c)));
    const written = settled.map((r) => r.status === 'fulfilled' && r.value);
    for (const agent of agents) {
      const mine = items.filter((c, i) => c.agent === agent && written[i]);
      const handed = mine.filter((c) => c.status === 'delivered');
      const pending = mine.filter((c) => c.status === 'pending');
      // A write that failed may still have landed (its answer lost): if so, it is delivered to nobody.
      const unsure = items.filter((c, i) => c.agent === agent && c.status === 'delivered' && settled[i].status === 'rejected');
      const claim = claims.get(agent);
      claims.delete(agent);
      const nobody = [...unsure];
      if (claim && handed.length > 0) {
        if (!claim.hand(handed)) nobody.push(...handed);
      } else {
        claim?.release();
        if (pending.length > 0) deps.signal.notify(agent, pending);
      }
      if (nobody.length > 0) {
        await redeliver(deps, nobody, at);
        deps.signal.notify(agent); // its polls look: pending and flagged ones alike are due
      }
    }
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  } finally {
    for (const claim of claims.values()) claim.release();
  }
}

/** The command as a poll's `markDelivered` leaves it (status, seenAt, one revision). */
function delivered(c: NewCommand, at: string): NewCommand {
  return { ...c, status: 'delivered', seenAt: at, rev: 1 } as NewCommand;
}

/**
 * Commands written (or maybe written) as delivered to a poll that did not get them: flagged, the next poll
 * takes them at once instead of after REDELIVER_AFTER_MS. Best effort: that delay is the fallback.
 */
async function redeliver(deps: Pick<Deps, 'store' | 'logger'>, commands: StoredCommand[], at: string): Promise<void> {
  deps.logger.info('commands written as delivered to a poll that did not get them: flagged for redelivery', {
    agent: commands[0].agent,
    commands: commands.map((c) => c.id),
  });
  await Promise.all(
    commands.map((c) =>
      deps.store
        .updateCommand(c.agent, c.id, (cur) =>
          cur.status === 'delivered' && cur.seenAt === at && !cur.redeliver ? { ...cur, redeliver: true } : null,
        )
        .catch((err) =>
          deps.logger.warn('flagging a command for redelivery failed', { agent: c.agent, command: c.id, error: String(err) }),
        ),
    ),
  );
}
