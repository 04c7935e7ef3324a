// Durable state of the local Step Functions engine: per-execution JSONL journals, an execution index, machines.
import {
  appendFileSync,
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { constants as fsConstants, open as openAsync } from 'node:fs';
import { join } from 'node:path';

// appendFileSync hands each record to the kernel before returning, so it survives kill -9. There is no fsync:
// a power loss can lose the records of the last seconds (the kernel's writeback delay) and can tear the last
// line; every file that is appended to is repaired at open (repairTail), so the next record starts on a line
// of its own instead of being glued to the torn one and lost at the next load.

/**
 * Cuts a torn last line (a record whose append was cut short: no trailing newline) off an append-only JSONL
 * file. Returns true when it cut something.
 */
export function repairTail(path: string): boolean {
  if (!existsSync(path)) return false;
  const fd = openSync(path, 'r');
  let size: number;
  try {
    size = fstatSync(fd).size;
    if (size === 0) return false;
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    if (last[0] === 0x0a) return false;
  } finally {
    closeSync(fd);
  }
  const text = readFileSync(path);
  truncateSync(path, text.lastIndexOf(0x0a) + 1);
  return true;
}

export interface StartRecord {
  t: 'start';
  arn: string;
  machine: string;
  machineArn: string;
  name: string;
  hash: string;
  /** JSON text, as AWS returns it. */
  input: string;
  startDate: number;
  roleArn?: string;
}
/** A top-level state was entered: the resume point. Doubles as its history event. */
export interface EnteredRecord {
  t: 'entered';
  id: number;
  ts: number;
  type: string;
  state: string;
  input: string;
}
export interface EventRecord {
  t: 'ev';
  id: number;
  ts: number;
  type: string;
  d?: Record<string, unknown>;
}
/** A callback Task handed out a token; deadlines are absolute so a restart keeps them. */
export interface TokenRecord {
  t: 'token';
  state: string;
  token: string;
  timeoutAt?: number;
  heartbeatAt?: number;
  heartbeatMs?: number;
}
export interface HeartbeatRecord {
  t: 'hb';
  token: string;
  heartbeatAt: number;
}
export interface WaitRecord {
  t: 'wait';
  state: string;
  until: number;
}
/** SendTaskSuccess/SendTaskFailure arrived for a token. */
export interface ResultRecord {
  t: 'result';
  token: string;
  ok: boolean;
  output?: string;
  error?: string;
  cause?: string;
}
export interface EndRecord {
  t: 'end';
  status: ExecutionStatus;
  stopDate: number;
  output?: string;
  error?: string;
  cause?: string;
}
export type JournalRecord =
  | StartRecord
  | EnteredRecord
  | EventRecord
  | TokenRecord
  | HeartbeatRecord
  | WaitRecord
  | ResultRecord
  | EndRecord;

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

/** What the engine knows of every execution without opening its journal. */
export interface IndexEntry {
  arn: string;
  machineArn: string;
  name: string;
  file: string;
  startDate: number;
  status: ExecutionStatus;
  stopDate?: number;
  error?: string;
  cause?: string;
}

export interface MachineRecord {
  name: string;
  arn: string;
  hash: string;
  roleArn?: string;
  creationDate: number;
  updateDate: number;
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0'));
}

function parseLines<T>(text: string): T[] {
  const out: T[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // A kill -9 in the middle of an append leaves a torn last line; the record never counted.
    }
  }
  return out;
}

type IndexLine =
  | { k: 's'; a: string; m: string; n: string; f: string; s: number; st?: ExecutionStatus; d?: number; er?: string; c?: string }
  | { k: 'e'; a: string; st: ExecutionStatus; d: number; er?: string; c?: string };

/** Journals kept open for appends (`JournalStore.append`). */
const OPEN_JOURNALS = 128;

/** Writes all of `text` at the descriptor (a regular file takes it whole; looped as writeFileSync does). */
function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
}

