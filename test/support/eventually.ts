// The one way a test waits for something: polls until `fn` returns a truthy value (or stops throwing),
// and says what it waited for when it gives up. Never asserts how long anything took.

/**
 * Polls `fn` every `everyMs` until it returns something truthy; a throw counts as "not yet". On
 * timeout, throws `timed out after N ms waiting for <description>` with the last value or error.
 */
export async function eventually<T>(
  description: string | (() => string),
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
  everyMs = 25,
): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) {
      const what = typeof description === 'function' ? description() : description;
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${seen})`, { cause: last });
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
