// UTC timestamps for logs and the journal without Date.prototype.toISOString (the idle agent's RSS, issue 19).

const pad2 = (n: number) => (n < 10 ? '0' : '') + n;

/**
 * The same string as `new Date(ms).toISOString()`. On this V8, toISOString asks ICU for the host's
 * time zone on its first call (it computes a local offset it then ignores), which maps ICU's code
 * and zone data: ~0.9 MB resident for the agent's whole life. The UTC getters need no time zone.
 * Years outside 0000–9999 (a 6-digit form) and invalid times (RangeError) are left to toISOString.
 */
export function isoTime(time: number | Date = Date.now()): string {
  const d = typeof time === 'number' ? new Date(time) : time;
  const year = d.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) return d.toISOString();
  const ms = d.getUTCMilliseconds();
  return (
    String(year).padStart(4, '0') +
    '-' +
    pad2(d.getUTCMonth() + 1) +
    '-' +
    pad2(d.getUTCDate()) +
    'T' +
    pad2(d.getUTCHours()) +
    ':' +
    pad2(d.getUTCMinutes()) +
    ':' +
    pad2(d.getUTCSeconds()) +
    '.' +
    (ms < 10 ? '00' : ms < 100 ? '0' : '') +
    ms +
    'Z'
  );
}
