// Ids the server sends end up in file names, environment variables and hook arguments: only plain ones are let through.

/**
 * Letters, digits and `. _ : @ + = -`, at most 200 characters, not starting with `-` or `.`, never
 * `..`: no path separators, no option look-alikes, no control characters or spaces. Covers the
 * coordinator's ULIDs, `node-a`, `dpu0`, tenant names.
 */
const SAFE_ID = /^[A-Za-z0-9_][A-Za-z0-9._:@+=-]{0,199}$/;

export function isSafeId(value: unknown): value is string {
  return typeof value === 'string' && SAFE_ID.test(value) && !value.includes('..');
}

/** Why a value is not a safe id, for the failed result the agent reports. */
export function unsafeIdProblem(name: string, value: unknown): string | null {
  if (isSafeId(value)) return null;
  return `unsafe ${name} ${JSON.stringify(value)?.slice(0, 80)} from the server: ids may hold only letters, digits and . _ : @ + = - (no '/', '..', leading '-', spaces or control characters); not run`;
}
