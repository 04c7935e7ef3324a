// `rebootctl rollout start|status|cancel` and `rebootctl status`: rollouts and the fleet table, over the operator API.
import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { fetchOrSayWhy } from './reach.ts';
import { addTokenOptions, readTokenOption, TokenOptionError } from './token-option.ts';
import { positiveSeconds, serverUrl, USAGE_EXIT, UsageError, wholeNumber } from './usage-exit.ts';

interface Opts {
  server: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
}

/** The operator token, read like every other command reads it (cli/commands/token-option.ts). */
function tokenOf(opts: Opts): string {
  const token = readTokenOption(opts);
  if (!token) throw new UsageError('a token is needed: --token, --token-file, or REBOOT_OPERATOR_TOKEN');
  return token;
}

async function call(opts: Opts, method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<any> {
  const base = serverUrl(opts.server);
  const url = new URL(`${base.pathname.replace(/\/+$/, '')}${path}`, base);
  const token = tokenOf(opts);
  const res = await fetchOrSayWhy(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(30_000),
  });
  const json: any = await res.json().catch(() => undefined);
  if (!res.ok)
    throw Object.assign(new Error(`${res.status} ${json?.error ?? ''}: ${json?.message ?? res.statusText}`), { status: res.status });
  return json;
}

/** Tries of a rollout start: the first and two more, 1 s then 2 s apart. */
const START_TRIES = 3;

/**
 * POST /v1/rollouts with an Idempotency-Key, sent again with the same key when no answer came (the
 * connection failed, or a 5xx: the server may have died inside the start). The key makes a repeat
 * answer the rollout the first started instead of a 409 for the claims it left (docs/idempotency.md).
 */
async function startRollout(opts: Opts, body: unknown, key: string): Promise<any> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(opts, 'POST', '/v1/rollouts', body, { 'idempotency-key': key });
    } catch (err) {
      // A usage error (no token, an unreadable token file, a bad --server) sent nothing: nothing to send again.
      if (err instanceof UsageError || err instanceof TokenOptionError) throw err;
      const status = (err as { status?: number }).status;
      const unanswered = status === undefined || status >= 500;
      if (!unanswered || attempt >= START_TRIES) throw err;
      console.error(`rebootctl rollout start: ${(err as Error).message}; sending it again (Idempotency-Key ${key})`);
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
}

function run(what: string, action: (...args: any[]) => Promise<void>) {
  return async (...args: any[]) => {
    try {
      await action(...args);
    } catch (err) {
      console.error(`rebootctl ${what}: ${(err as Error).message}`);
      process.exitCode = err instanceof UsageError || err instanceof TokenOptionError ? USAGE_EXIT : 1;
    }
  };
}

/** `[#####>----]`-style bar: done in `#`, failed in `x`, in flight in `>`, the rest `-`. */
export function progressBar(r: { plan: unknown[]; done: unknown[]; failed: unknown[]; inFlight: number }, width = 30): string {
  const total = Math.max(r.plan.length, 1);
  const cells = (n: number) => Math.round((n / total) * width);
  const done = cells(r.done.length);
  const failed = Math.min(cells(r.failed.length), width - done);
  const flight = Math.min(cells(r.inFlight), width - done - failed);
  return `[${'#'.repeat(done)}${'x'.repeat(failed)}${'>'.repeat(flight)}${'-'.repeat(width - done - failed - flight)}]`;
}

/** One line: what a rollout has done of its plan. */
export function summaryLine(r: any): string {
  return `${r.id} ${r.status}: ${r.done.length}/${r.plan.length} done, ${r.failed.length} failed, ${r.inFlight} in flight${r.blocked ? ` (waiting: ${r.blocked})` : ''}`;
}

/** Plain lines for pipes and logs: the summary, then one line per xPU. */
export function plainStatus(r: any): string[] {
  const lines = [summaryLine(r)];
  for (const it of [...r.done, ...r.failed, ...r.pending].sort((a: any, b: any) => indexOf(r, a) - indexOf(r, b)))
    lines.push(`  ${`${it.node}/${it.xpu}`.padEnd(24)} ${it.state.padEnd(10)} ${it.rebootId ?? '-'}${it.reason ? `  ${it.reason}` : ''}`);
  return lines;
}

