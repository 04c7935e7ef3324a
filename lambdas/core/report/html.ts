// The report as one self-contained HTML page: inline CSS and SVG, no script, nothing loaded at view time.
import type { ComplianceReport, GroupTotals, ReportRow, Severity, Totals } from './schema.ts';
import { forcedShareByRack, noticeHistogram, recoveryScatter, MAX_RACK_BARS } from './charts.ts';
import { esc, formatDuration, formatShare, formatTime } from './format.ts';
import { rolloutsHtml } from './rollouts.ts';

// The CSP makes "no network at view time" a property of the page, not a promise of this code.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'";

const CSS = `
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dee7;--bg:#f6f7f9;--card:#fff;--high:#b42318;--medium:#b54708;--low:#475467;--xpu:#2f6fdb;--host:#d9822b}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1280px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}h3{font-size:14px;margin:16px 0 8px}
.meta{color:var(--muted);margin:0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(135px,1fr));gap:12px;margin-top:18px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card .v{font-size:22px;font-weight:600}.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card.bad .v{color:var(--high)}
.empty-window{background:var(--card);border:1px dashed var(--line);border-radius:8px;padding:18px;margin-top:18px;font-size:16px}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line);font-size:13px}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr{content-visibility:auto;contain-intrinsic-size:auto 30px}
tr.sev-high td:first-child{box-shadow:inset 3px 0 var(--high)}tr.sev-medium td:first-child{box-shadow:inset 3px 0 var(--medium)}tr.sev-low td:first-child{box-shadow:inset 3px 0 var(--low)}
.sev{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;color:#fff}
.sev.high{background:var(--high)}.sev.medium{background:var(--medium)}.sev.low{background:var(--low)}
.code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.muted{color:var(--muted)}
.none{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px;color:var(--muted)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px;align-items:start}
figure.wide{grid-column:1/-1}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px}
figcaption{font-weight:600;margin-bottom:6px}figcaption small{font-weight:400;color:var(--muted)}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#e6e9ef}svg .axis{stroke:#8a93a3}svg .frame{fill:#fafbfc;stroke:var(--line)}
svg text{font-size:11px;fill:var(--muted)}svg .empty{font-size:14px}svg .label{fill:var(--fg)}svg .axis-label{font-size:12px}
svg .bar{fill:var(--xpu)}svg .bar.forced{fill:var(--high)}svg .track{fill:#f0f2f5}
svg .policy{stroke:var(--high);stroke-dasharray:4 3;stroke-width:1.5}svg .policy-label{fill:var(--high)}
svg .point{fill-opacity:.65}svg .xpu{fill:var(--xpu)}svg .host{fill:var(--host)}
.totals{display:grid;grid-template-columns:1fr;gap:8px}
nav{margin-top:10px;font-size:13px}nav a{color:var(--xpu);margin-right:14px;text-decoration:none}
.bycode{width:auto;min-width:50%;margin-bottom:12px}
footer{color:var(--muted);font-size:12px;margin-top:32px}
`;

