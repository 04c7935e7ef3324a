// One read in flight shared by the callers it is fresh enough for (the ingest's holds, read by every planned start).

/**
 * `read(since)` answers with a read that started once the caller's own work had begun: `now()` is a
 * counter of work begun (the ingest's calls), `since` the caller's value of it. A read in flight that
 * started at or after `since` is joined; otherwise a new one starts. So every answer is as fresh as
 * a read of the caller's own at the same point, and the starts of one batch, which reach it side by
 * side, share one request instead of one each. Finished reads are not kept.
 */
export function sharedRead<T>(now: () => number, load: () => Promise<T>): { read(since: number): Promise<T> } {
  let inFlight: { startedAt: number; result: Promise<T> } | undefined;
  return {
    read(since) {
      if (inFlight && inFlight.startedAt >= since) return inFlight.result;
      const mine = { startedAt: now(), result: load() };
      inFlight = mine;
      const done = () => {
        if (inFlight === mine) inFlight = undefined;
      };
      mine.result.then(done, done);
      return mine.result;
    },
  };
}
