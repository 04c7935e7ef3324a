// `rebootctl reboots list|show`: what operators ask first: which reboots, in what state, and their history.
import type { Command } from 'commander';
import { fetchOrSayWhy } from './reach.ts';
import { addTokenOptions, readTokenOption, TokenOptionError } from './token-option.ts';
import { serverUrl, USAGE_EXIT, UsageError, wholeNumber } from './usage-exit.ts';

interface Opts {
  server: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
}

async function get(opts: Opts, path: string): Promise<any> {
  const token = readTokenOption(opts);
  if (!token) throw new UsageError('a token is needed: --token-file, --token, or REBOOT_OPERATOR_TOKEN');
  const base = serverUrl(opts.server);
  const url = new URL(`${base.pathname.replace(/\/+$/, '')}${path}`, base);
  const res = await fetchOrSayWhy(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) });
  const body: any = await res.json().catch(() => undefined);
  if (!res.ok) throw new Error(`${res.status} ${body?.error ?? ''}: ${body?.message ?? res.statusText}`);
  return body;
}

function run(action: (opts: any, ...rest: any[]) => Promise<void>) {
  return async (...args: any[]) => {
    try {
      await action(...(args as [any]));
    } catch (err) {
      console.error(`rebootctl reboots: ${(err as Error).message}`);
      process.exitCode = err instanceof UsageError || err instanceof TokenOptionError ? USAGE_EXIT : 1;
    }
  };
}

export function registerRebootsCommands(program: Command): void {
  const reboots = program.command('reboots').description('list reboots and show one with its history (operator or node agent token)');
  const common = (c: Command) =>
    addTokenOptions(c.requiredOption('--server <url>', 'the coordinator API, e.g. http://127.0.0.1:8080'), 'bearer token').option(
      '--json',
      "print the API's JSON",
    );

  common(reboots.command('list').description('newest first'))
    .option('--node <id>', 'only this node')
    .option(
      '--status <status>',
      'only this status (queued, notified, preparing, extended, rebooting, recovering, completed, denied, failed, cancelled)',
    )
    .option('--limit <n>', 'at most this many', '20')
    .option('--cursor <cursor>', 'the next page: the cursor the previous page printed')
    .action(
      run(async (opts: Opts & { node?: string; status?: string; limit: string; cursor?: string }) => {
        const q = new URLSearchParams({ limit: String(wholeNumber(opts.limit, '--limit')) });
        if (opts.node) q.set('node', opts.node);
        if (opts.status) q.set('status', opts.status);
        if (opts.cursor) q.set('cursor', opts.cursor);
        const page = await get(opts, `/v1/reboots?${q}`);
        if (opts.json) return void console.log(JSON.stringify(page, null, 2));
        if (page.items.length === 0) return void console.log('no reboots');
        // Reboot ids are `xr-`/`hr-` and a ULID (29 characters): the column fits the longest one shown.
        const idWidth = Math.max(22, ...page.items.map((r: { id: string }) => r.id.length));
        console.log(
          ['ID'.padEnd(idWidth), 'KIND', 'NODE'.padEnd(14), 'XPU'.padEnd(8), 'STATUS'.padEnd(11), 'NOTIFIED'.padEnd(24), 'DEADLINE'].join(
            ' ',
          ),
        );
        for (const r of page.items)
          console.log(
            [
              r.id.padEnd(idWidth),
              r.kind.padEnd(4),
              r.node.padEnd(14),
              String(r.xpu ?? '-').padEnd(8),
              `${r.status}${r.forced ? '!' : ''}`.padEnd(11),
              r.notifiedAt.padEnd(24),
              r.deadline ?? '-',
            ].join(' '),
          );
        if (page.items.some((r: { forced?: boolean }) => r.forced))
          console.log('!: forced (at its deadline or by an operator: rebootctl reboots show says which)');
        if (page.next) console.log(`(more: --cursor ${page.next})`);
      }),
    );

  common(reboots.command('show <id>').description('one reboot: status, deadline, extensions, commands and history')).action(
    run(async (id: string, opts: Opts) => {
      const r = await get(opts, `/v1/reboots/${encodeURIComponent(id)}`);
      if (opts.json) return void console.log(JSON.stringify(r, null, 2));
      // An operator's force (POST .../force) is recorded by them; the deadline's by the coordinator.
      const forcer = (r.history as Array<{ phase: string; by?: string }>).filter((h) => h.phase === 'forced').at(-1)?.by;
      const forced = !r.forced ? '' : forcer && forcer !== 'coordinator' ? ` (forced by ${forcer})` : ' (forced at the deadline)';
      console.log(`${r.id}  ${r.kind} reboot of ${r.node}${r.xpu ? `/${r.xpu}` : ''}: ${r.status}${forced}`);
      if (r.deadline) console.log(`deadline ${r.deadline} (notice ${r.noticeSeconds}s; policy ${r.policyNoticeSeconds}s)`);
      for (const e of r.extensions)
        console.log(`extension +${e.granted}s of ${e.requested}s asked at ${e.at}${e.reason ? `: ${e.reason}` : ''}`);
      if (r.denyReason) console.log(`denied: ${r.denyReason}`);
      const cmds = Object.values(r.commands ?? {}) as Array<{ type: string; agent: string; status: string; output?: string }>;
      if (cmds.length) {
        console.log('commands:');
        for (const c of cmds) {
          console.log(`  ${c.type.padEnd(18)} ${c.agent.padEnd(16)} ${c.status}`);
          // The reboot keeps the output of a failed command (its tail): the last lines say why.
          for (const line of (c.output ?? '').trimEnd().split('\n').filter(Boolean).slice(-3)) console.log(`      ${line}`);
        }
      }
      console.log('history:');
      for (const h of r.history) console.log(`  ${h.at}  ${h.phase.padEnd(18)} ${String(h.by ?? '-').padEnd(20)} ${h.detail}`);
    }),
  );
}