export function renderHtml(report: ComplianceReport): string {
  const o = report.totals.overall;
  const empty = report.reboots.length === 0;
  const rack = forcedShareByRack(report.totals.byRack);
  const out: string[] = [];
  out.push(
    '<!doctype html><html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${esc(CSP)}">`,
    '<meta name="viewport" content="width=device-width,initial-scale=1">',
    `<title>Reboot compliance report ${esc(formatTime(report.from))} – ${esc(formatTime(report.to))}</title>`,
    `<style>${CSS}</style></head><body><main>`,
    '<header><h1>Reboot compliance report</h1>',
    `<p class="meta">Reboots notified from <b>${esc(formatTime(report.from))}</b> (inclusive) to <b>${esc(formatTime(report.to))}</b> (exclusive) · generated ${esc(formatTime(report.generatedAt))} · schema ${esc(report.schemaVersion)}</p>`,
    // In-page links only: a fragment never leaves the document.
    '<nav><a href="#findings">Findings</a><a href="#charts">Charts</a><a href="#totals">Totals</a><a href="#denials">Denials</a><a href="#reboots">Reboots</a><a href="#rollouts">Rollouts</a></nav></header>',
  );

  if (empty) {
    out.push('<p class="empty-window" id="empty-window">No reboots in this window.</p>');
  }
  out.push(summaryCards(o));

  out.push(`<section id="findings"><h2>Policy findings (${report.findings.length})</h2>`);
  if (report.findings.length) out.push(findingsByCode(report));
  out.push(findingsTable(report));
  out.push('</section>');

  out.push('<section id="charts"><h2>Charts</h2><div class="charts">');
  out.push(
    `<figure><figcaption>Notice given <small>planned xPU reboots, ${o.planned}</small></figcaption>${noticeHistogram(report.reboots)}</figure>`,
  );
  const rackNote =
    rack.racks > MAX_RACK_BARS
      ? `worst ${rack.shown} of ${rack.racks} racks`
      : `${rack.racks} rack${rack.racks === 1 ? '' : 's'} with xPU reboots`;
  out.push(`<figure><figcaption>Forced at the deadline, by rack <small>${esc(rackNote)}</small></figcaption>${rack.svg}</figure>`);
  out.push(
    `<figure class="wide"><figcaption>Recovery time over time <small>${report.reboots.filter((r) => r.recoverySeconds !== null).length} recovered reboots</small></figcaption>${recoveryScatter(report.reboots, report.from, report.to)}</figure>`,
  );
  out.push('</div></section>');

  out.push('<section id="totals"><h2>Totals</h2><div class="totals">');
  out.push('<h3>By rack</h3>', totalsTable(report.totals.byRack, 'rack', o));
  out.push('<h3>By zone</h3>', totalsTable(report.totals.byZone, 'zone', o));
  out.push('<h3>By tenant</h3>', totalsTable(report.totals.byTenant, 'tenant', o));
  out.push('</div></section>');

  const denied = report.reboots.filter((r) => r.denyReason !== null || r.status === 'denied');
  out.push(`<section id="denials"><h2>Denied host reboots (${denied.length})</h2>`);
  out.push(deniedTable(denied));
  out.push('</section>');

  out.push(`<section id="reboots"><h2>Reboots (${report.reboots.length})</h2>`);
  out.push(rebootsTable(report.reboots));
  out.push('</section>');

  out.push(rolloutsHtml(report.rollouts ?? []));

  out.push(
    '<footer><p>Notice: time from the notice to the deadline it announced, before extensions. Recovery: from the device going down (the recorded reboot, or the deadline when forced) to its ready signal. ',
    'Forced share: forced xPU reboots over xPU reboots. Median and p95 are nearest-rank. Reboots are listed with findings first (by severity), then newest first. ',
    'Reboots still in progress show their status when the report was generated.</p></footer>',
    '</main></body></html>\n',
  );
  return out.join('');
}

function summaryCards(o: Totals): string {
  const card = (k: string, v: string, sub = '', bad = false) =>
    `<div class="card${bad ? ' bad' : ''}"><div class="k">${esc(k)}</div><div class="v">${esc(v)}</div>${sub ? `<div class="muted">${esc(sub)}</div>` : ''}</div>`;
  return (
    '<section id="summary" class="cards">' +
    card('Reboots', String(o.count), `${o.xpu} xPU · ${o.host} host`) +
    card('Policy violations', String(o.policyViolations), `${o.rebootsWithFindings} reboots with findings`, o.policyViolations > 0) +
    card('Forced at deadline', formatShare(o.forcedShare), `${o.forced} of ${o.xpu} xPU reboots`, o.forced > 0) +
    card('Median notice', formatDuration(o.medianNoticeSeconds), `${o.planned} planned xPU reboots`) +
    card('p95 recovery', formatDuration(o.p95RecoverySeconds), `median ${formatDuration(o.medianRecoverySeconds)}`) +
    card('Failed', String(o.failed), `${o.failedCommands} failed or timed-out commands`, o.failed > 0) +
    card('Denied', String(o.denied), 'host reboots the xPU refused') +
    card('In progress', String(o.inProgress), `${o.completed} completed · ${o.cancelled} cancelled`) +
    '</section>'
  );
}

