// Start-up order for `npm start`: take the DATA_DIR lock and spawn the two emulator processes (dynalite, fauxqs)
// before the rest of the stack's modules are loaded, so that their boot (a Node process each, ~1 s) overlaps the
// main process's own module loading instead of following it. Light on purpose: no AWS SDK, no zod.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireDataDirLock } from './lock.ts';
import { startServiceProcess, type ServiceProcess, type Supervision } from './service-process.ts';

const DYNALITE = fileURLToPath(new URL('./dynamo-server.ts', import.meta.url));
const FAUXQS = fileURLToPath(new URL('./sqs-server.ts', import.meta.url));

export type ChildSupervision = Omit<Supervision, 'name' | 'restartArgs'>;

/** dynalite on `dataDir` (in memory without one). */
export function spawnDynalite(dataDir: string | undefined, supervise?: ChildSupervision, port?: number): Promise<ServiceProcess> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  return startServiceProcess(
    DYNALITE,
    [dataDir ?? ''],
    dataDir ? join(dataDir, 'dynalite.pid') : undefined,
    supervise && { name: 'dynalite', ...supervise },
    port,
  );
}

/**
 * fauxqs on `dataDir`. A stack start releases what the queue still shows in flight (held by a process that is
 * gone); a restart of the child under a running stack keeps it: the stack still holds those receipts.
 */
export function spawnFauxqs(dataDir: string, supervise?: ChildSupervision, port?: number): Promise<ServiceProcess> {
  mkdirSync(dataDir, { recursive: true });
  return startServiceProcess(
    FAUXQS,
    [dataDir, '--release-inflight'],
    join(dataDir, 'fauxqs.pid'),
    supervise && { name: 'fauxqs', restartArgs: [dataDir], ...supervise },
    port,
  );
}

export interface Prestarted {
  releaseLock: () => void;
  dynamo: Promise<ServiceProcess>;
  sqs: Promise<ServiceProcess>;
  /** The children's supervision, filled in by the stack once it has its logger and metrics. */
  supervise: ChildSupervision;
}

export function prestart(opts: { dataDir: string; dynamoPort?: number; sqsPort?: number }): Prestarted {
  mkdirSync(opts.dataDir, { recursive: true });
  const releaseLock = acquireDataDirLock(opts.dataDir);
  const supervise: ChildSupervision = {};
  // Bound late: a child that dies before the stack is wired is still restarted, and reported once it is.
  const late: ChildSupervision = {
    onExit: (i) => (supervise.onExit ? supervise.onExit(i) : console.error(`${i.name} died during start-up`)),
    onGiveUp: (err) => (supervise.onGiveUp ? supervise.onGiveUp(err) : console.error(err.message)),
  };
  const dynamo = spawnDynalite(join(opts.dataDir, 'dynamodb'), late, opts.dynamoPort);
  const sqs = spawnFauxqs(join(opts.dataDir, 'sqs'), late, opts.sqsPort);
  // Awaited by the stack a moment later; until then a failure must not count as an unhandled rejection.
  dynamo.catch(() => undefined);
  sqs.catch(() => undefined);
  return { releaseLock, dynamo, sqs, supervise };
}
