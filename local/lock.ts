// One stack per DATA_DIR: a second dynalite on the same LevelDB dies on its first request.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class DataDirInUse extends Error {
  override readonly name = 'DataDirInUse';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes DATA_DIR for this process; a pidfile left by a killed process is taken over. */
export function acquireDataDirLock(dataDir: string): () => void {
  const file = join(dataDir, 'stack.pid');
  let holder: number | undefined;
  try {
    holder = Number(readFileSync(file, 'utf8').trim());
  } catch {
    /* no pidfile */
  }
  if (holder && holder !== process.pid && alive(holder))
    throw new DataDirInUse(`${dataDir} is in use by process ${holder}; stop it or choose another DATA_DIR`);
  writeFileSync(file, String(process.pid));
  return () => {
    try {
      if (Number(readFileSync(file, 'utf8').trim()) === process.pid) rmSync(file);
    } catch {
      /* gone already */
    }
  };
}
