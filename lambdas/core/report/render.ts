// Turns a computed compliance report into the body and content type the API returns for json, csv or html.
import type { ComplianceReport } from './schema.ts';
import { renderCsv } from './csv.ts';
import { renderHtml } from './html.ts';

export const REPORT_FORMATS = ['json', 'csv', 'html'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export interface RenderedReport {
  contentType: string;
  body: string;
}

export function renderReport(report: ComplianceReport, format: ReportFormat): RenderedReport {
  switch (format) {
    case 'json':
      return { contentType: 'application/json; charset=utf-8', body: JSON.stringify(report) };
    case 'csv':
      return { contentType: 'text/csv; charset=utf-8; header=present', body: renderCsv(report) };
    case 'html':
      return { contentType: 'text/html; charset=utf-8', body: renderHtml(report) };
    default:
      throw new UnknownReportFormat(`format must be one of ${REPORT_FORMATS.join(', ')}`);
  }
}

export class UnknownReportFormat extends Error {
  override readonly name = 'UnknownReportFormat';
}
