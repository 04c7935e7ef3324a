// Gathers calls made in the same turn of the event loop into one request (a batch read or write).

/**
 * Returns a function of one item that queues it and resolves with its own answer. Queued items are
 * handed to `run` together once the current turn ends (setImmediate: after the I/O callbacks of this
 * turn, so the events of an ingest batch that reach the call side by side share one request), in
 * chunks of at most `max`. `run` answers in the order of its items; when it throws, every caller of
 * that chunk gets the error. One caller's wait is at most one turn of the loop.
 */
export function coalesce<I, O>(run: (items: I[]) => Promise<O[]>, max: number): (item: I) => Promise<O> {
  let queued: Array<{ item: I; resolve: (o: O) => void; reject: (e: unknown) => void }> = [];
  const flush = () => {
    const all = queued;
    queued = [];
    for (let i = 0; i < all.length; i += max) {
      const chunk = all.slice(i, i + max);
      Promise.resolve(chunk.map((c) => c.item))
        .then(run)
        .then(
          (out) => {
            for (const [j, c] of chunk.entries()) c.resolve(out[j]);
          },
          (err) => {
            for (const c of chunk) c.reject(err);
          },
        );
    }
  };
  return (item) =>
    new Promise<O>((resolve, reject) => {
      if (queued.length === 0) setImmediate(flush);
      queued.push({ item, resolve, reject });
    });
}