/** Empty journal files kept made ahead (`JournalStore.createJournal`), and the count below which more are made. */
export const SPARE_FILES = 64;
const SPARE_LOW = 32;
/** A journal's first open: whatever a torn first write left there (no index line points to it) is cut, then appended to. */
const FRESH_JOURNAL = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_APPEND;

/** A spare journal file, and its descriptor when this process made it (those of an earlier process are opened at use). */
interface Spare {
  path: string;
  fd?: number;
}

export class JournalStore {
  readonly dataDir: string;
  private readonly execDir: string;
  private readonly defDir: string;
  private readonly spareDir: string;
  private readonly indexFile: string;
  private readonly machinesFile: string;
  /** Machine directories under execDir known to exist. */
  private readonly dirs = new Set<string>();
  /** Empty files in spareDir, ready to become journals. */
  private readonly spares: Spare[] = [];
  private spareSeq = 0;
  /** Spare files being made (on libuv's threadpool); settles when they are. */
  private making: Promise<void> | undefined;
  private closed = false;
  /** Journal → open descriptor, least recently appended to first. */
  private readonly open = new Map<string, number>();
  /** The index, kept open for appends once written to. */
  private indexFd: number | undefined;

  constructor(dataDir: string) {
    this.dataDir = dataDir;
    this.execDir = join(dataDir, 'executions');
    this.defDir = join(dataDir, 'definitions');
    this.spareDir = join(dataDir, 'spare');
    this.indexFile = join(dataDir, 'index.jsonl');
    this.machinesFile = join(dataDir, 'machines.jsonl');
    mkdirSync(this.execDir, { recursive: true });
    mkdirSync(this.defDir, { recursive: true });
    mkdirSync(this.spareDir, { recursive: true });
    // Spares an earlier process made and did not use: empty files (or cut short while made), still good.
    for (const f of readdirSync(this.spareDir)) if (f.endsWith('.spare')) this.spares.push({ path: join(this.spareDir, f) });
    repairTail(this.indexFile);
    repairTail(this.machinesFile);
  }

  /** Closes the open journals, stops making spare files and waits for those being made (the data directory may be removed next). */
  async close(): Promise<void> {
    this.closed = true;
    for (const file of [...this.open.keys()]) this.closeJournal(file);
    await this.making;
    // The spare files stay for the next process; only their descriptors go.
    for (const spare of this.spares) if (spare.fd !== undefined) closeSync(spare.fd);
    for (const spare of this.spares) spare.fd = undefined;
    if (this.indexFd !== undefined) closeSync(this.indexFd);
    this.indexFd = undefined;
  }

  // ---- machines and definition versions

  loadMachines(): MachineRecord[] {
    if (!existsSync(this.machinesFile)) return [];
    const latest = new Map<string, MachineRecord>();
    for (const rec of parseLines<MachineRecord>(readFileSync(this.machinesFile, 'utf8'))) latest.set(rec.name, rec);
    return [...latest.values()];
  }

  saveMachine(rec: MachineRecord, definitionText: string): void {
    this.saveDefinition(rec.hash, definitionText);
    appendFileSync(this.machinesFile, JSON.stringify(rec) + '\n');
  }

  saveDefinition(hash: string, text: string): void {
    const file = join(this.defDir, `${hash}.json`);
    if (existsSync(file)) return;
    // Written whole then renamed, so a resumed execution never reads half a definition.
    writeFileSync(file + '.tmp', text);
    renameSync(file + '.tmp', file);
  }

  readDefinition(hash: string): string {
    return readFileSync(join(this.defDir, `${hash}.json`), 'utf8');
  }

  // ---- execution journals

  fileFor(machine: string, name: string): string {
    return `${safeName(machine)}/${safeName(name)}.jsonl`;
  }

