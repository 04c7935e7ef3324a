// The compliance report as pure computation over recorded reboots: rows, policy findings and fleet totals.
import type { Rollout } from '../rollout.ts';
import { summarizeRollouts } from './rollouts.ts';
import { ACTIVE_STATUSES, type DenyCondition, type HostRebootPolicy, type Reboot, type XpuRebootPolicy } from '../types.ts';
import { refusalTotal, refusedSecondsTotal } from '../bounds.ts';
import {
  REPORT_SCHEMA_VERSION,
  type ComplianceReport,
  type FailedCommand,
  type Finding,
  type FindingCode,
  type GroupTotals,
  type ReportRow,
  type RowFinding,
  type Severity,
  type Totals,
} from './schema.ts';

/** The parts of a node's policy the report checks against; a full `Policy` fits. */
export interface ReportPolicy {
  xpuReboot: Pick<XpuRebootPolicy, 'maxExtensions' | 'maxExtensionSeconds'>;
  hostReboot: Pick<HostRebootPolicy, 'denyWhile'>;
}

/** The contract's inventory defaults, used for nodes the caller has no policy for. */
export const DEFAULT_REPORT_POLICY: ReportPolicy = Object.freeze({
  xpuReboot: { maxExtensions: 3, maxExtensionSeconds: 1800 },
  hostReboot: { denyWhile: ['xpu-rebooting'] as DenyCondition[] },
});

export interface ReportOptions {
  /** Inclusive start of the window, on `notifiedAt`. */
  from: Date;
  /** Exclusive end of the window, on `notifiedAt`. */
  to: Date;
  /** "Now" for reboots still in progress; defaults to the wall clock. */
  generatedAt?: Date;
  /** One policy for every node, or each node's effective policy (e.g. from the inventory). */
  policy?: ReportPolicy | ((node: string) => ReportPolicy | undefined);
  /** Rollouts to report on; those started in the window are listed. */
  rollouts?: readonly Rollout[];
}

export class InvalidReportWindow extends Error {
  override readonly name = 'InvalidReportWindow';
}

const SEVERITY_RANK: Record<Severity, number> = { high: 0, medium: 1, low: 2 };
const NO_FINDING_RANK = 3;

// Within a severity, policy violations before operational trouble, in this order.
const CODE_ORDER: Record<FindingCode, number> = {
  'host-reboot-in-denied-window': 0,
  'unannounced-reboot': 0,
  'notice-below-policy': 1,
  'extension-count-above-cap': 2,
  'extension-seconds-above-cap': 3,
  'reboot-failed': 4,
  'forced-at-deadline': 5,
  'command-failed': 6,
  'command-timed-out': 7,
  'budget-exceeded': 8,
};

const ms = (iso: string | null | undefined): number => (iso ? Date.parse(iso) : NaN);
const has = (t: number): boolean => Number.isFinite(t);

/**
 * Nearest-rank percentile: the smallest value with at least p% of the values at or below it,
 * i.e. sorted[ceil(p/100 · n) − 1]. Always an observed value; null for no values.
 */
export function percentileNearestRank(sortedAscending: readonly number[], p: number): number | null {
  const n = sortedAscending.length;
  if (n === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * n));
  return sortedAscending[Math.min(rank, n) - 1];
}

