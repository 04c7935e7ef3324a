// Small text helpers shared by the HTML page and its charts: escaping, durations, times, percentages.

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for element content and quoted attribute values alike (node ids and reasons are user data). */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/** "42s", "5m 02s", "1h 05m", "2d 03h": exact enough to read, short enough for a table cell. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${pad(Math.floor((s % 86400) / 3600))}h`;
}

/** Axis ticks: "30s", "5m", "1m 30s", "2h": the shortest form that is still exact. */
export function formatDurationShort(seconds: number): string {
  return formatDuration(seconds).replace(/ 00[smh]$/, '');
}

/** "2024-05-01 13:04:05Z": ISO without the noise, always UTC so readers in any zone agree. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso;
  return new Date(t)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, 'Z');
}

export function formatShare(share: number | null | undefined): string {
  if (share === null || share === undefined) return '—';
  const pct = share * 100;
  return `${pct === Math.round(pct) ? pct.toFixed(0) : pct.toFixed(1)}%`;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}
