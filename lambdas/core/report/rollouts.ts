// The report's rollouts section: what each rollout started in the window did, xPU by xPU (schema 1.1).
import { z } from 'zod';
import { ROLLOUT_STATUSES, type Rollout } from '../rollout.ts';
import { esc, formatTime } from './format.ts';

const isoTime = z.string().describe('ISO 8601 UTC timestamp');

export const RolloutSummarySchema = z.object({
  id: z.string(),
  status: z.enum(ROLLOUT_STATUSES),
  reason: z.string(),
  /** `{}` for the whole fleet, else one of node, rack, zone, tenant. */
  selector: z.record(z.string(), z.string()),
  createdAt: isoTime,
  endedAt: isoTime.nullable(),
  maxUnavailable: z.number().int().min(1),
  maxFailures: z.number().int().min(1),
  planned: z.number().int().min(0),
  done: z.number().int().min(0),
  failed: z.number().int().min(0),
  /** Not started, or started and not ended when the report was generated. */
  notDone: z.number().int().min(0),
  /** The reboots the rollout caused, in plan order. */
  rebootIds: z.array(z.string()),
  failures: z.array(z.object({ node: z.string(), xpu: z.string(), rebootId: z.string().nullable(), reason: z.string() })),
});
export type RolloutSummary = z.infer<typeof RolloutSummarySchema>;

/** Rollouts started in [from, to), oldest first. */
export function summarizeRollouts(rollouts: readonly Rollout[], fromMs: number, toMs: number): RolloutSummary[] {
  return rollouts
    .filter((r) => {
      const t = Date.parse(r.createdAt);
      return t >= fromMs && t < toMs;
    })
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id))
    .map((r) => ({
      id: r.id,
      status: r.status,
      reason: r.reason,
      selector: Object.fromEntries(Object.entries(r.selector).filter(([, v]) => typeof v === 'string')) as Record<string, string>,
      createdAt: r.createdAt,
      endedAt: r.endedAt ?? null,
      maxUnavailable: r.maxUnavailable,
      maxFailures: r.maxFailures,
      planned: r.items.length,
      done: r.items.filter((it) => it.state === 'done').length,
      failed: r.items.filter((it) => it.state === 'failed').length,
      notDone: r.items.filter((it) => it.state !== 'done' && it.state !== 'failed').length,
      rebootIds: r.items.flatMap((it) => (it.rebootId ? [it.rebootId] : [])),
      failures: r.items
        .filter((it) => it.state === 'failed')
        .map((it) => ({ node: it.node, xpu: it.xpu, rebootId: it.rebootId ?? null, reason: it.reason ?? 'failed' })),
    }));
}

/** The HTML section (the report's own CSS classes). */
export function rolloutsHtml(rollouts: readonly RolloutSummary[]): string {
  const head = `<section id="rollouts"><h2>Rollouts (${rollouts.length})</h2>`;
  if (rollouts.length === 0) return `${head}<p class="none">No rollout was started in this window.</p></section>`;
  const rows = rollouts.map((r) => {
    const scope =
      Object.entries(r.selector)
        .map(([k, v]) => `${k} ${v}`)
        .join('') || 'whole fleet';
    const failures = r.failures.map((f) => `${f.node} / ${f.xpu}: ${f.reason}`).join('; ');
    return (
      `<tr${r.failed ? ' class="sev-medium"' : ''}><td class="code">${esc(r.id)}</td><td>${esc(r.status)}</td><td>${esc(r.reason)}</td><td>${esc(scope)}</td>` +
      `<td>${esc(formatTime(r.createdAt))}</td><td>${r.endedAt ? esc(formatTime(r.endedAt)) : '<span class="muted">running</span>'}</td>` +
      `<td class="num">${r.maxUnavailable}</td><td class="num">${r.planned}</td><td class="num">${r.done}</td><td class="num">${r.failed}</td><td class="num">${r.notDone}</td>` +
      `<td>${failures ? esc(failures) : '<span class="muted">none</span>'}</td></tr>`
    );
  });
  return (
    `${head}<table><thead><tr><th>Rollout</th><th>Status</th><th>Reason</th><th>Scope</th><th>Started</th><th>Ended</th>` +
    `<th class="num">Max unavail.</th><th class="num">xPUs</th><th class="num">Done</th><th class="num">Failed</th><th class="num">Not done</th><th>Failures</th></tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table></section>`
  );
}