function sevBadge(s: Severity): string {
  return `<span class="sev ${s}">${s}</span>`;
}

function target(node: string, xpu: string | null): string {
  return xpu ? `${esc(node)} / ${esc(xpu)}` : esc(node);
}

/** How many of each finding, so a long list can be read from its shape before its rows. */
function findingsByCode(report: ComplianceReport): string {
  const counts = new Map<string, { severity: Severity; category: string; findings: number; reboots: Set<string> }>();
  for (const f of report.findings) {
    const c = counts.get(f.code) ?? { severity: f.severity, category: f.category, findings: 0, reboots: new Set<string>() };
    c.findings++;
    c.reboots.add(f.rebootId);
    counts.set(f.code, c);
  }
  return (
    '<table class="bycode"><thead><tr><th>Severity</th><th>Finding</th><th>Category</th><th class="num">Findings</th><th class="num">Reboots</th></tr></thead><tbody>' +
    [...counts.entries()]
      .map(
        ([code, c]) =>
          `<tr class="sev-${c.severity}"><td>${sevBadge(c.severity)}</td><td class="code">${esc(code)}</td><td>${esc(c.category)}</td><td class="num">${c.findings}</td><td class="num">${c.reboots.size}</td></tr>`,
      )
      .join('') +
    '</tbody></table>'
  );
}

function findingsTable(report: ComplianceReport): string {
  if (report.findings.length === 0) return '<p class="none">No policy findings in this window.</p>';
  const rows = report.findings.map(
    (f) =>
      `<tr class="sev-${f.severity}"><td>${sevBadge(f.severity)}</td><td class="code">${esc(f.code)}</td><td>${esc(f.category)}</td>` +
      `<td class="code">${esc(f.rebootId)}</td><td>${target(f.node, f.xpu)}</td><td>${esc(formatTime(f.notifiedAt))}</td><td>${esc(f.message)}</td></tr>`,
  );
  return (
    '<table class="findings"><thead><tr><th>Severity</th><th>Finding</th><th>Category</th><th>Reboot</th><th>Node / xPU</th><th>Notified</th><th>Details</th></tr></thead><tbody>' +
    rows.join('') +
    '</tbody></table>'
  );
}

function totalsTable(groups: readonly GroupTotals[], what: string, overall: Totals): string {
  if (groups.length === 0) return `<p class="none">No reboots, so no ${esc(what)} totals.</p>`;
  const line = (key: string, t: Totals, cls = '') =>
    `<tr${cls}><td>${esc(key)}</td><td class="num">${t.count}</td><td class="num">${t.xpu}</td><td class="num">${t.host}</td>` +
    `<td class="num">${t.forced}</td><td class="num">${formatShare(t.forcedShare)}</td><td class="num">${formatDuration(t.medianNoticeSeconds)}</td>` +
    `<td class="num">${formatDuration(t.p95RecoverySeconds)}</td><td class="num">${t.failed}</td><td class="num">${t.denied}</td>` +
    `<td class="num">${t.policyViolations}</td><td class="num">${t.rebootsWithFindings}</td></tr>`;
  return (
    `<table class="totals-${esc(what)}"><thead><tr><th>${esc(what[0].toUpperCase() + what.slice(1))}</th><th class="num">Reboots</th><th class="num">xPU</th><th class="num">Host</th>` +
    '<th class="num">Forced</th><th class="num">Forced share</th><th class="num">Median notice</th><th class="num">p95 recovery</th>' +
    '<th class="num">Failed</th><th class="num">Denied</th><th class="num">Violations</th><th class="num">With findings</th></tr></thead><tbody>' +
    groups.map((g) => line(g.key, g)).join('') +
    line('All', overall, ' class="all"').replace('<td>All</td>', '<td><b>All</b></td>') +
    '</tbody></table>'
  );
}

