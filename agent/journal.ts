// The agent's write-ahead journal: which commands it started, finished and delivered, so none runs twice across restarts.
import { join } from 'node:path';
import { fs } from './builtins.ts';
import { isoTime } from './iso-time.ts';
import type { Logger } from './log.ts';
import { identify, isSameProcessAlive, type ProcessIdentity } from './proc.ts';

const { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } = fs;

export type FinalStatus = 'succeeded' | 'failed' | 'skipped';

/**
 * One JSON object per line in `<state>/<agent>/journal.jsonl`, appended and fsynced before the
 * agent acts on it:
 *   {"t":"journal","version":1,"agent":"node-a","created":"..."}          first line
 *   {"t":"started","id","type","rebootId","deadline","at"}                before the hook is spawned
 *   {"t":"spawned","id","pid","bootId","startTime","at"}                  the hook's process group
 *   {"t":"finished","id","status","output","at"}                          before the result is sent
 *   {"t":"delivered","id","at","status"?,"dropped"?}                      the server took it (or refused it for good)
 */
export type JournalRecord =
  | { t: 'journal'; version: number; agent: string; created: string }
  | { t: 'started'; id: string; type: string; rebootId: string; deadline: string; at: string }
  | ({ t: 'spawned'; id: string; at: string } & ProcessIdentity)
  | { t: 'finished'; id: string; status: FinalStatus; output: string; at: string }
  | { t: 'delivered'; id: string; at: string; status?: FinalStatus; dropped?: string };

export interface JournalEntry {
  id: string;
  type?: string;
  rebootId?: string;
  deadline?: string;
  startedAt?: string;
  spawn?: ProcessIdentity;
  status?: FinalStatus;
  /** Kept only until the result is delivered. */
  output?: string;
  finishedAt?: string;
  deliveredAt?: string;
}

/** Another agent process with the same id and state directory is running. */
export class AgentLocked extends Error {
  override readonly name = 'AgentLocked';
}

export interface JournalOptions {
  agent: string;
  /** Delivered entries beyond this many (newest kept) are compacted away. */
  maxEntries: number;
  /** Delivered entries older than this are compacted away. */
  maxAgeMs: number;
  log: Logger;
  now?: () => number;
}

const VERSION = 1;
/** Compaction also runs when the file grows past this, since undelivered outputs make lines large. */
const COMPACT_BYTES = 16 * 1024 * 1024;

export class Journal {
  readonly dir: string;
  readonly file: string;
  readonly #opts: JournalOptions;
  readonly #entries = new Map<string, JournalEntry>();
  #fd = -1;
  #bytes = 0;
  #records = 0;
  #lockFile: string;

  private constructor(dir: string, opts: JournalOptions) {
    this.dir = dir;
    this.file = join(dir, 'journal.jsonl');
    this.#lockFile = join(dir, 'agent.lock');
    this.#opts = opts;
  }

  /** Locks the directory, replays the journal and compacts it. Throws AgentLocked or an I/O error. */
  static open(dir: string, opts: JournalOptions): Journal {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const journal = new Journal(dir, opts);
    journal.#lock();
    try {
      journal.#load();
      // Rewriting at every start also drops a line torn by a crash, so new records never join it.
      journal.compact();
    } catch (err) {
      journal.close();
      throw err;
    }
    return journal;
  }