export function computeComplianceReport(reboots: readonly Reboot[], options: ReportOptions): ComplianceReport {
  const fromMs = options.from?.getTime();
  const toMs = options.to?.getTime();
  if (!has(fromMs) || !has(toMs)) throw new InvalidReportWindow('from and to must be valid dates');
  if (fromMs >= toMs) throw new InvalidReportWindow('from must be before to');
  const generatedAt = options.generatedAt ?? new Date();
  const nowMs = generatedAt.getTime();
  const policyOf = policyResolver(options.policy);

  // Overlaps need every reboot we were given, also those notified before the window.
  const byNode = new Map<string, Reboot[]>();
  for (const r of reboots) {
    const list = byNode.get(r.node);
    if (list) list.push(r);
    else byNode.set(r.node, [r]);
  }

  const rows: ReportRow[] = [];
  for (const r of reboots) {
    const t = ms(r.notifiedAt);
    if (!(t >= fromMs && t < toMs)) continue;
    rows.push(toRow(r, { toMs, nowMs, policy: policyOf(r.node), sameNode: byNode.get(r.node) ?? [] }));
  }

  const sortKey = new Map(rows.map((row) => [row, worstRank(row.findings)]));
  rows.sort((a, b) => sortKey.get(a)! - sortKey.get(b)! || ms(b.notifiedAt) - ms(a.notifiedAt) || compareStrings(a.id, b.id));

  const findings: Finding[] = [];
  for (const row of rows) {
    for (const f of row.findings) {
      findings.push({ rebootId: row.id, kind: row.kind, node: row.node, xpu: row.xpu, notifiedAt: row.notifiedAt, ...f });
    }
  }
  findings.sort(
    (a, b) =>
      SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] ||
      ms(b.notifiedAt) - ms(a.notifiedAt) ||
      compareStrings(a.rebootId, b.rebootId) ||
      CODE_ORDER[a.code] - CODE_ORDER[b.code],
  );

  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    from: new Date(fromMs).toISOString(),
    to: new Date(toMs).toISOString(),
    generatedAt: generatedAt.toISOString(),
    reboots: rows,
    totals: {
      overall: totalsOf(rows),
      byKind: groupTotals(rows, (r) => r.kind),
      byRack: groupTotals(rows, (r) => r.rack),
      byZone: groupTotals(rows, (r) => r.zone),
      byTenant: groupTotals(rows, (r) => r.tenant),
    },
    findings,
    rollouts: summarizeRollouts(options.rollouts ?? [], fromMs, toMs),
  };
}

/** The key rows without a rack, zone or tenant are totalled under. */
export const UNASSIGNED = '(none)';

function policyResolver(p: ReportOptions['policy']): (node: string) => ReportPolicy {
  if (typeof p === 'function') return (node) => p(node) ?? DEFAULT_REPORT_POLICY;
  const fixed = p ?? DEFAULT_REPORT_POLICY;
  return () => fixed;
}

/** Who extended, forced and cancelled the reboot, from the history entries that carry `by`. */
function actorsOf(r: Reboot): ReportRow['by'] {
  const history = r.history ?? [];
  if (!history.some((h) => h.by)) return undefined;
  const last = (phase: string) => history.filter((h) => h.phase === phase && h.by).at(-1)?.by ?? null;
  return {
    extended: history.flatMap((h) => (h.phase === 'extended' && h.by ? [h.by] : [])),
    forced: last('forced'),
    cancelled: last('cancelled'),
  };
}

interface RowContext {
  toMs: number;
  nowMs: number;
  policy: ReportPolicy;
  sameNode: readonly Reboot[];
}

function toRow(r: Reboot, ctx: RowContext): ReportRow {
  const extensions = r.extensions ?? [];
  const refusals = r.refusals ?? [];
  const extendedSeconds = sum(extensions.map((e) => e.granted));
  const { wentDownAt, recoveredAt, recoverySeconds } = recovery(r);
  const failedCommands: FailedCommand[] = Object.values(r.commands ?? {})
    .filter((c) => c.status === 'failed' || c.status === 'timed-out')
    .sort((a, b) => ms(a.at) - ms(b.at) || compareStrings(a.id, b.id))
    .map((c) => ({ id: c.id, type: c.type, agent: c.agent, step: c.step, status: c.status as 'failed' | 'timed-out', at: c.at }));
  const endedMs = ms(r.endedAt);

  const row: ReportRow = {
    id: r.id,
    kind: r.kind,
    node: r.node,
    xpu: r.xpu ?? null,
    status: r.status,
    noticeSeconds: r.noticeSeconds ?? 0,
    extendedSeconds,
    forced: r.forced === true,
    recoverySeconds,
    mode: r.mode,
    reason: r.reason ?? null,
    rack: r.rack ?? null,
    zone: r.zone ?? null,
    tenant: r.tenant ?? null,
    notifiedAt: r.notifiedAt,
    deadline: r.deadline ?? null,
    wentDownAt,
    recoveredAt,
    endedAt: r.endedAt ?? null,
    inProgress: ACTIVE_STATUSES.includes(r.status),
    crossesWindowEnd: !(endedMs < ctx.toMs),
    policyNoticeSeconds: r.policyNoticeSeconds ?? 0,
    extensionsRequested: extensions.length + refusalTotal(r),
    extensionsGranted: extensions.length,
    // Counted from the counters: the reboot keeps only its last refusals (core/bounds.ts).
    extensionsRefused: refusalTotal(r),
    extensionSecondsRequested: sum(extensions.map((e) => e.requested)) + refusedSecondsTotal(r),
    extensions: extensions.map((e) => ({ at: e.at, requested: e.requested, granted: e.granted, reason: e.reason, deadline: e.deadline })),
    refusals: refusals.map((e) => ({ at: e.at, requested: e.requested, reason: e.reason })),
    outstanding: [...(r.outstanding ?? [])],
    failedCommands,
    denyReason: r.denyReason ?? null,
    budgetWaitSeconds: budgetWait(r, ctx.nowMs),
    queueReason: r.queue?.reason ?? null,
    findings: [],
  };
  const by = actorsOf(r);
  if (by) row.by = by;
  row.findings = findingsOf(r, row, ctx).sort(
    (a, b) => SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] || CODE_ORDER[a.code] - CODE_ORDER[b.code],
  );
  return row;
}

