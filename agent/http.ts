// A small HTTP client for the agent's two routes, on node:http(s) with keep-alive, timeouts and abort.
import type * as Http from 'node:http';
import { fs } from './builtins.ts';

// `import 'node:http'` from ESM builds the module namespace, whose lazy getters (WebSocket, ...)
// load undici: about 15 MB of RSS the agent never uses. getBuiltinModule returns the plain object.
const http = process.getBuiltinModule('node:http');

export interface HttpResponse {
  status: number;
  body: string;
  /** How far the server's clock is ahead of ours, from its Date header (1 s resolution); undefined without one. */
  serverAheadMs?: number;
}

/** The request never got a response: refused, reset, timed out, DNS... (worth retrying). */
export class NetworkError extends Error {
  override readonly name = 'NetworkError';
}

export interface HttpClient {
  request(method: 'GET' | 'POST', path: string, opts: { body?: unknown; timeoutMs: number; signal?: AbortSignal }): Promise<HttpResponse>;
  close(): void;
}

/** Responses are small JSON documents; anything larger than this is a broken or hostile server. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

/** PEM files for TLS: a private CA bundle, and a client certificate and key for mutual TLS. */
export interface TlsFiles {
  caFile?: string;
  clientCert?: string;
  clientKey?: string;
}

export function createHttpClient(server: string, token: string, userAgent: string, tls: TlsFiles = {}): HttpClient {
  const base = new URL(server.endsWith('/') ? server : server + '/');
  // https (and its TLS stack) is loaded only for an https server.
  const mod: typeof http = base.protocol === 'https:' ? (process.getBuiltinModule('node:https') as unknown as typeof http) : http;
  const agent = new mod.Agent({
    keepAlive: true,
    maxSockets: 4,
    // Read once at start: a renewed certificate takes effect with the agent's restart.
    ...(base.protocol === 'https:'
      ? {
          ...(tls.caFile ? { ca: fs.readFileSync(tls.caFile) } : {}),
          ...(tls.clientCert ? { cert: fs.readFileSync(tls.clientCert) } : {}),
          ...(tls.clientKey ? { key: fs.readFileSync(tls.clientKey) } : {}),
        }
      : {}),
  } as Http.AgentOptions);

  const once = (method: string, path: string, payload: string | undefined, timeoutMs: number, signal?: AbortSignal) =>
    new Promise<HttpResponse & { reused: boolean }>((resolve, reject) => {
      const url = new URL(path.replace(/^\//, ''), base);
      let reused = false;
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        cleanup();
        reject(Object.assign(new NetworkError(err.message), { code: (err as NodeJS.ErrnoException).code, reused }));
      };
      const req = mod.request(url, {
        method,
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          'user-agent': userAgent,
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      });
      const timer = setTimeout(
        () => req.destroy(Object.assign(new Error(`no response within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
        timeoutMs,
      );
      const onAbort = () => req.destroy(Object.assign(new Error('request aborted'), { code: 'ABORT_ERR' }));
      signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      req.on('socket', () => {
        reused = (req as Http.ClientRequest & { reusedSocket: boolean }).reusedSocket;
      });
      req.on('error', fail);
      req.on('response', (res) => {
        // The header is written with the response head and truncated to the second: +500 ms is its middle.
        const date = res.headers.date ? Date.parse(res.headers.date) : Number.NaN;
        const serverAheadMs = Number.isNaN(date) ? undefined : date + 500 - Date.now();
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('error', fail);
        res.on('end', () => {
          if (settled) return;
          settled = true;
          cleanup();
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), serverAheadMs, reused });
        });
      });
      if (signal?.aborted) onAbort();
      req.end(payload);
    });

  return {
    async request(method, path, { body, timeoutMs, signal }) {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      try {
        const { reused: _, ...res } = await once(method, path, payload, timeoutMs, signal);
        return res;
      } catch (err) {
        // A keep-alive socket the server closed while idle fails on reuse: retry once on a fresh
        // socket instead of reporting the server unreachable. Both routes are safe to repeat.
        const e = err as NetworkError & { reused?: boolean; code?: string };
        if (e.reused && !signal?.aborted && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) {
          const { reused: _, ...res } = await once(method, path, payload, timeoutMs, signal);
          return res;
        }
        throw err;
      }
    },
    close() {
      agent.destroy();
    },
  };
}
