// Reboot and command ids: time-ordered and unique across coordinators (ULID), with the old forms still read.
import { createHash } from 'node:crypto';
import { decodeTime, isValid, monotonicFactory } from 'ulid';
import type { CommandType } from './types.ts';

export type RebootIdKind = 'xpu' | 'host';

const PREFIX: Record<RebootIdKind, string> = { xpu: 'xr', host: 'hr' };

// Monotonic: ids minted in the same millisecond (or while the clock steps back) still sort in order.
const nextUlid = monotonicFactory();

/**
 * A new reboot id, `xr-`/`hr-` + a lower-case ULID. Random bits make it unique across
 * coordinators, stages and wiped DATA_DIRs: an agent's journal never sees a reissued id. The time
 * part is the coordinator's clock, so ids sort by creation.
 */
export function newRebootId(kind: RebootIdKind, now: Date): string {
  return `${PREFIX[kind]}-${nextUlid(now.getTime()).toLowerCase()}`;
}

/**
 * The id older releases derived from the event key alone (`xr-` + 16 hash characters). Still read:
 * a replay of an event that started a reboot before the upgrade must find that reboot.
 */
export function legacyRebootId(kind: RebootIdKind, dedupKey: string): string {
  const h = createHash('sha256').update(dedupKey).digest('base64url').replace(/[-_]/g, '').slice(0, 16).toLowerCase();
  return `${PREFIX[kind]}-${h}`;
}

/** When a ULID-based reboot id was minted; undefined for legacy ids. */
export function rebootIdTime(id: string): Date | undefined {
  const m = /^(?:xr|hr)-([0-9a-z]{26})$/.exec(id);
  if (!m || !isValid(m[1].toUpperCase())) return undefined;
  return new Date(decodeTime(m[1].toUpperCase()));
}

export function rebootIdKind(id: string): RebootIdKind | undefined {
  return id.startsWith('xr-') ? 'xpu' : id.startsWith('hr-') ? 'host' : undefined;
}

/**
 * A command's id: its reboot's id, the type and the target xPU (and a sequence number for a type
 * sent more than once to one target, e.g. `postpone-reboot` each time the deadline moves).
 * Deterministic, so a replayed workflow step re-plans the same ids and sends nothing twice; unique
 * across coordinators because the reboot id is.
 */
export function commandId(rebootId: string, type: CommandType, xpu: string | null, seq?: number): string {
  return `${rebootId}.${type}${xpu ? `.${xpu}` : ''}${seq ? `.${seq}` : ''}`;
}
