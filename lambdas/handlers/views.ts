// What the API shows of stored records.
import type { StoredReboot } from '../core/reboot.ts';
import type { Reboot } from '../core/types.ts';

/** The public shape of a reboot: internals (the workflow's task token above all) stay inside. */
export function publicReboot(r: StoredReboot): Reboot {
  const { waiter: _w, executionName: _e, decision: _d, version: _v, deferred: _f, outageNotices: _o, ...rest } = r;
  return rest as Reboot;
}
