// Lambda entry: the workflows' plain Tasks (proceed, forced, complete, fail, deny).
import { createStepHandler } from '../handlers/workflow.ts';
import { deps, powertoolsMetrics } from './runtime.ts';

const step = createStepHandler(deps);

export const handler = async (payload: unknown) => {
  try {
    return await step(payload);
  } finally {
    powertoolsMetrics.publishStoredMetrics();
  }
};
