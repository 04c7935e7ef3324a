// Ids in a path that are longer than any id this API hands out name nothing: 404 at once, before the
// store is asked. DynamoDB refuses keys over 2048 (partition) and 1024 (sort) bytes with a
// ValidationException, which would otherwise surface as a 500 for what is only bad input.
import type { Hono } from 'hono';
import { NotFound } from '../core/errors.ts';

/** Far above any reboot, command, hold, rollout or node id, far below DynamoDB's key limits with their prefixes. */
export const MAX_PATH_SEGMENT_BYTES = 512;

function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Mounts the check on every /v1 route; must be registered before the routes it guards. */
export function registerPathLimits(app: Hono): void {
  app.use('/v1/*', async (c, next) => {
    for (const segment of c.req.path.split('/')) {
      const bytes = Buffer.byteLength(decoded(segment));
      if (bytes > MAX_PATH_SEGMENT_BYTES)
        throw new NotFound(`no such resource: an id of ${bytes} bytes is longer than any this API hands out (${MAX_PATH_SEGMENT_BYTES})`);
    }
    await next();
  });
}
