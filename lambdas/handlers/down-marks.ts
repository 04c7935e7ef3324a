// The API marks each down it accepts before queueing it (docs/fleet-safety.md, "A down received before the cancel").
import { downMarkOf } from '../core/down-marks.ts';
import type { NativeEvent } from '../core/types.ts';
import type { Deps } from './deps.ts';

/** Before the queue: a 503 from here still means nothing was accepted. Only downs and crashes write. */
export async function markDowns(deps: Pick<Deps, 'downMarks'>, evs: readonly NativeEvent[]): Promise<void> {
  if (!deps.downMarks) return;
  for (const ev of evs) {
    const mark = downMarkOf(ev);
    if (mark) await deps.downMarks.mark(mark);
  }
}
