// dynalite run inside the test's own process (as local/dynamo-server.ts runs it in its child), for tests
// that patch or count what it does with LevelDB.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { dynamoClient, ensureTable } from '../../local/dynamo.ts';
import { tempDir } from './stack.ts';

const require = createRequire(import.meta.url);

/** A LevelDB package as dynalite loads it ('classic-level', 'abstract-level'): the copy a patch must reach. */
export function dynaliteLevelModule<T = Record<string, { prototype: Record<string, unknown> }>>(
  name: 'classic-level' | 'abstract-level',
): T {
  const classicLevel = require.resolve('classic-level', {
    paths: [dirname(require.resolve('level', { paths: [dirname(require.resolve('dynalite'))] }))],
  });
  return require(name === 'classic-level' ? classicLevel : require.resolve(name, { paths: [dirname(classicLevel)] })) as T;
}

export interface InProcessDynalite {
  client: ReturnType<typeof dynamoClient>;
  close(): Promise<void>;
}

/** dynalite on a fresh directory with `table` created; patch the LevelDB modules before calling it. */
export async function startInProcessDynalite(name: string, table: string): Promise<InProcessDynalite> {
  const dynalite = require('dynalite') as (o: object) => Server;
  const server = dynalite({ path: join(tempDir(name), 'db'), createTableMs: 0 });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = dynamoClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  await ensureTable(client, table);
  return {
    client,
    async close() {
      client.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      // Close LevelDB too, so its LOCK and open files go with the test.
      const db = (server as unknown as { db?: { close?: (cb: () => void) => void } }).db;
      if (db?.close) await new Promise<void>((r) => db.close!(() => r()));
    },
  };
}
