// Issue 19: concurrent ingest batches (INGEST_CONCURRENCY > 1) keep each node's events in the order their batches started.
import { describe, expect, it } from 'vitest';
import { NodeLanes, processBatch, type QueueItem } from '../../lambdas/handlers/ingest-batch.ts';
import { silentLogger } from '../../lambdas/handlers/deps.ts';
import type { NativeEvent } from '../../lambdas/core/types.ts';

const item = (id: string, node: string): QueueItem => ({
  id,
  body: JSON.stringify({ id, type: 'xpu.down', node, dedupKey: `k:${id}` }),
  receiveCount: 1,
});

describe('NodeLanes across concurrent batches', () => {
  it('a later batch waits for an earlier batch on the same node, and runs beside it on another node', async () => {
    const log: string[] = [];
    const gates = new Map<string, () => void>();
    const handle = (ev: NativeEvent) => {
      log.push(`start ${ev.id}`);
      return new Promise<void>((r) =>
        gates.set(ev.id, () => {
          log.push(`end ${ev.id}`);
          r();
        }),
      );
    };
    const lanes = new NodeLanes();
    const first = processBatch([item('a1', 'n1'), item('a2', 'n1')], handle, silentLogger, lanes);
    const second = processBatch([item('b1', 'n1'), item('c1', 'n2')], handle, silentLogger, lanes);
    const settle = () => new Promise((r) => setTimeout(r, 5));
    await settle();
    // a1 runs; b1 waits for the whole of batch one on n1 (a2 too); c1 on n2 does not wait.
    expect(log).toEqual(['start a1', 'start c1']);
    gates.get('a1')!();
    await settle();
    expect(log.slice(2)).toEqual(['end a1', 'start a2']);
    gates.get('a2')!();
    gates.get('c1')!();
    await settle();
    expect(log).toContain('start b1');
    expect(log.indexOf('start b1')).toBeGreaterThan(log.indexOf('end a2'));
    gates.get('b1')!();
    expect(await first).toEqual([]);
    expect(await second).toEqual([]);
  });

  it('a failed event still lets the next batch of its node go (the lane is released)', async () => {
    const lanes = new NodeLanes();
    const seen: string[] = [];
    const handle = async (ev: NativeEvent) => {
      seen.push(ev.id);
      if (ev.id === 'x1') throw new Error('store down');
    };
    const failed = await processBatch([item('x1', 'n1')], handle, silentLogger, lanes);
    expect(failed.map((f) => f.id)).toEqual(['x1']);
    expect(await processBatch([item('y1', 'n1')], handle, silentLogger, lanes)).toEqual([]);
    expect(seen).toEqual(['x1', 'y1']);
  });
});
