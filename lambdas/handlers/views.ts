// What the API shows of stored records.
import type { StoredReboot } from '../core/reboot.ts';
import type { Reboot } from '../core/types.ts';

/** The public shape of a reboot: internals (the workflow's task token above all) stay inside. */
export function publicReboot(r: StoredReboot): Reboot {
  const { waiter: _w, executionName: _e, decision: _d, version: _v, deferred: _f, outageNotices: _o, ...rest } = r;
  // The sources' own times the model orders late signals by (model.ts): machinery, in no one's clock but
  // their source's, and not the reboot's story (the history says who said what, in ours).
  const { origin: _og, readyOrigin: _ro, downOrigin: _do, joinedOrigins: _jo, hostReadyOrigin: _hr, hostDownOrigin: _hd, ...shown } = rest;
  return shown as Reboot;
}
