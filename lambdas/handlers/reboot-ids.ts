// Which reboot an event starts: a new ULID the first time, the same id on every replay of that event.
import { legacyRebootId, newRebootId, type RebootIdKind } from '../core/ids.ts';
import type { Clock, RebootStore } from '../ports/index.ts';

/** As long as the event key itself is remembered (ingest's dedup TTL): replays come within it. */
export const EVENT_REBOOT_TTL_SECONDS = 7 * 24 * 3600;

/**
 * The reboot id for an event key. The key→id mapping is written (conditionally) before the reboot,
 * so a replay after a crash between the two writes finds the same id and creates that reboot; two
 * deliveries racing both end up with the first mapping. `fresh`: minted now, nothing stored under it
 * yet. `lookedUp`: the caller read the mapping and the legacy id already (`store.lookUpEvent`) and found
 * no reboot, so only the conditional put is left (it still finds a mapping written meanwhile).
 */
export async function rebootIdForEvent(
  deps: { store: RebootStore; clock: Clock },
  kind: RebootIdKind,
  key: string,
  opts: { lookedUp?: boolean } = {},
): Promise<{ id: string; fresh: boolean }> {
  if (!opts.lookedUp) {
    const [mapped, legacy] = await Promise.all([deps.store.rebootIdOfEvent(key), deps.store.getReboot(legacyRebootId(kind, key))]);
    if (mapped) return { id: mapped, fresh: false };
    // Started before ids were ULIDs (an upgrade with events in flight): its replay keeps the old id.
    if (legacy) return { id: legacy.id, fresh: false };
  }
  const candidate = newRebootId(kind, deps.clock.now());
  const id = await deps.store.mapEventToReboot(key, candidate, EVENT_REBOOT_TTL_SECONDS);
  return { id, fresh: id === candidate };
}
