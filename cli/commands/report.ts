// `rebootctl report`: fetches the compliance report from the API and prints it or writes it to a file.
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { readTokenOption } from './token-option.ts';
import { usageErrorsExit2 } from './usage-exit.ts';
import { InvalidReportQuery, parseIsoInstant } from '../../lambdas/core/report/query.ts';
import { REPORT_FORMATS } from '../../lambdas/core/report/render.ts';

export interface ReportCliOptions {
  server?: string;
  token?: string;
  tokenFile?: string;
  from?: string;
  to?: string;
  format?: string;
  out?: string;
}

/** Everything the command touches outside itself, so tests can run it without a process exit. */
export interface ReportCliIo {
  fetch: typeof fetch;
  env: Record<string, string | undefined>;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  writeFile: (path: string, data: string) => Promise<void>;
}

export const EXIT_OK = 0;
/** The server refused or could not be reached. */
export const EXIT_FAILED = 1;
/** The command line was wrong; nothing was sent. */
export const EXIT_USAGE = 2;

// A year of reboots across a large fleet takes the server a while to compute and render.
const REQUEST_TIMEOUT_MS = 5 * 60_000;

const defaultIo: ReportCliIo = {
  fetch: (...args) => fetch(...args),
  env: process.env,
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  writeFile: (path, data) => writeFile(path, data, 'utf8'),
};

export async function runReport(opts: ReportCliOptions, io: ReportCliIo = defaultIo): Promise<number> {
  const fail = (code: number, msg: string) => {
    io.stderr(`rebootctl report: ${msg}\n`);
    return code;
  };

  let url: URL;
  try {
    if (!opts.server) return fail(EXIT_USAGE, '--server is required');
    const base = new URL(opts.server);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') return fail(EXIT_USAGE, '--server must be an http(s) URL');
    const from = parseIsoInstant(opts.from, '--from');
    const to = parseIsoInstant(opts.to, '--to');
    if (from.getTime() >= to.getTime()) return fail(EXIT_USAGE, '--from must be before --to');
    const format = opts.format ?? 'json';
    if (!(REPORT_FORMATS as readonly string[]).includes(format)) {
      return fail(EXIT_USAGE, `--format must be one of ${REPORT_FORMATS.join(', ')}`);
    }
    // Keep any path prefix of --server (an API Gateway stage, a reverse proxy).
    url = new URL(`${base.pathname.replace(/\/+$/, '')}/v1/reports/compliance`, base);
    url.search = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), format }).toString();
  } catch (err) {
    if (err instanceof InvalidReportQuery) return fail(EXIT_USAGE, err.message);
    if (err instanceof TypeError) return fail(EXIT_USAGE, `--server is not a valid URL: ${opts.server}`);
    throw err;
  }

  let token: string | undefined;
  try {
    token = readTokenOption(opts, io.env);
  } catch (err) {
    return fail(EXIT_USAGE, (err as Error).message);
  }
  if (!token) return fail(EXIT_USAGE, '--token-file, --token or REBOOT_OPERATOR_TOKEN is required');

  let res: Response;
  let body: string;
  try {
    res = await io.fetch(url, {
      headers: { authorization: `Bearer ${token}`, accept: '*/*' },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    body = await res.text();
  } catch (err) {
    // fetch() says only "fetch failed"; the cause holds ECONNREFUSED, ENOTFOUND or the TLS error.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    return fail(EXIT_FAILED, `cannot reach ${url.origin}: ${why}`);
  }

  if (!res.ok) return fail(EXIT_FAILED, `HTTP ${res.status}: ${describeError(body)}`);

  if (opts.out) {
    try {
      await io.writeFile(opts.out, body);
    } catch (err) {
      return fail(EXIT_FAILED, `cannot write ${opts.out}: ${(err as Error).message}`);
    }
    io.stderr(`rebootctl report: wrote ${opts.out} (${Buffer.byteLength(body)} bytes)\n`);
  } else {
    io.stdout(body);
  }
  return EXIT_OK;
}

/** The contract's `{"error","message"}`, or the start of whatever a proxy sent instead. */
function describeError(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown; message?: unknown };
    if (parsed && typeof parsed === 'object' && (parsed.error || parsed.message)) {
      return [parsed.error, parsed.message]
        .filter((x) => x !== undefined && x !== '')
        .map(String)
        .join(': ');
    }
  } catch {
    // not JSON: fall through
  }
  const text = body.trim().slice(0, 500);
  return text || '(empty response)';
}

export function registerReportCommand(program: Command): void {
  // A command line that does not parse exits 2 (EXIT_USAGE), like one whose --from does not parse.
  usageErrorsExit2(program.command('report'))
    .description('fetch the compliance report of the reboots notified in [from, to)')
    .requiredOption('--server <url>', 'API base URL, e.g. http://127.0.0.1:8080')
    .option('--token-file <file>', 'read the operator token from this file: then it is in no command line or environment')
    .option('--token <token>', 'operator token (default: $REBOOT_OPERATOR_TOKEN; a flag shows in ps: prefer --token-file)')
    .requiredOption('--from <iso>', 'window start, inclusive (ISO 8601, e.g. 2024-05-01T00:00:00Z)')
    .requiredOption('--to <iso>', 'window end, exclusive (ISO 8601)')
    .option('--format <format>', `${REPORT_FORMATS.join('|')}`, 'json')
    .option('--out <file>', 'write the report to FILE instead of stdout')
    .addHelpText(
      'after',
      '\nExit status: 0 the report was printed or written; 1 the server refused or could not be reached;\n2 the command line does not parse (nothing was asked).',
    )
    .action(async (opts: ReportCliOptions) => {
      process.exitCode = await runReport(opts);
    });
}