function indexOf(r: any, it: any): number {
  return r.plan.findIndex((p: any) => p.node === it.node && p.xpu === it.xpu);
}

const ENDED = new Set(['completed', 'cancelled']);

export function registerRolloutCommands(program: Command): void {
  const common = (c: Command) =>
    addTokenOptions(c.requiredOption('--server <url>', 'the coordinator API, e.g. http://127.0.0.1:8080')).option(
      '--json',
      "print the API's JSON",
    );

  const rollout = program
    .command('rollout')
    .description('reboot a set of xPUs one after another (e.g. a firmware rollout), within budgets and windows');

  common(rollout.command('start').description('start a rollout over a node, rack, zone, tenant or the whole fleet'))
    .option('--node <id>', 'the xPUs of this node')
    .option('--rack <id>', 'the xPUs of this rack')
    .option('--zone <id>', 'the xPUs of this zone')
    .option('--tenant <id>', 'the xPUs of this tenant')
    .requiredOption('--max-unavailable <n>', 'at most this many xPUs rebooting at once')
    .requiredOption('--reason <text>', 'why (passed to each xPU as the reboot reason)')
    .option('--notice <seconds>', 'notice each xPU announces with (default: the policy)')
    .option('--max-failures <n>', 'pause after this many failed reboots', '1')
    .option('--dry-run', 'print the plan only; nothing starts')
    .option('--idempotency-key <key>', 'the same key on a second run answers the rollout the first started (default: a new one)')
    .action(
      run('rollout start', async (opts: Opts & Record<string, string | boolean | undefined>) => {
        const keys = (['node', 'rack', 'zone', 'tenant'] as const).filter((k) => opts[k] !== undefined);
        if (keys.length > 1) throw new UsageError('name at most one of --node, --rack, --zone, --tenant (none: the whole fleet)');
        const body = {
          selector: Object.fromEntries(keys.map((k) => [k, opts[k]])),
          maxUnavailable: wholeNumber(String(opts.maxUnavailable), '--max-unavailable'),
          reason: opts.reason,
          maxFailures: wholeNumber(String(opts.maxFailures), '--max-failures'),
          ...(opts.notice !== undefined ? { noticeSeconds: wholeNumber(String(opts.notice), '--notice') } : {}),
          ...(opts.dryRun ? { dryRun: true } : {}),
        };
        const key = typeof opts.idempotencyKey === 'string' ? opts.idempotencyKey : randomUUID();
        const res = await startRollout(opts, body, key);
        if (opts.json) return void console.log(JSON.stringify(res, null, 2));
        console.log(
          opts.dryRun
            ? `dry run: ${res.plan.length} xPUs would reboot, in this order:`
            : `rollout ${res.id} ${res.status}: ${res.plan.length} xPUs`,
        );
        for (const [i, p] of res.plan.entries()) console.log(`  ${String(i + 1).padStart(3)}. ${p.node}/${p.xpu}`);
      }),
    );

  common(rollout.command('status <id>').description('progress of a rollout (a bar on a terminal, plain lines otherwise)'))
    .option('--watch', 'keep showing it until the rollout has ended')
    .option('--interval <seconds>', 'with --watch: how often to look', '2')
    .action(
      run('rollout status', async (id: string, opts: Opts & { watch?: boolean; interval: string }) => {
        const tty = !!process.stdout.isTTY && !opts.json;
        const interval = positiveSeconds(opts.interval, '--interval');
        for (;;) {
          const r = await call(opts, 'GET', `/v1/rollouts/${encodeURIComponent(id)}`);
          if (opts.json) console.log(JSON.stringify(r, null, 2));
          else if (tty) {
            // Redraw in place: the bar, then the xPUs in flight and any failures.
            const lines = [
              `${progressBar(r)} ${summaryLine(r)}`,
              ...plainStatus(r)
                .slice(1)
                .filter((l) => !/ done /.test(l)),
            ];
            process.stdout.write(`\x1b[J${lines.join('\n')}\n`);
            if (opts.watch && !ENDED.has(r.status) && r.status !== 'paused') process.stdout.write(`\x1b[${lines.length}A`);
          } else console.log(plainStatus(r).join('\n'));
          if (!opts.watch || ENDED.has(r.status) || (r.status === 'paused' && r.inFlight === 0)) return;
          await new Promise((res) => setTimeout(res, Math.max(0.2, interval) * 1000));
        }
      }),
    );

  common(rollout.command('cancel <id>').description('start no further xPU; reboots under way finish'))
    .option('--reason <text>', 'why', '')
    .action(
      run('rollout cancel', async (id: string, opts: Opts & { reason: string }) => {
        const r = await call(opts, 'POST', `/v1/rollouts/${encodeURIComponent(id)}/cancel`, { reason: opts.reason });
        if (opts.json) return void console.log(JSON.stringify(r, null, 2));
        console.log(summaryLine(r));
      }),
    );

  common(rollout.command('list').description('the latest rollouts')).action(
    run('rollout list', async (opts: Opts) => {
      const res = await call(opts, 'GET', '/v1/rollouts');
      if (opts.json) return void console.log(JSON.stringify(res, null, 2));
      if (res.items.length === 0) return void console.log('no rollouts');
      for (const r of res.items) console.log(`${summaryLine(r)}  ${r.createdAt}  ${r.reason}`);
    }),
  );

  common(program.command('status').description('the fleet by rack: reboots in flight, queued, holds, budget use, rollouts')).action(
    run('status', async (opts: Opts) => {
      const f = await call(opts, 'GET', '/v1/fleet');
      if (opts.json) return void console.log(JSON.stringify(f, null, 2));
      console.log(fleetTable(f).join('\n'));
    }),
  );
}

