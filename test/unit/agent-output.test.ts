// Unit tests of the agent's output capping and retry backoff.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createBackoff } from '../../agent/backoff.ts';
import { formatOutput, TailBuffer, utf8Tail } from '../../agent/output.ts';

const fill = (limit: number, ...chunks: string[]) => {
  const t = new TailBuffer(limit);
  for (const c of chunks) t.push(Buffer.from(c));
  return t;
};

describe('hook output capping', () => {
  it('reports short output unchanged, after the header lines', () => {
    expect(formatOutput(['hook exited with code 3'], fill(1024, 'a\n', 'b\n'), 1024)).toBe('hook exited with code 3\na\nb\n');
  });

  it('keeps the tail of long output and says how much was dropped', () => {
    const lines = Array.from({ length: 5000 }, (_, i) => `line ${i}\n`);
    const text = formatOutput(['deadline exceeded'], fill(2048, ...lines), 2048);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(2048);
    expect(text.startsWith('deadline exceeded\n[output truncated: ')).toBe(true);
    expect(text.endsWith('line 4999\n')).toBe(true);
    const dropped = Number(/truncated: (\d+) of (\d+) bytes/.exec(text)![1]);
    expect(dropped).toBeGreaterThan(0);
  });

  it('says the output was truncated even when what is left fits exactly', () => {
    const t = fill(1024, 'x'.repeat(3000)); // compacted down to exactly the limit
    const text = formatOutput([], t, 1024);
    expect(text).toMatch(/^\[output truncated: \d+ of 3000 bytes dropped/);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(1024);
  });

  it('never cuts a multi-byte character in half', () => {
    const text = utf8Tail(Buffer.from('ééééé'), 5); // each é is 2 bytes
    expect(text).toBe('éé');
  });

  it('stays within the byte budget for any output, binary included', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 20 }), fc.integer({ min: 1024, max: 4096 }), (chunks, max) => {
        const t = new TailBuffer(max);
        for (const c of chunks) t.push(Buffer.from(c));
        const text = formatOutput(['header'], t, max);
        expect(Buffer.byteLength(text)).toBeLessThanOrEqual(max);
        expect(text.startsWith('header\n')).toBe(true);
      }),
    );
  });
});

describe('retry backoff', () => {
  it('grows exponentially up to the cap, with full jitter, and starts over after a reset', () => {
    const top = createBackoff(500, 30_000, () => 0.999999);
    const delays = Array.from({ length: 10 }, () => top.next());
    expect(delays.slice(0, 4)).toEqual([500, 1000, 2000, 4000]);
    expect(Math.max(...delays)).toBe(30_000);
    top.reset();
    expect(top.next()).toBe(500);
    const bottom = createBackoff(500, 30_000, () => 0);
    expect(bottom.next()).toBeGreaterThanOrEqual(50); // full jitter, but never a busy loop
  });
});
