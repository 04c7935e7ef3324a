// dynalite on abstract-level 3: make the iterators it opens for Query and Scan closable the way it closes them.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

const require = createRequire(import.meta.url);

/**
 * dynalite reads Query and Scan results through a stream over a LevelDB iterator and closes it with
 * `iterator.return()`, which abstract-level 3 iterators do not have: every Query left its iterator open
 * until the database closed. An open LevelDB iterator pins the memtables and table files it started
 * on, so memory (4 MB per memtable) and mapped, deleted table files grew with every Query of a
 * running stack: 1,000 reboots driven to completion held ~600 MB. Give them a `return` that closes.
 */
export function closeIteratorsOnReturn(): void {
  const classicLevel = require.resolve('classic-level', {
    paths: [dirname(require.resolve('level', { paths: [dirname(require.resolve('dynalite'))] }))],
  });
  const abstractLevel = require(require.resolve('abstract-level', { paths: [dirname(classicLevel)] })) as Record<
    string,
    { prototype: object }
  >;
  for (const name of ['AbstractIterator', 'AbstractKeyIterator', 'AbstractValueIterator']) {
    const proto = abstractLevel[name].prototype as { return?: unknown; close(): Promise<void> };
    proto.return ??= async function (this: { close(): Promise<void> }) {
      await this.close();
      return { done: true, value: undefined };
    };
  }
}