/** `rebootctl status`: a table of nodes by rack, then budgets, holds and rollouts. */
export function fleetTable(f: any): string[] {
  const out: string[] = [];
  out.push(
    `${f.totals.nodes} nodes: ${f.totals.inFlight} reboots in flight, ${f.totals.queued} queued, ${f.totals.unavailableNodes} nodes unavailable`,
  );
  out.push('');
  out.push(['RACK'.padEnd(10), 'NODE'.padEnd(14), 'STATE'.padEnd(15), 'HOLDS'.padEnd(10), 'REBOOTS'].join(' '));
  for (const rack of f.racks) {
    for (const [i, n] of rack.nodes.entries()) {
      const reboots = [
        ...n.reboots.map(
          (r: any) =>
            `${r.kind === 'host' ? 'host' : r.xpu} ${r.status}${r.deadline && ['notified', 'preparing', 'extended', 'queued'].includes(r.status) ? ` until ${r.deadline.slice(11, 19)}` : ''} (${r.id})`,
        ),
        // Asked by a rollout (reboot-xpu out), not announced yet.
        ...(n.asked ?? []).map((x: string) => `${x} asked by a rollout`),
      ].join('; ');
      out.push(
        [
          (i === 0 ? rack.rack : '').padEnd(10),
          n.id.padEnd(14),
          n.state.padEnd(15),
          (n.holds.length ? n.holds.join(',') : '-').padEnd(10),
          reboots || '-',
        ].join(' '),
      );
    }
  }
  if (f.budgets.length) {
    out.push('', 'BUDGETS');
    // `key` is `<per>:<value>` (budget items), or the value alone.
    for (const b of f.budgets)
      out.push(
        `  ${`${b.per} ${String(b.key).startsWith(`${b.per}:`) ? b.key.slice(b.per.length + 1) : b.key}`.padEnd(24)} ${b.unavailable}/${b.maxUnavailable} unavailable${b.unavailable >= b.maxUnavailable ? '  (full)' : ''}`,
      );
  }
  if (f.holds.length) {
    out.push('', 'HOLDS');
    for (const h of f.holds)
      out.push(
        `  ${h.id.padEnd(24)} ${Object.entries(h.selector)
          .map(([k, v]) => `${k}=${v}`)
          .join(',')}${h.until ? ` until ${h.until}` : ''}${h.reason ? `  ${h.reason}` : ''}`,
      );
  }
  const live = f.rollouts.filter((r: any) => r.status === 'running' || r.status === 'paused');
  if (live.length) {
    out.push('', 'ROLLOUTS');
    for (const r of live)
      out.push(`  ${r.id} ${r.status}: ${r.done}/${r.total} done, ${r.failed} failed, ${r.inFlight} in flight  ${r.reason}`);
  }
  return out;
}
