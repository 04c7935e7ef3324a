// One batch of queue messages through the ingest handler: per-node order kept, failures reported per item.
import type { NativeEvent } from '../core/types.ts';
import type { Logger } from './deps.ts';
import type { IngestFailureLog } from '../ports/index.ts';

export interface QueueItem {
  id: string;
  body: string;
  receiveCount: number;
}

export class MalformedQueueMessage extends Error {
  override readonly name = 'MalformedQueueMessage';
}

function decode(body: string): NativeEvent {
  let ev: NativeEvent;
  try {
    ev = JSON.parse(body);
  } catch {
    throw new MalformedQueueMessage('message body is not JSON');
  }
  if (!ev || typeof ev !== 'object' || typeof ev.type !== 'string' || typeof ev.node !== 'string' || typeof ev.dedupKey !== 'string')
    throw new MalformedQueueMessage('message body is not a native event');
  return ev;
}

/** An event handler that may carry the log where processBatch notes why a message failed. */
export type BatchHandler = ((ev: NativeEvent) => Promise<unknown>) & { failureLog?: IngestFailureLog };

/**
 * Attaches a failure log to a handler: every caller of processBatch (local poller, Lambda entry) then records
 * the reason of each failed message (keyed by dedupKey, or `message:<id>` for an undecodable body), which is
 * what `GET /v1/dlq` shows for a message parked after its retries.
 */
export function withFailureLog(handle: (ev: NativeEvent) => Promise<unknown>, failureLog: IngestFailureLog): BatchHandler {
  return Object.assign((ev: NativeEvent) => handle(ev), { failureLog });
}

/** The queue parks a message after 5 receives (local and AWS redrive policies alike). */
export const MAX_RECEIVES = 5;
const LAST_ORDERED_ATTEMPT = MAX_RECEIVES - 1;

/**
 * One lane per node across concurrent batches (the local poller's consumers): a batch takes the lanes of
 * its nodes when it starts and holds each until that node's events in it are done, so a later batch's
 * event of the node waits behind an earlier batch's, and different nodes still run in parallel.
 */
export class NodeLanes {
  readonly #tails = new Map<string, Promise<void>>();

  /** Resolves when the node's earlier holders are done; call the returned release when done too. */
  take(node: string): { ready: Promise<void>; release: () => void } {
    const before = this.#tails.get(node) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const tail = before.then(() => mine);
    this.#tails.set(node, tail);
    void tail.then(() => {
      if (this.#tails.get(node) === tail) this.#tails.delete(node);
    });
    return { ready: before, release };
  }
}

/**
 * Events of one node are applied in order (a ready must not overtake its pending); different nodes
 * run in parallel. Returns the items that failed, to be retried by the queue (then the DLQ).
 * `lanes`: shared by concurrent batches, keeps that order across them too.
 */
export async function processBatch(
  items: QueueItem[],
  handle: BatchHandler,
  logger: Logger,
  lanes?: NodeLanes,
): Promise<Array<{ id: string; error: string }>> {
  const groups = new Map<string, Array<{ item: QueueItem; ev?: NativeEvent; error?: string }>>();
  for (const item of items) {
    let entry: { item: QueueItem; ev?: NativeEvent; error?: string };
    try {
      entry = { item, ev: decode(item.body) };
    } catch (err) {
      entry = { item, error: (err as Error).message };
    }
    const key = entry.ev?.node ?? `?${item.id}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(entry);
  }
  const failures: Array<{ id: string; error: string }> = [];
  const notes: Array<{ key: string; item: QueueItem; error: string }> = [];
  const fail = (item: QueueItem, ev: NativeEvent | undefined, error: string) => {
    failures.push({ id: item.id, error });
    notes.push({ key: ev?.dedupKey ?? `message:${item.id}`, item, error });
  };
  await Promise.all(
    [...groups.entries()].map(async ([key, group]) => {
      // Taken synchronously for every group at the start, so batches queue on a node in the order they started.
      const lane = lanes?.take(key);
      try {
        await lane?.ready;
        await runGroup(group);
      } finally {
        lane?.release();
      }
    }),
  );
  async function runGroup(group: Array<{ item: QueueItem; ev?: NativeEvent; error?: string }>) {
    let blocked = false;
    for (const { item, ev, error } of group) {
      // After a failure the rest of the node's events wait too, so they are not applied out of order;
      // but never into the DLQ for another event's sake: on their last attempt they go ahead.
      if ((blocked && item.receiveCount < LAST_ORDERED_ATTEMPT) || error || !ev) {
        fail(item, ev, error ?? 'an earlier event of this node failed');
        if (error) logger.error('ingest: malformed message', { messageId: item.id, error, receiveCount: item.receiveCount });
        continue;
      }
      try {
        await handle(ev);
      } catch (err) {
        blocked = true;
        fail(item, ev, (err as Error).message || String(err));
        logger.error('ingest: event failed; it will be retried', {
          messageId: item.id,
          eventId: ev.id,
          node: ev.node,
          type: ev.type,
          receiveCount: item.receiveCount,
          error: (err as Error).stack ?? String(err),
        });
      }
    }
  }
  const log = handle.failureLog;
  if (log && notes.length > 0) {
    const at = new Date().toISOString();
    // Best effort: a log that cannot be written must not change what is retried.
    await Promise.all(
      notes.map(({ key, item, error }) =>
        log
          .record({ key, messageId: item.id, reason: error.slice(0, 2000), receiveCount: item.receiveCount, at })
          .catch((err) => logger.warn('ingest: could not record the failure reason', { messageId: item.id, error: String(err) })),
      ),
    );
  }
  return failures;
}
