// Captures a hook's output within a byte budget, keeping the tail: the end of a log says why it failed.

export class TailBuffer {
  readonly limit: number;
  #chunks: Buffer[] = [];
  #size = 0;
  #dropped = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    // Compact only when twice over budget, so a chatty hook costs O(n) copies, not O(n^2).
    if (this.#size > this.limit * 2) {
      const all = Buffer.concat(this.#chunks);
      const keep = all.subarray(all.length - this.limit);
      this.#dropped += all.length - keep.length;
      this.#chunks = [Buffer.from(keep)];
      this.#size = keep.length;
    }
  }

  /** All bytes seen so far, including the ones dropped. */
  get totalBytes(): number {
    return this.#dropped + this.#size;
  }

  bytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }
}

/**
 * The result text: header lines (why it failed) first, then the tail of the output, the whole
 * at most maxBytes of UTF-8, with a note when the beginning of the output was dropped.
 */
export function formatOutput(header: string[], tail: TailBuffer, maxBytes: number): string {
  const head = header.length ? header.join('\n') + '\n' : '';
  const body = tail.bytes();
  const headBytes = Buffer.byteLength(head);
  if (tail.totalBytes === body.length && headBytes + body.length <= maxBytes) {
    const text = head + body.toString('utf8');
    if (Buffer.byteLength(text) <= maxBytes) return text;
  }
  const note = (dropped: number) => `[output truncated: ${dropped} of ${tail.totalBytes} bytes dropped, the tail is kept]\n`;
  // The note's length depends on the number it prints; reserve room for the widest one.
  const budget = Math.max(0, maxBytes - headBytes - Buffer.byteLength(note(tail.totalBytes)));
  const kept = utf8Tail(body, budget);
  const text = head + note(tail.totalBytes - Buffer.byteLength(kept)) + kept;
  return Buffer.byteLength(text) <= maxBytes ? text : utf8Tail(Buffer.from(text), maxBytes);
}

/** The last at most maxBytes of buf as valid UTF-8 (invalid bytes become U+FFFD, which is 3 bytes). */
export function utf8Tail(buf: Buffer, maxBytes: number): string {
  let text = buf.subarray(Math.max(0, buf.length - maxBytes)).toString('utf8');
  let enc = Buffer.from(text, 'utf8');
  while (enc.length > maxBytes) {
    let start = enc.length - maxBytes;
    // Never start inside a multi-byte sequence (continuation bytes are 10xxxxxx).
    while (start < enc.length && (enc[start] & 0xc0) === 0x80) start++;
    text = enc.subarray(start).toString('utf8');
    enc = Buffer.from(text, 'utf8');
  }
  return text.replace(/^\uFFFD+/, '');
}
