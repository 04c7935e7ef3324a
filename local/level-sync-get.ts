// dynalite on classic-level: point reads served on the event loop instead of a thread-pool round trip.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

const require = createRequire(import.meta.url);

/**
 * Every dynalite request reads LevelDB at least twice (the table's description, then the item) and
 * `get` is asynchronous: each read is queued to libuv's thread pool and its answer waits for a later
 * turn of the loop. The database is small and its blocks sit in LevelDB's cache or the page cache, so a
 * read takes microseconds: `getSync` answers it at once. Only when the database is open (while opening,
 * `get` defers as before).
 */
export function readSynchronously(): void {
  const levelPath = require.resolve('level', { paths: [dirname(require.resolve('dynalite'))] });
  const classicLevel = require(require.resolve('classic-level', { paths: [dirname(levelPath)] })) as {
    ClassicLevel: { prototype: Record<string, unknown> };
  };
  const proto = classicLevel.ClassicLevel.prototype as {
    get(key: unknown, options?: unknown): Promise<unknown>;
    getSync(key: unknown, options?: unknown): unknown;
    status: string;
  };
  const asyncGet = proto.get;
  proto.get = function (this: typeof proto, key: unknown, options?: unknown) {
    if (this.status !== 'open') return asyncGet.call(this, key, options);
    try {
      return Promise.resolve(this.getSync(key, options));
    } catch (err) {
      return Promise.reject(err);
    }
  };
}