/** How long the reboot waited in the queue: until it went on, ended (cancelled), or now. */
function budgetWait(r: Reboot, nowMs: number): number | null {
  if (!r.queue) return null;
  const end = [r.queue.admittedAt, r.endedAt].map(ms).find(has) ?? nowMs;
  return Math.max(0, (end - ms(r.queue.queuedAt)) / 1000);
}

/**
 * The outage: from the moment the device went down (the recorded reboot, or the deadline when the
 * watchdog forced it, else the first down/crash signal) to its ready signal. A ready seen before the
 * recorded down (the xPU rebooted on its own during the notice phase) counts as zero.
 */
function recovery(r: Reboot): { wentDownAt: string | null; recoveredAt: string | null; recoverySeconds: number | null } {
  const downCandidates =
    r.kind === 'xpu' ? [r.rebootingAt, r.forced ? r.deadline : undefined, r.downAt, r.crashedAt] : [r.rebootingAt, r.hostDownAt];
  const wentDownAt = downCandidates.find((t) => has(ms(t))) ?? null;
  const ready = r.kind === 'xpu' ? r.readyAt : r.hostReadyAt;
  const recoveredAt = has(ms(ready)) ? ready! : r.status === 'completed' && has(ms(r.endedAt)) ? r.endedAt! : null;
  const recoverySeconds = wentDownAt && recoveredAt ? Math.max(0, (ms(recoveredAt) - ms(wentDownAt)) / 1000) : null;
  return { wentDownAt, recoveredAt, recoverySeconds };
}

