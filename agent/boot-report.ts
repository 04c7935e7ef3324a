// The agent reports its own boots (contract 7.2): a boot id other than the one it stored last time
// means the machine rebooted, so at start it posts `xpu.ready` (xPU agent) or `host.ready` (host
// agent) itself; a return is seen even when the BMC says nothing.
import { join } from 'node:path';
import { fs } from './builtins.ts';
import { createHttpClient, type TlsFiles } from './http.ts';

const { mkdirSync, readFileSync, renameSync, writeFileSync } = fs;

/** Linux's id of the current boot; REBOOT_BOOT_ID_FILE overrides it (tests, other systems). */
export function bootIdPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.REBOOT_BOOT_ID_FILE || '/proc/sys/kernel/random/boot_id';
}

/** The current boot id, or undefined where the system has none. */
export function readBootId(path = bootIdPath()): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface BootReportDeps extends TlsFiles {
  server: string;
  agent: string;
  token: string;
  /** The agent's state dir (its journal's): the last boot id is kept there as `boot-id`. */
  stateDir: string;
  bootIdFile?: string;
  log: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
  /** Tests only; by default the agent's own node:http client (see reportBoot). */
  fetch?: typeof fetch;
  /** Give up after this long (the server may be down at boot); the next start tries again. */
  timeoutMs?: number;
}

export type BootReport =
  | { kind: 'first-start' | 'same-boot' | 'no-boot-id' }
  | { kind: 'reported'; type: string; eventId: string }
  | { kind: 'failed'; error: string };

/**
 * Compares the boot id with the stored one and reports a changed one. The new id is stored only
 * once the server accepted the event, so a report lost to an unreachable server is sent at the
 * next start. The very first start only records the id: nothing says the machine rebooted.
 */
export async function reportBoot(d: BootReportDeps): Promise<BootReport> {
  const boot = readBootId(d.bootIdFile ?? bootIdPath());
  if (!boot) return { kind: 'no-boot-id' };
  const file = join(d.stateDir, 'boot-id');
  let last: string | undefined;
  try {
    last = readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    last = undefined;
  }
  if (last === boot) {
    d.log('info', 'boot report: same boot as at the last start, nothing to report');
    return { kind: 'same-boot' };
  }
  const store = () => {
    mkdirSync(d.stateDir, { recursive: true });
    writeFileSync(`${file}.tmp`, `${boot}\n`);
    renameSync(`${file}.tmp`, file);
  };
  if (last === undefined) {
    store();
    d.log('info', 'boot report: first start, boot id recorded');
    return { kind: 'first-start' };
  }
  const dot = d.agent.indexOf('.');
  const node = dot < 0 ? d.agent : d.agent.slice(0, dot);
  const xpu = dot < 0 ? undefined : d.agent.slice(dot + 1);
  const type = xpu ? 'xpu.ready' : 'host.ready';
  // One event per boot: a repeat after a crash before storing the id is deduped by the server.
  const eventId = `boot-${d.agent}-${boot}`;
  // The agent's own client, not fetch: fetch loads undici (~15 MB that would stay resident in the
  // daemon after every reboot it reports), and it would not use the agent's CA and client certificate.
  const http = d.fetch ? undefined : createHttpClient(d.server, d.token, `rebootctl-agent (${d.agent})`, d);
  const send: Send = http ? (body) => http.request('POST', 'v1/events', { body, timeoutMs: 10_000 }) : viaFetch(d, d.fetch!);
  try {
    return await post(d, send, { boot, last, store, type, node, xpu, eventId });
  } finally {
    http?.close();
  }
}

type Send = (body: unknown) => Promise<{ status: number; body: string }>;

function viaFetch(d: BootReportDeps, f: typeof fetch): Send {
  const base = new URL(d.server);
  const url = new URL(`${base.pathname.replace(/\/+$/, '')}/v1/events`, base);
  return async (body) => {
    const res = await f(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${d.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, body: await res.text().catch(() => '') };
  };
}

async function post(
  d: BootReportDeps,
  send: Send,
  {
    boot,
    last,
    store,
    type,
    node,
    xpu,
    eventId,
  }: { boot: string; last: string; store: () => void; type: string; node: string; xpu?: string; eventId: string },
): Promise<BootReport> {
  const until = Date.now() + (d.timeoutMs ?? 60_000);
  let delay = 500;
  for (;;) {
    try {
      const res = await send({
        id: eventId,
        type,
        node,
        ...(xpu ? { xpu } : {}),
        data: { bootId: boot, previousBootId: last, reportedBy: 'agent' },
      });
      if (res.status === 202) {
        store();
        d.log('info', 'boot report: reported this boot', { type, eventId });
        return { kind: 'reported', type, eventId };
      }
      const text = res.body;
      // A refusal will not change by retrying (wrong token, unknown node): say so and go on.
      if (res.status >= 400 && res.status < 500 && res.status !== 429) {
        d.log('warn', 'boot report: the server refused it', { status: res.status, body: text.slice(0, 300) });
        return { kind: 'failed', error: `${res.status}` };
      }
    } catch (err) {
      if (Date.now() > until) {
        d.log('warn', 'boot report: could not report this boot; will try at the next start', { error: String(err) });
        return { kind: 'failed', error: String(err) };
      }
    }
    if (Date.now() > until) return { kind: 'failed', error: 'timed out' };
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 5000);
  }
}