function deniedTable(rows: readonly ReportRow[]): string {
  if (rows.length === 0) return '<p class="none">No host reboots were denied in this window.</p>';
  return (
    '<table class="denials"><thead><tr><th>Reboot</th><th>Node</th><th>Requested</th><th>Mode</th><th>Status</th><th>Reason</th></tr></thead><tbody>' +
    rows
      .map(
        (r) =>
          `<tr><td class="code">${esc(r.id)}</td><td>${target(r.node, r.xpu)}</td><td>${esc(formatTime(r.notifiedAt))}</td><td>${esc(r.mode)}</td><td>${esc(r.status)}</td><td>${esc(r.denyReason ?? '—')}</td></tr>`,
      )
      .join('') +
    '</tbody></table>'
  );
}

function rebootsTable(rows: readonly ReportRow[]): string {
  if (rows.length === 0) return '<p class="none">No reboots in this window.</p>';
  const body: string[] = [];
  for (const r of rows) {
    const worst = r.findings[0]?.severity;
    const place = [r.rack, r.zone, r.tenant].map((x) => esc(x ?? '—')).join(' · ');
    const ext =
      r.extensionsRequested === 0
        ? '—'
        : `${r.extensionsGranted} granted${r.extensionsRefused ? `, ${r.extensionsRefused} refused` : ''}${r.extendedSeconds ? ` (+${esc(formatDuration(r.extendedSeconds))})` : ''}`;
    // Who (docs/identities.md), where the history says.
    const who = (a: string | null | undefined) => (a ? ` <span class="muted">by ${esc(a)}</span>` : '');
    const extBy = who([...new Set(r.by?.extended ?? [])].join(', '));
    const cmds = r.failedCommands.length ? r.failedCommands.map((c) => `${esc(c.type)}: ${esc(c.status)}`).join('<br>') : '—';
    const findings = r.findings.length
      ? r.findings.map((f) => `${sevBadge(f.severity)} <span class="code">${esc(f.code)}</span>`).join('<br>')
      : '—';
    const notice =
      r.kind === 'xpu'
        ? `${esc(formatDuration(r.noticeSeconds))} <span class="muted">/ ${esc(formatDuration(r.policyNoticeSeconds))}</span>`
        : '—';
    body.push(
      `<tr${worst ? ` class="sev-${worst}"` : ''}><td class="code">${esc(r.id)}</td><td>${esc(r.kind)} <span class="muted">${esc(r.mode)}</span></td>` +
        `<td>${target(r.node, r.xpu)}</td><td>${place}</td><td>${esc(r.status)}${who(r.by?.cancelled)}${r.crossesWindowEnd && r.inProgress ? ' <span class="muted">(in progress)</span>' : ''}</td>` +
        `<td>${esc(formatTime(r.notifiedAt))}</td><td class="num">${notice}</td><td>${ext}${r.extensionsGranted ? extBy : ''}</td><td>${r.forced ? `<b>forced</b>${who(r.by?.forced)}` : 'no'}</td>` +
        `<td class="num">${esc(formatDuration(r.recoverySeconds))}</td><td>${cmds}</td><td>${esc(r.denyReason ?? '—')}</td><td>${findings}</td></tr>`,
    );
  }
  return (
    '<table class="reboots"><thead><tr><th>Reboot</th><th>Kind</th><th>Node / xPU</th><th>Rack · zone · tenant</th><th>Status</th><th>Notified</th>' +
    '<th class="num">Notice / policy</th><th>Extensions</th><th>Forced</th><th class="num">Recovery</th><th>Failed commands</th><th>Deny reason</th><th>Findings</th></tr></thead><tbody>' +
    body.join('') +
    '</tbody></table>'
  );
}
