// `rebootctl dlq list|redrive`: what is parked in the ingest dead-letter queue, why, and moving it back.
import type { Command } from 'commander';
import { readTokenOption } from './token-option.ts';

export interface DlqCliOptions {
  server?: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
  limit?: string;
  id?: string[];
}

/** Everything the command touches outside itself, so tests can run it without a process exit. */
export interface DlqCliIo {
  fetch: typeof fetch;
  env: Record<string, string | undefined>;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export const EXIT_OK = 0;
/** The server refused, could not be reached, or some requested messages were not found. */
export const EXIT_FAILED = 1;
/** The command line was wrong; nothing was sent. */
export const EXIT_USAGE = 2;

const REQUEST_TIMEOUT_MS = 2 * 60_000;
const REASON_WIDTH = 80;

const defaultIo: DlqCliIo = {
  fetch: (...args) => fetch(...args),
  env: process.env,
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
};

interface DeadLetterView {
  messageId: string;
  event: { id: string | null; node: string | null; type: string | null; xpu: string | null } | null;
  receiveCount: number;
  reason: string | null;
  failedAt: string | null;
  sentAt: string | null;
}

class UsageError extends Error {}

function endpoint(server: string | undefined, path: string): URL {
  if (!server) throw new UsageError('--server is required');
  let base: URL;
  try {
    base = new URL(server);
  } catch {
    throw new UsageError(`--server is not a valid URL: ${server}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError('--server must be an http(s) URL');
  // Keep any path prefix of --server (an API Gateway stage, a reverse proxy).
  return new URL(`${base.pathname.replace(/\/+$/, '')}${path}`, base);
}

async function call(
  io: DlqCliIo,
  url: URL,
  token: string,
  init: { method: string; body?: unknown },
): Promise<{ ok: true; json: unknown } | { ok: false; message: string }> {
  let res: Response;
  let text: string;
  try {
    res = await io.fetch(url, {
      method: init.method,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
        ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    text = await res.text();
  } catch (err) {
    // fetch() says only "fetch failed"; the cause holds ECONNREFUSED, ENOTFOUND or the TLS error.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, message: `cannot reach ${url.origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = json as { error?: unknown; message?: unknown } | undefined;
    const why =
      e && typeof e === 'object' && (e.error || e.message)
        ? [e.error, e.message].filter(Boolean).map(String).join(': ')
        : text.trim().slice(0, 500) || '(empty response)';
    return { ok: false, message: `HTTP ${res.status}: ${why}` };
  }
  if (json === undefined) return { ok: false, message: `the server answered ${res.status} with a body that is not JSON` };
  return { ok: true, json };
}

function oneLine(s: string, width: number): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat;
}

/** A plain text table: one row per message, columns padded to their widest cell. */
export function formatDeadLetters(items: DeadLetterView[]): string {
  if (items.length === 0) return 'The dead-letter queue is empty.\n';
  const header = ['MESSAGE ID', 'NODE', 'TYPE', 'EVENT ID', 'RECEIVES', 'FAILED AT', 'REASON'];
  const rows = items.map((d) => [
    d.messageId,
    d.event ? `${d.event.node ?? '?'}${d.event.xpu ? `/${d.event.xpu}` : ''}` : '-',
    d.event?.type ?? (d.event ? '?' : '(not an event)'),
    d.event?.id ?? '-',
    String(d.receiveCount),
    d.failedAt ?? '-',
    d.reason === null ? '(no failure recorded)' : oneLine(d.reason, REASON_WIDTH),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + `\n${items.length} message${items.length === 1 ? '' : 's'}\n`;
}

function tokenOf(opts: DlqCliOptions, io: DlqCliIo): string {
  let token: string | undefined;
  try {
    token = readTokenOption(opts, io.env);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (!token) throw new UsageError('--token-file, --token or REBOOT_OPERATOR_TOKEN is required');
  return token;
}

export async function runDlqList(opts: DlqCliOptions, io: DlqCliIo = defaultIo): Promise<number> {
  let url: URL;
  let token: string;
  try {
    url = endpoint(opts.server, '/v1/dlq');
    if (opts.limit !== undefined) {
      const n = Number(opts.limit);
      if (!Number.isInteger(n) || n < 1 || n > 100) throw new UsageError('--limit must be a whole number from 1 to 100');
      url.search = new URLSearchParams({ limit: String(n) }).toString();
    }
    token = tokenOf(opts, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`rebootctl dlq list: ${err.message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  const res = await call(io, url, token, { method: 'GET' });
  if (!res.ok) {
    io.stderr(`rebootctl dlq list: ${res.message}\n`);
    return EXIT_FAILED;
  }
  const items = ((res.json as { items?: DeadLetterView[] }).items ?? []) as DeadLetterView[];
  io.stdout(opts.json ? JSON.stringify(res.json, null, 2) + '\n' : formatDeadLetters(items));
  return EXIT_OK;
}

export async function runDlqRedrive(opts: DlqCliOptions, io: DlqCliIo = defaultIo): Promise<number> {
  let url: URL;
  let token: string;
  try {
    url = endpoint(opts.server, '/v1/dlq/redrive');
    token = tokenOf(opts, io);
    if (opts.id?.some((id) => id.trim() === '')) throw new UsageError('--id must not be empty');
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`rebootctl dlq redrive: ${err.message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  let ids = opts.id && opts.id.length > 0 ? [...new Set(opts.id)] : undefined;
  const out = { redriven: 0, notFound: 0, ids: [] as string[], missing: [] as string[], more: false };
  // One call moves what it can in its time budget (docs/operations.md) and says whether more remain: ask again until done.
  for (;;) {
    const res = await call(io, url, token, { method: 'POST', body: ids ? { ids } : { all: true } });
    if (!res.ok) {
      if (out.redriven > 0) io.stderr(`rebootctl dlq redrive: ${out.redriven} redriven before this failure\n`);
      io.stderr(`rebootctl dlq redrive: ${res.message}\n`);
      return EXIT_FAILED;
    }
    const page = res.json as { redriven: number; notFound: number; ids: string[]; missing: string[]; more?: boolean };
    out.redriven += page.redriven;
    out.ids.push(...page.ids);
    out.notFound += page.notFound;
    out.missing.push(...page.missing);
    out.more = page.more === true;
    // No progress would loop for ever: the server moves one at least per call, so this is a server that does not.
    if (!page.more || page.redriven === 0) break;
    if (!opts.json) io.stderr(`rebootctl dlq redrive: ${out.redriven} redriven so far, more remain: asking again\n`);
    if (ids) {
      const moved = new Set(page.ids);
      ids = ids.filter((id) => !moved.has(id));
      if (ids.length === 0) {
        out.more = false;
        break;
      }
    }
  }
  if (opts.json) io.stdout(JSON.stringify(out, null, 2) + '\n');
  else {
    io.stdout(`redriven ${out.redriven} message${out.redriven === 1 ? '' : 's'} to the ingest queue\n`);
    for (const id of out.ids) io.stdout(`  ${id}\n`);
  }
  if (out.notFound > 0) {
    io.stderr(`rebootctl dlq redrive: not in the dead-letter queue: ${out.missing.join(', ')}\n`);
    return EXIT_FAILED;
  }
  if (out.more) {
    io.stderr('rebootctl dlq redrive: the server said more remain but moved none in its last call: run it again\n');
    return EXIT_FAILED;
  }
  return EXIT_OK;
}

const collect = (v: string, acc: string[]) => [...acc, v];

export function registerDlqCommands(program: Command): void {
  const dlq = program.command('dlq').description('the ingest dead-letter queue: events that failed after their retries');
  dlq
    .command('list')
    .description('list the messages parked in the DLQ, with the last failure the ingest path recorded')
    .requiredOption('--server <url>', 'API base URL, e.g. http://127.0.0.1:8080')
    .option('--token <token>', 'operator token (default: $REBOOT_OPERATOR_TOKEN; a flag shows in ps: prefer --token-file)')
    .option('--token-file <file>', 'read the operator token from this file: then it is in no command line or environment')
    .option('--limit <n>', 'at most this many messages (1-100, default 20)')
    .option('--json', 'print the API answer as JSON')
    .action(async (opts: DlqCliOptions) => {
      process.exitCode = await runDlqList(opts);
    });
  dlq
    .command('redrive')
    .description('move DLQ messages back to the ingest queue (all of them without --id)')
    .requiredOption('--server <url>', 'API base URL, e.g. http://127.0.0.1:8080')
    .option('--token <token>', 'operator token (default: $REBOOT_OPERATOR_TOKEN; a flag shows in ps: prefer --token-file)')
    .option('--token-file <file>', 'read the operator token from this file: then it is in no command line or environment')
    .option('--id <messageId>', 'a message id from `dlq list` (repeatable)', collect, [] as string[])
    .option('--json', 'print the API answer as JSON')
    .action(async (opts: DlqCliOptions) => {
      process.exitCode = await runDlqRedrive(opts);
    });
}
