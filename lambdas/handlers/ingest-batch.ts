// One batch of queue messages through the ingest handler: per-node order kept, failures reported per item.
import type { NativeEvent } from '../core/types.ts';
import type { Logger } from './deps.ts';

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

/**
 * Events of one node are applied in order (a ready must not overtake its pending); different nodes
 * run in parallel. Returns the items that failed, to be retried by the queue (then the DLQ).
 */
export async function processBatch(
  items: QueueItem[],
  handle: (ev: NativeEvent) => Promise<unknown>,
  logger: Logger,
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
  await Promise.all(
    [...groups.values()].map(async (group) => {
      let blocked = false;
      for (const { item, ev, error } of group) {
        // After a failure the rest of the node's events wait too, so they are not applied out of order.
        if (blocked || error || !ev) {
          failures.push({ id: item.id, error: error ?? 'an earlier event of this node failed' });
          if (error) logger.error('ingest: malformed message', { messageId: item.id, error, receiveCount: item.receiveCount });
          continue;
        }
        try {
          await handle(ev);
        } catch (err) {
          blocked = true;
          failures.push({ id: item.id, error: (err as Error).message });
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
    }),
  );
  return failures;
}
