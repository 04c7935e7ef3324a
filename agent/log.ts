// Structured logs of the edge agent: one JSON object per line on stderr, for journald and log shippers.
import { isoTime } from './iso-time.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(opts: { level?: LogLevel; base?: LogFields; write?: (line: string, level?: LogLevel) => void }): Logger {
  const min = RANK[opts.level ?? 'info'];
  // Pipes and files are written synchronously by Node on Linux, so a crash right after a
  // log call still leaves the line in the journal.
  const prefix = opts.write ? null : journalPrefixes();
  const write = opts.write ?? ((line: string, level?: LogLevel) => process.stderr.write(prefix && level ? prefix[level] + line : line));
  const make = (base: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (RANK[level] < min) return;
      const record: LogFields = { time: isoTime(), level, msg, ...base };
      if (fields) for (const [k, v] of Object.entries(fields)) record[k] = v instanceof Error ? describeError(v) : v;
      write(JSON.stringify(record) + '\n', level);
    };
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return make(opts.base ?? {});
}

/**
 * When stderr is journald's stream (JOURNAL_STREAM names its device and inode), each line starts
 * with its syslog priority, `<3>` error ... `<7>` debug, which journald strips and records: without
 * it every line is "info" and `journalctl -p warning` shows nothing.
 */
function journalPrefixes(): Record<LogLevel, string> | null {
  const stream = process.env.JOURNAL_STREAM;
  if (!stream) return null;
  try {
    const st = (process.getBuiltinModule('node:fs') as typeof import('node:fs')).fstatSync(2);
    if (stream !== `${st.dev}:${st.ino}`) return null;
  } catch {
    return null;
  }
  return { error: '<3>', warn: '<4>', info: '<6>', debug: '<7>' };
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
