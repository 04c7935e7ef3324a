// Lambda entry: every few minutes, ends reboots whose workflow execution ended, failed or is gone (their
// claims would otherwise be held for ever) and counts them (RebootsReconciled, alarmed).
import { createReconciler } from '../handlers/reconciler.ts';
import { deps, powertoolsMetrics } from './runtime.ts';

const reconcile = createReconciler(deps);

export const handler = async () => {
  try {
    const res = await reconcile();
    deps.metrics.count('RebootsReconciled', 0);
    return { checked: res.checked, ended: res.ended.length };
  } finally {
    powertoolsMetrics.publishStoredMetrics();
  }
};
