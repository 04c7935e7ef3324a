// The compliance report's JSON shape, version 1.0: one zod schema from which the TS types and schema.json derive.
import { z } from 'zod';
import { REBOOT_STATUSES, COMMAND_TYPES } from '../types.ts';
import { RolloutSummarySchema } from './rollouts.ts';

/**
 * Bump the minor version when fields are added (consumers must ignore unknown fields),
 * the major version when a field is removed, renamed or changes meaning.
 */
export const REPORT_SCHEMA_VERSION = '1.1';

const isoTime = z.string().describe('ISO 8601 UTC timestamp');
const seconds = z.number().min(0);

export const SEVERITIES = ['high', 'medium', 'low'] as const;
export const FINDING_CODES = [
  'host-reboot-in-denied-window',
  'unannounced-reboot',
  'notice-below-policy',
  'extension-count-above-cap',
  'extension-seconds-above-cap',
  'reboot-failed',
  'forced-at-deadline',
  'command-failed',
  'command-timed-out',
  /** docs/fleet-safety.md: the reboot made its node unavailable beyond a disruption budget (a crash, or a queued reboot at its cap). */
  'budget-exceeded',
] as const;

export const RowFindingSchema = z.object({
  code: z.enum(FINDING_CODES),
  severity: z.enum(SEVERITIES),
  /** `policy`: the reboot broke the fleet's policy; `operational`: it kept the policy but did not go well. */
  category: z.enum(['policy', 'operational']),
  message: z.string(),
  expected: z.number().nullable(),
  actual: z.number().nullable(),
  relatedRebootId: z.string().nullable(),
  command: z.object({ id: z.string(), type: z.enum(COMMAND_TYPES), status: z.enum(['failed', 'timed-out']) }).nullable(),
});

export const FindingSchema = RowFindingSchema.extend({
  rebootId: z.string(),
  kind: z.enum(['xpu', 'host']),
  node: z.string(),
  xpu: z.string().nullable(),
  notifiedAt: isoTime,
});

export const FailedCommandSchema = z.object({
  id: z.string(),
  type: z.enum(COMMAND_TYPES),
  agent: z.string(),
  step: z.string(),
  status: z.enum(['failed', 'timed-out']),
  at: isoTime,
});

export const ReportRowSchema = z.object({
  // The contract's columns (section 3), in its order.
  id: z.string(),
  kind: z.enum(['xpu', 'host']),
  node: z.string(),
  xpu: z.string().nullable(),
  status: z.enum(REBOOT_STATUSES),
  noticeSeconds: seconds,
  extendedSeconds: seconds,
  forced: z.boolean(),
  recoverySeconds: seconds.nullable(),
  // Everything else.
  mode: z.enum(['planned', 'crash', 'unannounced', 'shell', 'ipmi', 'perst', 'other']),
  reason: z.string().nullable(),
  rack: z.string().nullable(),
  zone: z.string().nullable(),
  tenant: z.string().nullable(),
  notifiedAt: isoTime,
  deadline: isoTime.nullable(),
  wentDownAt: isoTime.nullable(),
  recoveredAt: isoTime.nullable(),
  endedAt: isoTime.nullable(),
  inProgress: z.boolean(),
  crossesWindowEnd: z.boolean(),
  policyNoticeSeconds: seconds,
  extensionsRequested: z.number().int().min(0),
  extensionsGranted: z.number().int().min(0),
  extensionsRefused: z.number().int().min(0),
  extensionSecondsRequested: seconds,
  extensions: z.array(z.object({ at: isoTime, requested: seconds, granted: seconds, reason: z.string(), deadline: isoTime })),
  refusals: z.array(z.object({ at: isoTime, requested: seconds, reason: z.string() })),
  outstanding: z.array(z.string()),
  failedCommands: z.array(FailedCommandSchema),
  denyReason: z.string().nullable(),
  /** docs/fleet-safety.md: how long a disruption budget or a hold kept the reboot queued (null: never queued). */
  budgetWaitSeconds: seconds.nullable(),
  /** Why it was queued: `budget: ...` or `hold: ...`. */
  queueReason: z.string().nullable(),
  findings: z.array(RowFindingSchema),
  /** Who extended, forced and cancelled (from the history's `by`, docs/identities.md); absent when no entry says. */
  by: z.object({ extended: z.array(z.string()), forced: z.string().nullable(), cancelled: z.string().nullable() }).optional(),
});

export const TotalsSchema = z.object({
  count: z.number().int().min(0),
  xpu: z.number().int().min(0),
  host: z.number().int().min(0),
  planned: z.number().int().min(0),
  crash: z.number().int().min(0),
  completed: z.number().int().min(0),
  inProgress: z.number().int().min(0),
  failed: z.number().int().min(0),
  denied: z.number().int().min(0),
  cancelled: z.number().int().min(0),
  forced: z.number().int().min(0),
  forcedShare: z.number().min(0).max(1).nullable(),
  medianNoticeSeconds: seconds.nullable(),
  medianRecoverySeconds: seconds.nullable(),
  p95RecoverySeconds: seconds.nullable(),
  extensionsGranted: z.number().int().min(0),
  extensionsRefused: z.number().int().min(0),
  extendedSeconds: seconds,
  failedCommands: z.number().int().min(0),
  rebootsWithFindings: z.number().int().min(0),
  policyViolations: z.number().int().min(0),
});

export const GroupTotalsSchema = TotalsSchema.extend({ key: z.string() });

export const ComplianceReportSchema = z.object({
  schemaVersion: z.literal(REPORT_SCHEMA_VERSION),
  from: isoTime,
  to: isoTime,
  generatedAt: isoTime,
  reboots: z.array(ReportRowSchema),
  totals: z.object({
    overall: TotalsSchema,
    byKind: z.array(GroupTotalsSchema),
    byRack: z.array(GroupTotalsSchema),
    byZone: z.array(GroupTotalsSchema),
    byTenant: z.array(GroupTotalsSchema),
  }),
  findings: z.array(FindingSchema),
  /** 1.1: rollouts started in the window (docs/fleet-safety.md). */
  rollouts: z.array(RolloutSummarySchema),
});

export type Severity = (typeof SEVERITIES)[number];
export type FindingCode = (typeof FINDING_CODES)[number];
export type RowFinding = z.infer<typeof RowFindingSchema>;
export type Finding = z.infer<typeof FindingSchema>;
export type FailedCommand = z.infer<typeof FailedCommandSchema>;
export type ReportRow = z.infer<typeof ReportRowSchema>;
export type Totals = z.infer<typeof TotalsSchema>;
export type GroupTotals = z.infer<typeof GroupTotalsSchema>;
export type ComplianceReport = z.infer<typeof ComplianceReportSchema>;

/** The JSON Schema (draft 2020-12) published as schema.json; unknown fields stay allowed for minor versions. */
export function reportJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(ComplianceReportSchema, { io: 'input', target: 'draft-2020-12' }),
    $id: `https://xpu-reboot-coordinator/schemas/compliance-report-${REPORT_SCHEMA_VERSION}.json`,
    title: `Compliance report ${REPORT_SCHEMA_VERSION}`,
  };
}
