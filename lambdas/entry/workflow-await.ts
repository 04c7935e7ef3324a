// Lambda entry: callback Tasks (`lambda:invoke.waitForTaskToken`): send a step's commands, register the wait.
import { createRolloutTasks, withRolloutTasks } from '../handlers/rollout.ts';
import { createAwaitHandler } from '../handlers/workflow.ts';
import { deps, powertoolsMetrics, flushWakeups } from './runtime.ts';

const awaitStep = withRolloutTasks(createAwaitHandler(deps), createRolloutTasks({ ...deps, rollouts: deps.rollouts! }));

export const handler = async (payload: unknown) => {
  try {
    return await awaitStep(payload);
  } finally {
    await flushWakeups();
    powertoolsMetrics.publishStoredMetrics();
  }
};
