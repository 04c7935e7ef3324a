// Lambda entry: callback Tasks (`lambda:invoke.waitForTaskToken`): send a step's commands, register the wait.
import { createAwaitHandler } from '../handlers/workflow.ts';
import { deps, powertoolsMetrics } from './runtime.ts';

const awaitStep = createAwaitHandler(deps);

export const handler = async (payload: unknown) => {
  try {
    return await awaitStep(payload);
  } finally {
    powertoolsMetrics.publishStoredMetrics();
  }
};