  /**
   * Creating a file (an inode and a directory entry) costs ~0.3–0.8 ms of CPU, a rename ~0.03 ms: on the stack's
   * one event loop that was the biggest part of a StartExecution. So a journal is a spare empty file made ahead on
   * libuv's threadpool (and opened there: an open costs the event loop ~0.05 ms), renamed into place, then written
   * through the descriptor made with it, which stays open for the execution's next records. What is on disk after
   * each step is what a torn first write of a new file left before: a kill -9 after the rename leaves an empty journal
   * that no index line points to and that has no start record (loadIndex skips it; the retried start cuts it and
   * writes over it). Without a spare, a new file.
   */
  createJournal(file: string, start: StartRecord): void {
    const dir = join(this.execDir, file.split('/')[0]);
    if (!this.dirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.dirs.add(dir);
    }
    const path = join(this.execDir, file);
    this.closeJournal(file); // (a descriptor of a file this one replaces)
    const spare = this.spares.pop();
    let fd: number | undefined;
    if (spare) {
      try {
        renameSync(spare.path, path);
        fd = spare.fd;
      } catch {
        // Gone (removed by hand): the open below makes the file.
        if (spare.fd !== undefined) closeSync(spare.fd);
      }
    }
    // Cut, not appended to: whatever a torn first write left there (no index line points to it) is replaced.
    fd ??= openSync(path, FRESH_JOURNAL);
    this.keepOpen(file, fd);
    writeAll(fd, JSON.stringify(start) + '\n');
    if (this.spares.length < SPARE_LOW) this.makeSpares();
  }

