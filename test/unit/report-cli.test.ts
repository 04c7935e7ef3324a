// `rebootctl report` against a real local HTTP server: query, token, output, and the server's errors.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { registerReportCommand, runReport, type ReportCliIo } from '../../cli/commands/report.ts';

let server: Server;
let base = '';
let seen: IncomingMessage[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req);
    if (req.headers.authorization !== 'Bearer op-token') {
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: 'Unauthorized', message: 'bad or missing token' }));
      return;
    }
    const url = new URL(req.url!, 'http://x');
    if (!url.pathname.endsWith('/v1/reports/compliance')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not here');
      return;
    }
    const format = url.searchParams.get('format');
    res.writeHead(200, { 'content-type': format === 'csv' ? 'text/csv' : 'application/json' });
    res.end(
      format === 'csv'
        ? 'id,kind\r\nx1,xpu\r\n'
        : JSON.stringify({ schemaVersion: '1.0', from: url.searchParams.get('from'), to: url.searchParams.get('to') }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  seen = [];
});

function io(env: Record<string, string> = {}) {
  const out = { stdout: '', stderr: '', files: {} as Record<string, string> };
  const io: ReportCliIo = {
    fetch: (...a) => fetch(...a),
    env,
    stdout: (s) => (out.stdout += s),
    stderr: (s) => (out.stderr += s),
    writeFile: async (p, d) => {
      out.files[p] = d;
    },
  };
  return { io, out };
}

const args = { from: '2024-05-01T00:00:00Z', to: '2024-05-02', token: 'op-token' };

describe('rebootctl report', () => {
  it('GETs the compliance route with the window, format and bearer token, and prints the body', async () => {
    const { io: cli, out } = io();
    const code = await runReport({ ...args, server: base, format: 'json' }, cli);
    expect(code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ schemaVersion: '1.0', from: '2024-05-01T00:00:00.000Z', to: '2024-05-02T00:00:00.000Z' });
    expect(seen).toHaveLength(1);
    expect(seen[0].method).toBe('GET');
    expect(seen[0].url).toBe('/v1/reports/compliance?from=2024-05-01T00%3A00%3A00.000Z&to=2024-05-02T00%3A00%3A00.000Z&format=json');
  });

  it('takes the token from REBOOT_OPERATOR_TOKEN and keeps a path prefix of --server', async () => {
    const { io: cli, out } = io({ REBOOT_OPERATOR_TOKEN: 'op-token' });
    const code = await runReport({ from: args.from, to: args.to, server: `${base}/prod/`, format: 'csv' }, cli);
    expect(code).toBe(0);
    expect(out.stdout).toBe('id,kind\r\nx1,xpu\r\n');
    expect(seen[0].url).toMatch(/^\/prod\/v1\/reports\/compliance\?/);
  });

  it('writes the body to --out instead of printing it', async () => {
    const { io: cli, out } = io();
    expect(await runReport({ ...args, server: base, format: 'csv', out: 'r.csv' }, cli)).toBe(0);
    expect(out.files).toEqual({ 'r.csv': 'id,kind\r\nx1,xpu\r\n' });
    expect(out.stdout).toBe('');
  });

  it("shows the server's error and message on stderr and exits non-zero", async () => {
    const { io: cli, out } = io();
    expect(await runReport({ ...args, token: 'wrong', server: base }, cli)).toBe(1);
    expect(out.stdout).toBe('');
    expect(out.stderr).toBe('rebootctl report: HTTP 401: Unauthorized: bad or missing token\n');
  });

  it.each([
    [{ from: 'yesterday' }, '--from must be an ISO 8601'],
    [{ to: '2024-04-01' }, '--from must be before --to'],
    [{ format: 'pdf' }, '--format must be one of json, csv, html'],
    [{ server: 'ftp://x' }, '--server must be an http(s) URL'],
    [{ token: undefined }, '--token or REBOOT_OPERATOR_TOKEN is required'],
  ])('refuses %o before calling the server', async (bad, message) => {
    const { io: cli, out } = io();
    expect(await runReport({ ...args, server: base, ...bad }, cli)).toBe(2);
    expect(out.stderr).toContain(message);
    expect(seen).toHaveLength(0);
  });

  it('reports an unreachable server', async () => {
    const { io: cli, out } = io();
    expect(await runReport({ ...args, server: 'http://127.0.0.1:1' }, cli)).toBe(1);
    expect(out.stderr).toMatch(/^rebootctl report: cannot reach http:\/\/127\.0\.0\.1:1/);
  });

  it('is wired as a commander sub-command that sets the exit code', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'report-cli-'));
    const program = new Command('rebootctl').exitOverride();
    registerReportCommand(program);
    const saved = process.exitCode;
    try {
      await program.parseAsync(
        [
          'report',
          '--server',
          base,
          '--token',
          'op-token',
          '--from',
          args.from,
          '--to',
          args.to,
          '--format',
          'csv',
          '--out',
          join(dir, 'r.csv'),
        ],
        { from: 'user' },
      );
      expect(process.exitCode).toBe(0);
    } finally {
      process.exitCode = saved;
    }
    expect(readFileSync(join(dir, 'r.csv'), 'utf8')).toBe('id,kind\r\nx1,xpu\r\n');
  });
});
