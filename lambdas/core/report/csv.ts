// The report as CSV: one row per reboot, RFC 4180 quoting, and cells a spreadsheet will not run as formulas.
import type { ComplianceReport, ReportRow } from './schema.ts';

type Cell = string | number | boolean | null;

/** Column name and how to read it; the contract's nine columns first, in the contract's order. */
export const CSV_COLUMNS: ReadonlyArray<readonly [string, (r: ReportRow) => Cell]> = [
  ['id', (r) => r.id],
  ['kind', (r) => r.kind],
  ['node', (r) => r.node],
  ['xpu', (r) => r.xpu],
  ['status', (r) => r.status],
  ['noticeSeconds', (r) => r.noticeSeconds],
  ['extendedSeconds', (r) => r.extendedSeconds],
  ['forced', (r) => r.forced],
  ['recoverySeconds', (r) => r.recoverySeconds],
  ['mode', (r) => r.mode],
  ['rack', (r) => r.rack],
  ['zone', (r) => r.zone],
  ['tenant', (r) => r.tenant],
  ['notifiedAt', (r) => r.notifiedAt],
  ['deadline', (r) => r.deadline],
  ['wentDownAt', (r) => r.wentDownAt],
  ['recoveredAt', (r) => r.recoveredAt],
  ['endedAt', (r) => r.endedAt],
  ['inProgress', (r) => r.inProgress],
  ['crossesWindowEnd', (r) => r.crossesWindowEnd],
  ['policyNoticeSeconds', (r) => r.policyNoticeSeconds],
  ['extensionsRequested', (r) => r.extensionsRequested],
  ['extensionsGranted', (r) => r.extensionsGranted],
  ['extensionsRefused', (r) => r.extensionsRefused],
  ['extensionSecondsRequested', (r) => r.extensionSecondsRequested],
  ['refusalReasons', (r) => r.refusals.map((x) => x.reason).join('; ')],
  ['outstanding', (r) => r.outstanding.join('; ')],
  ['failedCommands', (r) => r.failedCommands.map((c) => `${c.type}:${c.status}`).join('; ')],
  ['denyReason', (r) => r.denyReason],
  ['budgetWaitSeconds', (r) => r.budgetWaitSeconds],
  ['queueReason', (r) => r.queueReason],
  ['reason', (r) => r.reason],
  ['findings', (r) => r.findings.map((f) => f.code).join('; ')],
  ['worstSeverity', (r) => r.findings[0]?.severity ?? null],
  ['extendedBy', (r) => r.by?.extended.join('; ') ?? null],
  ['forcedBy', (r) => r.by?.forced ?? null],
  ['cancelledBy', (r) => r.by?.cancelled ?? null],
];

// OWASP CSV injection: these leading characters make Excel/Sheets/LibreOffice evaluate a cell.
const FORMULA_START = /^[=+\-@\t\r]/;
const PLAIN_NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const NEEDS_QUOTES = /[",\r\n]/;

/** One CSV field: neutralised against formula injection, then quoted per RFC 4180 when needed. */
export function csvField(value: Cell): string {
  if (value === null || value === undefined) return '';
  let s = String(value);
  if (typeof value === 'string' && FORMULA_START.test(s) && !PLAIN_NUMBER.test(s)) s = `'${s}`;
  return NEEDS_QUOTES.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function renderCsv(report: ComplianceReport): string {
  const lines: string[] = [CSV_COLUMNS.map(([name]) => name).join(',')];
  for (const row of report.reboots) lines.push(CSV_COLUMNS.map(([, get]) => csvField(get(row))).join(','));
  // RFC 4180 line breaks are CRLF; the last record ends with one too, so appending files stays safe.
  return lines.join('\r\n') + '\r\n';
}
