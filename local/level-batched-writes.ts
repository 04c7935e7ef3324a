// dynalite on classic-level: an item and its secondary-index entries written in one LevelDB batch.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

type Op = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };
type Callback = (err?: Error | null) => void;
interface IndexAction {
  index: string;
  key: string;
  item?: unknown;
}
interface Table {
  TableName: string;
  LocalSecondaryIndexes?: unknown[];
  GlobalSecondaryIndexes?: unknown[];
}
interface DynaliteDb {
  updateIndexes(store: unknown, table: Table, existing: unknown, item: unknown, cb: Callback): void;
  getIndexActions(indexes: unknown[], existing: unknown, item: unknown, table: Table): { puts: IndexAction[]; deletes: IndexAction[] };
}
interface LevelProto {
  put(key: unknown, value: unknown, options?: unknown): Promise<void>;
  del(key: unknown, options?: unknown): Promise<void>;
  batch(ops: Op[], options?: unknown): Promise<void>;
}

/**
 * dynalite's PutItem, UpdateItem and DeleteItem write an item's index entries and then the item as
 * separate LevelDB operations, one after the other: the entries to delete, then (once those are done)
 * the entries to put, then the item. Each is a thread-pool round trip whose callback dynalite defers
 * once more (setImmediate), so a write to a table with indexes waited for two or three of them in a
 * row; and a process killed between them left an index entry without its item, or the reverse (a
 * Query on the index then answers with an item the table does not have).
 *
 * Here the index changes are held, in dynalite's order (deletes, then puts), and written in the same
 * LevelDB batch as the item write that each of those actions makes synchronously right after
 * `updateIndexes` calls back: one round trip, and atomic. Key prefixes are dynalite's own sub-database
 * names (`getIndexDb`: `index-<local|global>~<table>~<index>~`), checked by
 * test/integration/local-dynamo-batched-writes.test.ts. Installed before dynalite opens its database
 * (its callback wrappers bind `put` and `del` when it does).
 */
export function batchIndexWrites(): void {
  const dynalite = dirname(require.resolve('dynalite'));
  const db = require(join(dynalite, 'db', 'index.js')) as DynaliteDb;
  const levelPath = require.resolve('level', { paths: [dynalite] });
  const classicLevel = require(require.resolve('classic-level', { paths: [dirname(levelPath)] })) as {
    ClassicLevel: { prototype: LevelProto };
  };
  const proto = classicLevel.ClassicLevel.prototype;

  // The index changes of the write in progress, until its item write takes them. A write is one
  // synchronous run (updateIndexes → its callback → the item's put or del), so there is never more
  // than one, and nothing else runs in between.
  let held: Op[] | null = null;

  db.updateIndexes = (_store, table, existing, item, cb) => {
    if (!existing && !item) return cb();
    const deletes: Op[] = [];
    const puts: Op[] = [];
    for (const kind of ['Local', 'Global'] as const) {
      const indexes = table[`${kind}SecondaryIndexes`] ?? [];
      if (indexes.length === 0) continue;
      const prefix = (index: string) => `index-${kind.toLowerCase()}~${table.TableName}~${index}~`;
      const actions = db.getIndexActions(indexes, existing, item, table);
      for (const a of actions.deletes) deletes.push({ type: 'del', key: prefix(a.index) + a.key });
      for (const a of actions.puts) puts.push({ type: 'put', key: prefix(a.index) + a.key, value: a.item });
    }
    const ops = [...deletes, ...puts];
    if (ops.length === 0) return cb();
    held = ops;
    cb();
    // Every caller in dynalite 4 writes its item at once, unless the database is closing (its wrapper
    // then answers "closed" without writing): the entries are not written either, as the item is not.
    // A dynalite whose callers did otherwise would lose them; the test above fails for it.
    held = null;
  };

  const put = proto.put;
  const del = proto.del;
  const batch = proto.batch;
  proto.put = function (this: LevelProto, key: unknown, value: unknown, options?: unknown) {
    const ops = held;
    if (!ops) return put.call(this, key, value, options);
    held = null;
    return batch.call(this, [...ops, { type: 'put', key: String(key), value }], options);
  };
  proto.del = function (this: LevelProto, key: unknown, options?: unknown) {
    const ops = held;
    if (!ops) return del.call(this, key, options);
    held = null;
    return batch.call(this, [...ops, { type: 'del', key: String(key) }], options);
  };
}
