// What `rebootctl announce` and `rebootctl host-reboot` share: the agent's token, a small client
// that retries what may be retried, and finding the reboot an event started or joined.
import { readFileSync } from 'node:fs';
import { createHash, randomUUID } from 'node:crypto';
import { readTokenFile } from './token-option.ts';

/** Exit codes of the participant commands (contract 7.2). */
export const EXIT = Object.freeze({ ok: 0, error: 1, usage: 2, denied: 3, timedOut: 4 });

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The request failed in a way a retry will not fix (4xx other than 429). */
export class Refused extends Error {
  override readonly name = 'Refused';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface ParticipantOpts {
  server: string;
  agent: string;
  token?: string;
  tokenFile?: string;
}

/**
 * --token, else --token-file, else REBOOT_AGENT_TOKEN, else REBOOT_AGENT_TOKEN_FILE. A token in the
 * environment beats a file named there: the shutdown gate's unit names the agent's token file by default,
 * and an agent.env that holds the token itself (its earlier form) must keep working.
 */
export function resolveToken(opts: ParticipantOpts, env: NodeJS.ProcessEnv = process.env): string {
  if (opts.token && opts.tokenFile) throw new UsageError('give either --token or --token-file, not both');
  if (opts.token) return oneWord(opts.token, '--token');
  if (!opts.tokenFile && env.REBOOT_AGENT_TOKEN) return oneWord(env.REBOOT_AGENT_TOKEN, 'REBOOT_AGENT_TOKEN');
  const file = opts.tokenFile ?? env.REBOOT_AGENT_TOKEN_FILE;
  if (file) {
    // The operator commands' reader: trimmed, one word, else a usage error (not requests retried until --wait).
    try {
      return readTokenFile(file);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  throw new UsageError('a token is needed: --token, --token-file, or REBOOT_AGENT_TOKEN(_FILE)');
}

/** A token goes into an Authorization header as is: one word of printable ASCII. */
function oneWord(token: string, where: string): string {
  const t = token.trim();
  if (!/^[\x21-\x7e]+$/.test(t)) throw new UsageError(`the token (${where}) must be one word of printable ASCII`);
  return t;
}

export function seconds(value: string, what: string, min = 0): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`${what} must be a number of seconds${min > 0 ? ` of at least ${min}` : ''}`);
  return n;
}

/**
 * A stable event id for one announcement: the same command run again in the same boot of the xPU
 * (a retry, a second run by a shutdown script) names the same event, which the coordinator
 * dedupes. Without a boot id the id is stable within this run only.
 */
export function stableEventId(prefix: string, parts: string[]): string {
  const boot = readBootId() ?? randomUUID();
  const h = createHash('sha256')
    .update([boot, ...parts].join('\n'))
    .digest('hex')
    .slice(0, 20);
  return `${prefix}-${h}`;
}

/**
 * The current boot id, as agent/boot-report.ts reads it. Not imported from there on purpose: a
 * module of the agent's daemon loaded by the CLI before `rebootctl agent` enables the compile cache
 * misses that cache, and the re-executed daemon then loads Node's TypeScript compiler (~17 MB
 * resident) just for it (test/integration/agent-lean.test.ts).
 */
function readBootId(): string | undefined {
  try {
    return readFileSync(process.env.REBOOT_BOOT_ID_FILE || '/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What these commands read of a reboot (the API's public shape, loosely: it may grow). */
export interface RebootView {
  id: string;
  kind: 'xpu' | 'host';
  xpu: string | null;
  status: string;
  deadline: string | null;
  denyReason?: string;
  cancelReason?: string;
  commands?: Record<string, { type: string; agent: string; status: string }>;
  history?: Array<{ detail?: unknown }>;
}

/** A client of the coordinator API for one agent token; transient failures are retried until `until`. */
export class Client {
  readonly server: string;
  readonly token: string;
  /** Epoch ms after which nothing is retried. */
  readonly until: number;
  constructor(server: string, token: string, until: number) {
    this.server = server;
    this.token = token;
    this.until = until;
  }

  async request<T = unknown>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: T }> {
    const base = new URL(this.server);
    const url = new URL(`${base.pathname.replace(/\/+$/, '')}${path}`, base);
    let delay = 250;
    for (;;) {
      let failure: string;
      try {
        const res = await fetch(url, {
          method,
          headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          body: body !== undefined ? JSON.stringify(body) : undefined,
          signal: AbortSignal.timeout(Math.max(1000, Math.min(15_000, this.until - Date.now()))),
        });
        const json = (await res.json().catch(() => undefined)) as (T & { error?: string; message?: string }) | undefined;
        if (res.ok || (res.status === 404 && method === 'GET')) return { status: res.status, json: json as T };
        if (res.status >= 400 && res.status < 500 && res.status !== 429)
          throw new Refused(res.status, `${res.status} ${json?.error ?? ''}: ${json?.message ?? res.statusText}`);
        failure = `${res.status} ${json?.message ?? res.statusText}`;
      } catch (err) {
        if (err instanceof Refused) throw err;
        // fetch() says only "fetch failed"; its cause holds ECONNREFUSED, ENOTFOUND or the TLS error.
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        failure = cause ? `cannot reach ${url.origin}: ${cause.code ?? cause.message}` : (err as Error).message;
      }
      if (Date.now() + delay > this.until) throw new TimedOut(`the coordinator did not answer in time (last: ${failure})`);
      await sleep(delay);
      delay = Math.min(delay * 2, 2000);
    }
  }
}

export class TimedOut extends Error {
  override readonly name = 'TimedOut';
}

const FINAL = new Set(['completed', 'denied', 'failed', 'cancelled']);

/**
 * The reboot an event started or joined: the one with the id the coordinator derives from the event
 * (`preferId`), else an active one of the node whose history names the event, else (when `fallback`
 * matches) the newest active one of that kind and xPU.
 */
export async function findReboot(
  client: Client,
  node: string,
  eventId: string,
  preferId: string,
  fallback: (r: RebootView) => boolean,
): Promise<RebootView | undefined> {
  const own = await client.request<RebootView>('GET', `/v1/reboots/${encodeURIComponent(preferId)}`);
  if (own.status === 200) return own.json;
  const page = await client.request<{ items?: RebootView[] } | undefined>('GET', `/v1/reboots?node=${encodeURIComponent(node)}&limit=50`);
  const items = page.json?.items ?? [];
  const names = (r: RebootView) => (r.history ?? []).some((h) => typeof h.detail === 'string' && h.detail.includes(`event ${eventId})`));
  return items.find((r) => names(r)) ?? items.find((r) => !FINAL.has(r.status) && fallback(r));
}
