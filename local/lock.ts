// One stack per DATA_DIR: a second dynalite on the same LevelDB dies on its first request, and two stacks would
// both resume the same executions.
//
// The lock is an OS-level lock, not a pidfile: an exclusive SQLite transaction held open for the life of the
// process (node:sqlite, built in: no native dependency). SQLite takes it with fcntl(), atomically, so two starts
// at once cannot both get it; the kernel drops it when the process exits however it exits (kill -9 included),
// before the process is even reaped, so a zombie or a recycled pid never holds it. `stack.pid` beside it only
// names the holder in the error message.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

export class DataDirInUse extends Error {
  override readonly name = 'DataDirInUse';
}

// Held here so that the lock lives as long as it is not released: a DatabaseSync that is garbage-collected is
// closed, and closing it drops the lock.
const held = new Set<DatabaseSync>();

/** Takes DATA_DIR for this process, or throws DataDirInUse. Returns the release function. */
export function acquireDataDirLock(dataDir: string): () => void {
  const lockFile = join(dataDir, 'stack.lock');
  const pidFile = join(dataDir, 'stack.pid');
  // A holder killed -9 lets go within milliseconds (the kernel closes its files as its threads exit): wait a
  // moment for that rather than refusing a restart that follows the kill closely.
  const db = new DatabaseSync(lockFile, { timeout: 1_000 });
  try {
    db.exec('PRAGMA locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db.close();
    const busy = /locked|busy/i.test((err as Error).message);
    if (!busy) throw err;
    let holder = '';
    try {
      holder = readFileSync(pidFile, 'utf8').trim();
    } catch {
      /* not written yet */
    }
    throw new DataDirInUse(`${dataDir} is in use by process ${holder || '(starting)'}; stop it or choose another DATA_DIR`);
  }
  held.add(db);
  writeFileSync(pidFile, String(process.pid));
  let released = false;
  return () => {
    if (released) return;
    released = true;
    held.delete(db);
    rmSync(pidFile, { force: true });
    try {
      db.exec('ROLLBACK');
    } finally {
      db.close();
    }
  };
}
