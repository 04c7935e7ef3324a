// Reads a request body up to a limit: a body sent without Content-Length (chunked) is refused as soon as it
// passes the limit, instead of being held in memory whole first (a BMC streaming gigabytes would stop the API).
import type { Context } from 'hono';
import { PayloadTooLarge } from '../core/errors.ts';

export async function readBodyBytes(c: Context, max: number): Promise<Uint8Array> {
  const length = c.req.header('content-length');
  const declared = Number(length ?? 0);
  if (declared > max) throw new PayloadTooLarge(`body is ${declared} bytes; the limit is ${max}`);
  // With a length, Node's parser stops at it: read it whole, on the server's fast path (no web Request or
  // stream is built for it, which every event POST and agent result would pay for).
  if (length !== undefined) return new Uint8Array(await c.req.arrayBuffer());
  const stream = c.req.raw.body;
  if (!stream) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      // The rest is left unread: the server discards it once the 413 is sent.
      if (size > max) throw new PayloadTooLarge(`body is over ${max} bytes; the limit is ${max}`);
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
