// Lambda entry: the workflows' plain Tasks (proceed, forced, complete, fail, deny; the rollout's tick and fail).
import { createRolloutTasks, withRolloutTasks } from '../handlers/rollout.ts';
import { createStepHandler } from '../handlers/workflow.ts';
import { deps, powertoolsMetrics, flushWakeups } from './runtime.ts';

const step = withRolloutTasks(createStepHandler(deps), createRolloutTasks({ ...deps, rollouts: deps.rollouts! }));

export const handler = async (payload: unknown) => {
  try {
    return await step(payload);
  } finally {
    await flushWakeups();
    powertoolsMetrics.publishStoredMetrics();
  }
};