function findingsOf(r: Reboot, row: ReportRow, ctx: RowContext): RowFinding[] {
  const out: RowFinding[] = [];
  const add = (
    code: FindingCode,
    severity: Severity,
    category: 'policy' | 'operational',
    message: string,
    extra: Partial<Pick<RowFinding, 'expected' | 'actual' | 'relatedRebootId' | 'command'>> = {},
  ) => out.push({ code, severity, category, message, expected: null, actual: null, relatedRebootId: null, command: null, ...extra });

  // The very thing coordination exists to prevent: the host lost its device without notice (or, a
  // host reboot, its xPUs kept the old tenant's context until the host was back).
  if (row.mode === 'unannounced')
    add(
      'unannounced-reboot',
      'high',
      'policy',
      row.kind === 'host'
        ? 'the host rebooted without a request: its xPUs could not free its context before it went down'
        : 'the xPU rebooted without notice: the host got no migrate-workloads or protect-pcie',
    );
  // A crash gives no notice by nature; the notice policy governs announced reboots.
  else if (row.mode !== 'crash' && row.policyNoticeSeconds > 0 && row.noticeSeconds < row.policyNoticeSeconds) {
    add('notice-below-policy', 'high', 'policy', `notice of ${row.noticeSeconds}s is below the policy's ${row.policyNoticeSeconds}s`, {
      expected: row.policyNoticeSeconds,
      actual: row.noticeSeconds,
    });
  }
  const caps = ctx.policy.xpuReboot;
  if (row.extensionsGranted > caps.maxExtensions) {
    add('extension-count-above-cap', 'high', 'policy', `${row.extensionsGranted} extensions granted, cap is ${caps.maxExtensions}`, {
      expected: caps.maxExtensions,
      actual: row.extensionsGranted,
    });
  }
  if (row.extendedSeconds > caps.maxExtensionSeconds) {
    add(
      'extension-seconds-above-cap',
      'high',
      'policy',
      `${row.extendedSeconds}s of extensions granted, cap is ${caps.maxExtensionSeconds}s`,
      {
        expected: caps.maxExtensionSeconds,
        actual: row.extendedSeconds,
      },
    );
  }
  if (r.kind === 'host') {
    const overlap = deniedOverlap(r, ctx);
    if (overlap) {
      add(
        'host-reboot-in-denied-window',
        'high',
        'policy',
        `host reboot proceeded at ${overlap.at} while ${overlap.other.kind} reboot ${overlap.other.id} of the node was active (policy denies host reboots while ${overlap.condition})`,
        { relatedRebootId: overlap.other.id },
      );
    }
  }
  const exceeded = (r.history ?? []).find((h) => h.phase === 'budget-exceeded');
  if (exceeded) add('budget-exceeded', 'medium', 'policy', `beyond its disruption budget: ${exceeded.detail}`);
  if (row.status === 'failed') add('reboot-failed', 'high', 'operational', 'the reboot failed');
  if (row.forced) {
    const left = row.outstanding.length ? `; outstanding: ${row.outstanding.join(', ')}` : '';
    // An operator's force (POST /force) is recorded as for a forced reboot, but it came before the deadline.
    const who = row.by?.forced;
    const when = who && who !== 'coordinator' ? `forced by ${who} before the deadline` : 'forced at the deadline';
    add('forced-at-deadline', 'medium', 'operational', `${when}${left}`);
  }
  for (const c of row.failedCommands) {
    add(
      c.status === 'failed' ? 'command-failed' : 'command-timed-out',
      'low',
      'operational',
      `${c.type} (${c.agent}) ${c.status === 'failed' ? 'failed' : 'timed out'}`,
      { command: { id: c.id, type: c.type, status: c.status } },
    );
  }
  return out;
}

/** When a host reboot actually went ahead; null when it never did (denied, cancelled, or no sign of it). */
function proceededAt(r: Reboot): string | null {
  if (r.status === 'denied' || r.status === 'cancelled') return r.rebootingAt ?? r.hostDownAt ?? null;
  const t = [r.rebootingAt, r.hostDownAt].find((x) => has(ms(x)));
  if (t) return t;
  return r.status === 'rebooting' || r.status === 'recovering' || r.status === 'completed' ? r.notifiedAt : null;
}

/** The last moment a finished reboot is known to have held its node, for reboots missing `endedAt`. */
function lastKnown(r: Reboot): number {
  const times = [r.notifiedAt, r.rebootingAt, r.downAt, r.readyAt, r.hostDownAt, r.hostReadyAt, ...(r.history ?? []).map((h) => h.at)];
  return Math.max(...times.map(ms).filter(has));
}

function activeUntil(r: Reboot, nowMs: number): number {
  const ended = ms(r.endedAt);
  if (has(ended)) return ended;
  return ACTIVE_STATUSES.includes(r.status) ? nowMs : lastKnown(r);
}

/**
 * The first other reboot of the same node whose active span held a condition the node's policy
 * denies host reboots under, at the moment this host reboot went ahead.
 */
