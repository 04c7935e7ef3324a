// The compliance report's public surface: compute over reboots, render as json/csv/html, parse the route's query.
export {
  computeComplianceReport,
  percentileNearestRank,
  totalsOf,
  DEFAULT_REPORT_POLICY,
  UNASSIGNED,
  InvalidReportWindow,
  type ReportOptions,
  type ReportPolicy,
} from './compute.ts';
export { renderReport, REPORT_FORMATS, UnknownReportFormat, type ReportFormat, type RenderedReport } from './render.ts';
export { parseReportQuery, parseIsoInstant, InvalidReportQuery, type ReportQuery } from './query.ts';
export { csvField, CSV_COLUMNS } from './csv.ts';
export { ComplianceReportSchema, REPORT_SCHEMA_VERSION, reportJsonSchema, FINDING_CODES, SEVERITIES } from './schema.ts';
export type {
  ComplianceReport,
  ReportRow,
  Finding,
  RowFinding,
  Totals,
  GroupTotals,
  FailedCommand,
  Severity,
  FindingCode,
} from './schema.ts';