  /** Makes spare files up to SPARE_FILES, one at a time, off the event loop. */
  private makeSpares(): void {
    if (this.making || this.closed) return;
    this.making = new Promise<void>((done) => {
      const next = () => {
        if (this.closed || this.spares.length >= SPARE_FILES) {
          this.making = undefined;
          done();
          return;
        }
        const path = join(this.spareDir, `${process.pid}-${this.spareSeq++}.spare`);
        // Made empty and exclusively (wx), kept open for appends: the journal it becomes needs no open of its own.
        openAsync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_APPEND, (err, fd) => {
          if (err?.code === 'EEXIST') return next(); // an earlier process's, of the same pid
          if (err) {
            // Best effort (e.g. the directory is gone): journals are then made as new files.
            this.making = undefined;
            done();
            return;
          }
          if (this.closed) closeSync(fd);
          else this.spares.push({ path, fd });
          next();
        });
      };
      next();
    });
  }

  /**
   * One write on a journal kept open (O_APPEND) instead of appendFileSync's open, write and close: the record
   * reaches the kernel before the call returns all the same. The most recently used journals stay open; an
   * execution's closes with its end record.
   */
  append(file: string, rec: JournalRecord): void {
    let fd = this.open.get(file);
    if (fd === undefined) fd = openSync(join(this.execDir, file), 'a');
    this.keepOpen(file, fd);
    writeAll(fd, JSON.stringify(rec) + '\n');
    if (rec.t === 'end') this.closeJournal(file);
  }

  /** Marks a journal's descriptor most recently used, closing the least recently used beyond OPEN_JOURNALS. */
  private keepOpen(file: string, fd: number): void {
    if (this.open.get(file) === fd) this.open.delete(file);
    else if (this.open.size >= OPEN_JOURNALS) this.closeJournal(this.open.keys().next().value!);
    this.open.set(file, fd);
  }

  private closeJournal(file: string): void {
    const fd = this.open.get(file);
    if (fd === undefined) return;
    this.open.delete(file);
    closeSync(fd);
  }

  read(file: string): JournalRecord[] {
    return parseLines<JournalRecord>(readFileSync(join(this.execDir, file), 'utf8'));
  }

  // ---- index

  indexStart(e: IndexEntry): void {
    const line: IndexLine = { k: 's', a: e.arn, m: e.machineArn, n: e.name, f: e.file, s: e.startDate };
    this.appendIndex(JSON.stringify(line) + '\n');
  }

  indexEnd(arn: string, end: { status: ExecutionStatus; stopDate: number; error?: string; cause?: string }): void {
    const line: IndexLine = { k: 'e', a: arn, st: end.status, d: end.stopDate, er: end.error, c: end.cause };
    this.appendIndex(JSON.stringify(line) + '\n');
  }

  /** One write on the index kept open (O_APPEND), as appendFileSync's open, write and close would leave it. */
  private appendIndex(text: string): void {
    this.indexFd ??= openSync(this.indexFile, 'a');
    writeAll(this.indexFd, text);
  }

  /**
   * Loads every execution's summary from the index alone (finished journals are not opened), then repairs the
   * two gaps a kill can leave: a journal whose index line never got written, and an end written to the journal
   * but not yet to the index. Compacts the index when it has grown well beyond one line per execution.
   */
  loadIndex(): Map<string, IndexEntry> {
    const entries = new Map<string, IndexEntry>();
    let lines = 0;
    if (existsSync(this.indexFile)) {
      for (const l of parseLines<IndexLine>(readFileSync(this.indexFile, 'utf8'))) {
        lines++;
        if (l.k === 's') {
          entries.set(l.a, {
            arn: l.a,
            machineArn: l.m,
            name: l.n,
            file: l.f,
            startDate: l.s,
            status: l.st ?? 'RUNNING',
            stopDate: l.d,
            error: l.er,
            cause: l.c,
          });
        } else {
          const e = entries.get(l.a);
          if (e) Object.assign(e, { status: l.st, stopDate: l.d, error: l.er, cause: l.c });
        }
      }
    }
    let repaired = false;
    const known = new Set([...entries.values()].map((e) => e.file));
    for (const dir of readdirSync(this.execDir, { withFileTypes: true })) {
      if (!dir.isDirectory()) continue;
      for (const f of readdirSync(join(this.execDir, dir.name))) {
        const file = `${dir.name}/${f}`;
        if (!f.endsWith('.jsonl') || known.has(file)) continue;
        if (repairTail(join(this.execDir, file))) repaired = true;
        const start = this.read(file).find((r): r is StartRecord => r.t === 'start');
        if (!start) continue;
        entries.set(start.arn, {
          arn: start.arn,
          machineArn: start.machineArn,
          name: start.name,
          file,
          startDate: start.startDate,
          status: 'RUNNING',
        });
        repaired = true;
      }
    }
    for (const e of entries.values()) {
      if (e.status !== 'RUNNING') continue;
      // A running execution's journal is appended to again once it resumes.
      if (!existsSync(join(this.execDir, e.file))) continue; // lost: recover() ends it FAILED
      repairTail(join(this.execDir, e.file));
      const end = this.read(e.file).find((r): r is EndRecord => r.t === 'end');
      if (end) {
        Object.assign(e, { status: end.status, stopDate: end.stopDate, error: end.error, cause: end.cause });
        repaired = true;
      }
    }
    if (repaired || lines > entries.size * 1.5 + 100) this.compactIndex(entries);
    return entries;
  }

  private compactIndex(entries: Map<string, IndexEntry>): void {
    let text = '';
    for (const e of entries.values()) {
      const line: IndexLine = { k: 's', a: e.arn, m: e.machineArn, n: e.name, f: e.file, s: e.startDate };
      if (e.status !== 'RUNNING') Object.assign(line, { st: e.status, d: e.stopDate, er: e.error, c: e.cause });
      text += JSON.stringify(line) + '\n';
    }
    writeFileSync(this.indexFile + '.tmp', text);
    // A descriptor of the index this one replaces would append to a file no one reads again.
    if (this.indexFd !== undefined) closeSync(this.indexFd);
    this.indexFd = undefined;
    renameSync(this.indexFile + '.tmp', this.indexFile);
  }
}