function deniedOverlap(host: Reboot, ctx: RowContext): { other: Reboot; condition: DenyCondition; at: string } | null {
  const at = proceededAt(host);
  if (!at) return null;
  const t = ms(at);
  const denyWhile = ctx.policy.hostReboot.denyWhile ?? [];
  let best: { other: Reboot; condition: DenyCondition; at: string } | null = null;
  for (const other of ctx.sameNode) {
    if (other === host || other.id === host.id) continue;
    let start = NaN;
    let condition: DenyCondition | null = null;
    if (other.kind === 'xpu' && denyWhile.includes('xpu-rebooting')) {
      start = ms(other.notifiedAt);
      condition = 'xpu-rebooting';
    } else if (other.kind === 'host' && other.nextTenant && denyWhile.includes('reprovisioning')) {
      // Reprovisioning for the next tenant runs from the host's return to the reboot's end.
      start = ms(other.hostReadyAt);
      condition = 'reprovisioning';
    }
    if (!condition || !has(start)) continue;
    if (t >= start && t < activeUntil(other, ctx.nowMs)) {
      if (!best || ms(other.notifiedAt) < ms(best.other.notifiedAt)) best = { other, condition, at };
    }
  }
  return best;
}

function worstRank(findings: readonly RowFinding[]): number {
  let rank = NO_FINDING_RANK;
  for (const f of findings) rank = Math.min(rank, SEVERITY_RANK[f.severity]);
  return rank;
}

function groupTotals(rows: readonly ReportRow[], keyOf: (r: ReportRow) => string | null): GroupTotals[] {
  const groups = new Map<string, ReportRow[]>();
  for (const r of rows) {
    const key = keyOf(r) ?? UNASSIGNED;
    const list = groups.get(key);
    if (list) list.push(r);
    else groups.set(key, [r]);
  }
  return [...groups.entries()].sort(([a], [b]) => compareStrings(a, b)).map(([key, list]) => ({ key, ...totalsOf(list) }));
}

/**
 * forcedShare: forced xPU reboots / xPU reboots (host reboots are never forced by the watchdog).
 * medianNoticeSeconds: over planned xPU reboots, the ones the notice policy governs.
 * Recovery percentiles: over every reboot with a measured recovery.
 */
export function totalsOf(rows: readonly ReportRow[]): Totals {
  const t: Totals = {
    count: rows.length,
    xpu: 0,
    host: 0,
    planned: 0,
    crash: 0,
    completed: 0,
    inProgress: 0,
    failed: 0,
    denied: 0,
    cancelled: 0,
    forced: 0,
    forcedShare: null,
    medianNoticeSeconds: null,
    medianRecoverySeconds: null,
    p95RecoverySeconds: null,
    extensionsGranted: 0,
    extensionsRefused: 0,
    extendedSeconds: 0,
    failedCommands: 0,
    rebootsWithFindings: 0,
    policyViolations: 0,
  };
  const notices: number[] = [];
  const recoveries: number[] = [];
  let forcedXpu = 0;
  for (const r of rows) {
    if (r.kind === 'xpu') t.xpu++;
    else t.host++;
    if (r.kind === 'xpu' && r.mode === 'planned') {
      t.planned++;
      notices.push(r.noticeSeconds);
    }
    if (r.mode === 'crash') t.crash++;
    if (r.status === 'completed') t.completed++;
    else if (r.status === 'failed') t.failed++;
    else if (r.status === 'denied') t.denied++;
    else if (r.status === 'cancelled') t.cancelled++;
    if (r.inProgress) t.inProgress++;
    if (r.forced) {
      t.forced++;
      if (r.kind === 'xpu') forcedXpu++;
    }
    if (r.recoverySeconds !== null) recoveries.push(r.recoverySeconds);
    t.extensionsGranted += r.extensionsGranted;
    t.extensionsRefused += r.extensionsRefused;
    t.extendedSeconds += r.extendedSeconds;
    t.failedCommands += r.failedCommands.length;
    if (r.findings.length) t.rebootsWithFindings++;
    t.policyViolations += r.findings.filter((f) => f.category === 'policy').length;
  }
  t.forcedShare = t.xpu ? forcedXpu / t.xpu : null;
  notices.sort((a, b) => a - b);
  recoveries.sort((a, b) => a - b);
  t.medianNoticeSeconds = percentileNearestRank(notices, 50);
  t.medianRecoverySeconds = percentileNearestRank(recoveries, 50);
  t.p95RecoverySeconds = percentileNearestRank(recoveries, 95);
  return t;
}

function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += Number.isFinite(x) ? x : 0;
  return s;
}

// Locale-independent, so the same data gives the same report on every machine.
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