  get(id: string): JournalEntry | undefined {
    return this.#entries.get(id);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Started but never finished: the agent died while their hook ran. */
  interrupted(): JournalEntry[] {
    return [...this.#entries.values()].filter((e) => e.startedAt && !e.status);
  }

  /** Finished, result not yet taken by the server, oldest first. */
  undelivered(): JournalEntry[] {
    return [...this.#entries.values()].filter((e) => e.status && !e.deliveredAt);
  }

  /**
   * Written but not fsynced: the hook cannot run before `spawned` (its gate waits for it), whose fsync
   * takes this line to disk with it. A crash in between leaves at most a started entry whose hook never
   * ran (reported interrupted, as with an fsync here); one fsync per command start instead of two.
   */
  started(cmd: { id: string; type: string; rebootId: string; deadline: string }): void {
    this.#append({ t: 'started', id: cmd.id, type: cmd.type, rebootId: cmd.rebootId, deadline: cmd.deadline, at: this.#iso() }, false);
  }

  spawned(id: string, identity: ProcessIdentity): void {
    this.#append({ t: 'spawned', id, ...identity, at: this.#iso() });
  }

  finished(id: string, status: FinalStatus, output: string): void {
    this.#append({ t: 'finished', id, status, output, at: this.#iso() });
  }

  delivered(id: string, dropped?: string): void {
    const status = this.#entries.get(id)?.status;
    this.#append({ t: 'delivered', id, at: this.#iso(), ...(status ? { status } : {}), ...(dropped ? { dropped } : {}) });
    if (this.#bytes > COMPACT_BYTES || this.#records > 3 * this.#opts.maxEntries + 1000) this.compact();
  }

  /**
   * Rewrites the journal with what still matters: every entry not yet delivered in full, and the
   * newest delivered ones (ids only, to recognise redeliveries) within the count and age bounds.
   */
  compact(): void {
    const cutoff = this.#now() - this.#opts.maxAgeMs;
    const delivered = [...this.#entries.values()].filter((e) => e.deliveredAt);
    const surplus = delivered.length - this.#opts.maxEntries;
    let dropped = 0;
    for (const [i, e] of delivered.entries()) {
      if (i < surplus || Date.parse(e.deliveredAt!) < cutoff) {
        this.#entries.delete(e.id);
        dropped++;
      }
    }
    const lines: JournalRecord[] = [{ t: 'journal', version: VERSION, agent: this.#opts.agent, created: this.#iso() }];
    for (const e of this.#entries.values()) lines.push(...recordsOf(e));
    const text = lines.map((r) => JSON.stringify(r) + '\n').join('');
    const tmp = this.file + '.tmp';
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (this.#fd >= 0) closeSync(this.#fd);
    renameSync(tmp, this.file);
    this.#fsyncDir();
    this.#fd = openSync(this.file, 'a', 0o600);
    this.#bytes = Buffer.byteLength(text);
    this.#records = lines.length;
    if (dropped) this.#opts.log.debug('journal compacted', { dropped, kept: this.#entries.size });
  }

  close(): void {
    if (this.#fd >= 0) {
      closeSync(this.#fd);
      this.#fd = -1;
    }
    try {
      const holder = JSON.parse(readFileSync(this.#lockFile, 'utf8')) as ProcessIdentity;
      if (holder.pid === process.pid) unlinkSync(this.#lockFile);
    } catch {
      // not ours or already gone
    }
  }

  #append(record: JournalRecord, sync = true): void {
    const line = JSON.stringify(record) + '\n';
    // Acting before the record is on disk would let a crash run a command twice.
    writeSync(this.#fd, line);
    if (sync) fsyncSync(this.#fd);
    this.#bytes += Buffer.byteLength(line);
    this.#records++;
    this.#apply(record);
  }

  #apply(r: JournalRecord): void {
    if (r.t === 'journal') return;
    let e = this.#entries.get(r.id);
    if (!e) {
      e = { id: r.id };
      this.#entries.set(r.id, e);
    }
    switch (r.t) {
      case 'started':
        Object.assign(e, { type: r.type, rebootId: r.rebootId, deadline: r.deadline, startedAt: r.at });
        break;
      case 'spawned':
        e.spawn = { pid: r.pid, bootId: r.bootId, startTime: r.startTime };
        break;
      case 'finished':
        Object.assign(e, { status: r.status, output: r.output, finishedAt: r.at });
        break;
      case 'delivered':
        e.deliveredAt = r.at;
        e.status ??= r.status ?? 'failed';
        delete e.output; // delivered: no need to hold it in memory any more
        break;
    }
  }

  #load(): void {
    let text = '';
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let bad = 0;
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let record: JournalRecord;
      try {
        record = JSON.parse(line) as JournalRecord;
      } catch {
        bad++; // a line torn by a crash mid-write: its action never happened (we act after fsync)
        continue;
      }
      if (record.t === 'journal') {
        if (record.version > VERSION)
          throw new Error(`${this.file}: journal version ${record.version} is newer than this agent understands (${VERSION})`);
        continue;
      }
      if (typeof record.id !== 'string') {
        bad++;
        continue;
      }
      this.#apply(record);
    }
    if (bad) this.#opts.log.warn('journal had unreadable lines; ignored them', { file: this.file, lines: bad });
  }

  #lock(): void {
    const me = identify(process.pid);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(this.#lockFile, JSON.stringify(me), { flag: 'wx', mode: 0o600 });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let holder: ProcessIdentity | null = null;
      try {
        holder = JSON.parse(readFileSync(this.#lockFile, 'utf8')) as ProcessIdentity;
      } catch {
        // unreadable lock (torn write): stale
      }
      if (holder && holder.pid !== process.pid && isSameProcessAlive(holder)) {
        throw new AgentLocked(`another agent (pid ${holder.pid}) is running with state directory ${this.dir}`);
      }
      // Stale: its process is gone (or this is our own pid, re-executed).
      try {
        unlinkSync(this.#lockFile);
      } catch {
        // someone else removed it first
      }
    }
    throw new AgentLocked(`could not take the lock ${this.#lockFile}`);
  }

  #fsyncDir(): void {
    try {
      const fd = openSync(this.dir, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch {
      // some file systems cannot fsync a directory; the rename is still atomic
    }
  }

  #iso(): string {
    return isoTime(this.#now());
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }
}

function recordsOf(e: JournalEntry): JournalRecord[] {
  if (e.deliveredAt) return [{ t: 'delivered', id: e.id, at: e.deliveredAt, ...(e.status ? { status: e.status } : {}) }];
  const out: JournalRecord[] = [];
  if (e.startedAt)
    out.push({ t: 'started', id: e.id, type: e.type ?? '', rebootId: e.rebootId ?? '', deadline: e.deadline ?? '', at: e.startedAt });
  if (e.spawn) out.push({ t: 'spawned', id: e.id, ...e.spawn, at: e.startedAt ?? '' });
  if (e.status) out.push({ t: 'finished', id: e.id, status: e.status, output: e.output ?? '', at: e.finishedAt ?? '' });
  return out;
}
