// dynalite in its own process: DynamoDB's CPU on the second core, and a LevelDB that dies with its parent.
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { batchIndexWrites } from './level-batched-writes.ts';
import { closeIteratorsOnReturn } from './level-iterators.ts';
import { readSynchronously } from './level-sync-get.ts';
import { serveUntilParentGoes, tellParent } from './service-process.ts';

const require = createRequire(import.meta.url);
// Before dynalite loads: its Query and Scan streams close their LevelDB iterators with return(), its
// point reads are answered without a thread-pool round trip, and an item and its index entries are one batch.
closeIteratorsOnReturn();
readSynchronously();
batchIndexWrites();
const dynalite = require('dynalite') as (o: {
  path?: string;
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}) => Server;

const server = dynalite({ path: process.argv[2] || undefined, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });

serveUntilParentGoes(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  // Close LevelDB so its LOCK is released before the next stack opens the directory.
  const db = (server as unknown as { db?: { close?: (cb: () => void) => void } }).db;
  if (db?.close) await new Promise<void>((r) => db.close!(() => r()));
});

server.once('error', (err) => {
  tellParent({ error: `cannot listen: ${err.message}` });
  process.exit(1);
});
// SERVICE_PORT: set when the stack restarts this child where its clients already point.
server.listen(Number(process.env.SERVICE_PORT ?? 0), '127.0.0.1', () => tellParent({ port: (server.address() as AddressInfo).port }));
