// Parses the compliance route's query string (from, to, format) so the HTTP handler and the CLI agree on what is valid.
import { REPORT_FORMATS, type ReportFormat } from './render.ts';

export class InvalidReportQuery extends Error {
  override readonly name = 'InvalidReportQuery';
}

export interface ReportQuery {
  from: Date;
  to: Date;
  format: ReportFormat;
}

// A date-time with an explicit zone (Z or ±hh:mm), or a plain date read as UTC midnight:
// a zone-less local time would mean a different window on every machine.
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}))?$/i;

export function parseIsoInstant(value: string | undefined | null, name: string): Date {
  if (value === undefined || value === null || value === '') throw new InvalidReportQuery(`${name} is required (ISO 8601)`);
  if (!ISO_INSTANT.test(value))
    throw new InvalidReportQuery(`${name} must be an ISO 8601 date or date-time with a zone, got ${JSON.stringify(value)}`);
  const d = new Date(value);
  if (!Number.isFinite(d.getTime()) || !isCalendarDate(value))
    throw new InvalidReportQuery(`${name} is not a valid date: ${JSON.stringify(value)}`);
  return d;
}

// Date() rolls an impossible day over (2024-02-30 is March 1st) instead of rejecting it.
function isCalendarDate(value: string): boolean {
  const [y, m, d] = value.slice(0, 10).split('-').map(Number);
  const day = new Date(Date.UTC(y, m - 1, d));
  return day.getUTCFullYear() === y && day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
}

/** `format` defaults to json; errors are meant for a 400 `{"error":"InvalidReportQuery","message"}`. */
export function parseReportQuery(params: Record<string, string | undefined | null>): ReportQuery {
  const from = parseIsoInstant(params.from, 'from');
  const to = parseIsoInstant(params.to, 'to');
  if (from.getTime() >= to.getTime()) throw new InvalidReportQuery('from must be before to');
  const format = (params.format ?? 'json') || 'json';
  if (!(REPORT_FORMATS as readonly string[]).includes(format)) {
    throw new InvalidReportQuery(`format must be one of ${REPORT_FORMATS.join(', ')}`);
  }
  return { from, to, format: format as ReportFormat };
}
