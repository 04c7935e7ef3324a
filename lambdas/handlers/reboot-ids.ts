// Which reboot an event starts: a new ULID the first time, the same id on every replay of that event.
import { legacyRebootId, newRebootId, type RebootIdKind } from '../core/ids.ts';
import type { StoredReboot } from '../core/reboot.ts';
import type { Clock, RebootStore } from '../ports/index.ts';

/** As long as the event key itself is remembered (ingest's dedup TTL): replays come within it. */
export const EVENT_REBOOT_TTL_SECONDS = 7 * 24 * 3600;

/**
 * The reboot id for an event key. The key→id mapping is written (conditionally) before the reboot,
 * so a replay after a crash between the two writes finds the same id and creates that reboot; two
 * deliveries racing both end up with the first mapping. `fresh`: minted now, nothing stored under it yet.
 */
export async function rebootIdForEvent(
  deps: { store: RebootStore; clock: Clock },
  kind: RebootIdKind,
  key: string,
): Promise<{ id: string; fresh: boolean }> {
  const mapped = await deps.store.rebootIdOfEvent(key);
  if (mapped) return { id: mapped, fresh: false };
  // Started before ids were ULIDs (an upgrade with events in flight): its replay keeps the old id.
  const legacy = legacyRebootId(kind, key);
  const candidate = (await deps.store.getReboot(legacy)) ? legacy : newRebootId(kind, deps.clock.now());
  const id = await deps.store.mapEventToReboot(key, candidate, EVENT_REBOOT_TTL_SECONDS);
  return { id, fresh: id === candidate && candidate !== legacy };
}

/** The reboot an event key started, if any: read ahead on the start path, beside the dedup check. */
export async function rebootOfEvent(store: RebootStore, key: string): Promise<StoredReboot | undefined> {
  const id = await store.rebootIdOfEvent(key);
  return id ? store.getReboot(id) : undefined;
}
