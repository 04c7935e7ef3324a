// Which reboot an event starts: a new ULID the first time, the same id on every replay of that event.
import { legacyRebootId, newRebootId, type RebootIdKind } from '../core/ids.ts';
import type { StoredReboot } from '../core/reboot.ts';
import type { ClaimAheadResult, Clock, RebootStore } from '../ports/index.ts';

/** As long as the event key itself is remembered (ingest's dedup TTL): replays come within it. */
export const EVENT_REBOOT_TTL_SECONDS = 7 * 24 * 3600;

/**
 * The reboot id for an event key. The key→id mapping is written (conditionally) before the reboot,
 * so a replay after a crash between the two writes finds the same id and creates that reboot; two
 * deliveries racing both end up with the first mapping. `fresh`: minted now, nothing stored under it
 * yet.
 */
export async function rebootIdForEvent(
  deps: { store: RebootStore; clock: Clock },
  kind: RebootIdKind,
  key: string,
): Promise<{ id: string; fresh: boolean }> {
  const [mapped, legacy] = await Promise.all([deps.store.rebootIdOfEvent(key), deps.store.getReboot(legacyRebootId(kind, key))]);
  if (mapped) return { id: mapped, fresh: false };
  // Started before ids were ULIDs (an upgrade with events in flight): its replay keeps the old id.
  if (legacy) return { id: legacy.id, fresh: false };
  const candidate = newRebootId(kind, deps.clock.now());
  const id = await deps.store.mapEventToReboot(key, candidate, EVENT_REBOOT_TTL_SECONDS);
  return { id, fresh: id === candidate };
}

/** What a starting event (xPU notice or crash) goes with: its reboot id, and the reboot stored under it. */
export interface StartOfEvent {
  id: string;
  /** The reboot stored under `id` (a replay's), being read; undefined when minted by this delivery. */
  found: Promise<StoredReboot | undefined>;
  /** Minted by this delivery only: the xPU claim taken under `id` beside the look-up (`claimAhead`), the caller's to use. */
  claim?: ClaimAheadResult;
}

/** Takes the xPU ahead under a candidate id (`RebootStore.claimXpuAhead`), and gives it back. */
export interface ClaimAhead {
  take(candidate: string): Promise<ClaimAheadResult>;
  giveBack(candidate: string): Promise<boolean>;
}

/**
 * `rebootIdForEvent` for a starting xPU event, with its dedup check, in one sequential round trip
 * where the plain order takes two: the conditional put of a fresh id runs beside the look-up (dedup
 * key, mapping, legacy id in one read) instead of after it. Safe because the put writes only where
 * no mapping is, exactly as it would after the look-up:
 * - a replay or a seen event finds its key mapped: the put writes nothing, the look-up's mapping wins;
 * - two deliveries racing: one put wins, the other reads the winner's mapping (as `mapEventToReboot` does);
 * - a crash after the put: the retry's put finds that mapping, and the retry goes on with its id.
 * Only the cases where the sequential order would not have put leave a mapping it would not have
 * written: a seen event whose start was never mapped (dropped before, or started under a legacy id)
 * and a legacy reboot's event. No one starts a reboot under such an id: a legacy reboot is looked for
 * first, and a seen event is a duplicate.
 */
export async function lookUpStart(
  deps: { store: RebootStore; clock: Clock },
  key: string,
  ahead?: ClaimAhead,
): Promise<{ seen: true } | ({ seen: false } & StartOfEvent)> {
  const legacyId = legacyRebootId('xpu', key);
  const candidate = newRebootId('xpu', deps.clock.now());
  const put = deps.store.tryMapEventToReboot(key, candidate, EVENT_REBOOT_TTL_SECONDS);
  put.catch(() => {});
  // The claim beside them too (docs/idempotency.md): kept when the candidate is the event's reboot,
  // given back at once otherwise. A death before that leaves a claim `releaseIfDangling` recognises.
  const claim = ahead?.take(candidate);
  claim?.catch(() => {});
  const unused = async () => {
    const c = await claim?.catch(() => undefined);
    if (c?.ok) await ahead!.giveBack(candidate);
  };
  const look = await deps.store.lookUpEvent(key, legacyId);
  if (look.seen) {
    // A duplicate: settled before answering (its put wrote nothing, or a mapping no one reads).
    await put.catch(() => {});
    await unused();
    return { seen: true };
  }
  // First, since the put beside the look-up may have mapped the key to an id no one will use.
  if (look.legacy) {
    await unused();
    return { seen: false, id: look.legacy.id, found: Promise.resolve(look.legacy) };
  }
  if (await put) return { seen: false, id: candidate, found: Promise.resolve(undefined), claim: await claim };
  await unused();
  // Mapped before: by an earlier delivery (the look-up found it) or a racing one (read now).
  const mapped = look.rebootId ?? (await deps.store.rebootIdOfEvent(key));
  // (Not mapped after all: expired between the two. Done the plain way.)
  const { id, fresh } = mapped ? { id: mapped, fresh: false } : await rebootIdForEvent(deps, 'xpu', key);
  const found = fresh ? Promise.resolve(undefined) : deps.store.getReboot(id);
  found.catch(() => {}); // awaited by the caller, maybe after other awaits
  return { seen: false, id, found };
}
