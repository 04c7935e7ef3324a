// The last down (or crash) of an xPU the API accepted, before the queue has delivered it: what a cancel
// must see to answer 409 for an xPU that already went down (contract 7.3; docs/fleet-safety.md,
// "A down received before the cancel").
import { predates } from './model.ts';
import type { StoredReboot } from './reboot.ts';
import type { NativeEvent } from './types.ts';

/** The signals that end an xPU reboot's notice phase by themselves. */
const DOWN_TYPES: readonly NativeEvent['type'][] = ['xpu.down', 'xpu.crashed'];

/** The event to mark on its xPU when the API accepts it; undefined for every other event. */
export function downMarkOf(ev: NativeEvent): NativeEvent | undefined {
  return ev.xpu && DOWN_TYPES.includes(ev.type) ? ev : undefined;
}

/**
 * Why a cancel of `r` must be refused for a down the API accepted and the ingest has not applied yet
 * (the queue holds it): the mark is of `r`'s xPU, received since `r`'s own first signal and not from
 * before it (by the same rules the ingest will apply, model.ts predates). Undefined when the mark says
 * nothing more than the reboot does: none, another xPU's, older, already applied (the model refuses
 * on `downAt`/`crashedAt` itself), or `r` already cancelled (a repeat answers 200).
 */
export function acceptedDown(r: StoredReboot, mark: NativeEvent | undefined): string | undefined {
  if (!mark || r.kind !== 'xpu' || r.status === 'cancelled' || mark.node !== r.node || mark.xpu !== r.xpu) return undefined;
  if (r.downAt || r.crashedAt) return undefined;
  if (!r.origin || Date.parse(mark.receivedAt) < Date.parse(r.origin.receivedAt) || predates(r, mark)) return undefined;
  return `the xPU went down (${mark.type} ${mark.id} received at ${mark.receivedAt}, not applied yet)`;
}
