// The report's charts as inline SVG strings: no chart library, no script, nothing fetched at view time.
import type { GroupTotals, ReportRow } from './schema.ts';
import { esc, formatDuration, formatDurationShort, formatShare } from './format.ts';

const W = 640;
const H = 260;
// The scatter gets the page's full width: time needs room that counts per bin do not.
const WIDE_W = 1240;
const WIDE_H = 300;
const M = { l: 56, r: 16, t: 20, b: 44 };
const PW = W - M.l - M.r;
const PH = H - M.t - M.b;

/** Racks beyond this are summarised in the caption: a bar chart of 500 racks reads as noise. */
export const MAX_RACK_BARS = 30;

// Steps that read as durations (30s, 5m, 1h) rather than 1-2-5 decimals (50s, 500s).
const SECOND_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const TIME_STEPS_MS = [60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);

function niceSeconds(raw: number): number {
  for (const s of SECOND_STEPS) if (s >= raw) return s;
  return Math.ceil(raw / 86400) * 86400;
}

function niceCount(raw: number): number {
  if (raw <= 1) return 1;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const f = raw / pow;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * pow;
}

const n1 = (x: number): string => (Math.round(x * 10) / 10).toString();

function open(name: string, title: string, height: number, empty: boolean, width = W): string {
  return `<svg class="chart" data-chart="${name}" data-empty="${empty}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}" xmlns="http://www.w3.org/2000/svg">`;
}

function emptyState(height: number, width = W): string {
  const pw = width - M.l - M.r;
  return (
    `<rect class="frame" x="${M.l}" y="${M.t}" width="${pw}" height="${height - M.t - M.b}"/>` +
    `<text class="empty" x="${M.l + pw / 2}" y="${M.t + (height - M.t - M.b) / 2}" text-anchor="middle">No data in this window</text>`
  );
}

/** Counts of the notice given to planned xPU reboots, in equal-width bins, with the policy's notice marked. */
export function noticeHistogram(rows: readonly ReportRow[]): string {
  const planned = rows.filter((r) => r.kind === 'xpu' && r.mode === 'planned');
  const title = 'Notice given to planned xPU reboots';
  if (planned.length === 0) return open('notice-histogram', title, H, true) + emptyState(H) + '</svg>';

  const notices = planned.map((r) => r.noticeSeconds);
  const max = maxOf(notices);
  const step = niceSeconds(Math.max(max, 1) / 10);
  const bins = new Array<number>(Math.floor(max / step) + 1).fill(0);
  for (const n of notices) bins[Math.floor(n / step)]++;
  const maxCount = maxOf(bins);
  const yStep = niceCount(maxCount / 4);
  const yMax = Math.ceil(maxCount / yStep) * yStep;
  const bw = PW / bins.length;
  const y = (c: number) => M.t + PH - (c / yMax) * PH;

  const out: string[] = [open('notice-histogram', title, H, false)];
  for (let c = 0; c <= yMax; c += yStep) {
    out.push(`<line class="grid" x1="${M.l}" x2="${M.l + PW}" y1="${n1(y(c))}" y2="${n1(y(c))}"/>`);
    out.push(`<text class="tick" x="${M.l - 6}" y="${n1(y(c) + 4)}" text-anchor="end">${c}</text>`);
  }
  const labelEvery = Math.ceil(bins.length / 12);
  bins.forEach((count, i) => {
    const x = M.l + i * bw;
    const lo = i * step;
    const hi = lo + step;
    out.push(
      `<rect class="bar" data-count="${count}" x="${n1(x + 1)}" y="${n1(y(count))}" width="${n1(Math.max(bw - 2, 1))}" height="${n1(M.t + PH - y(count))}"><title>${esc(`${formatDuration(lo)} – <${formatDuration(hi)}: ${count}`)}</title></rect>`,
    );
    if (i % labelEvery === 0) {
      out.push(`<text class="tick" x="${n1(x)}" y="${M.t + PH + 16}" text-anchor="middle">${esc(formatDurationShort(lo))}</text>`);
    }
  });
  out.push(`<line class="axis" x1="${M.l}" x2="${M.l + PW}" y1="${M.t + PH}" y2="${M.t + PH}"/>`);

  // The policy's notice as a reference line: bars left of it are reboots announced too late.
  const policy = mostCommon(planned.map((r) => r.policyNoticeSeconds).filter((s) => s > 0));
  if (policy !== null) {
    const px = M.l + (policy / (bins.length * step)) * PW;
    if (px <= M.l + PW) {
      out.push(`<line class="policy" x1="${n1(px)}" x2="${n1(px)}" y1="${M.t}" y2="${M.t + PH}"/>`);
      // Near the right edge the label goes left of the line so it is not clipped.
      const right = px > M.l + PW - 90;
      out.push(
        `<text class="policy-label" x="${n1(right ? px - 4 : px + 4)}" y="${M.t + 10}" text-anchor="${right ? 'end' : 'start'}">policy ${esc(formatDurationShort(policy))}</text>`,
      );
    }
  }
  out.push(`<text class="axis-label" x="${M.l + PW / 2}" y="${H - 6}" text-anchor="middle">notice given</text>`);
  out.push(
    `<text class="axis-label" x="14" y="${M.t + PH / 2}" text-anchor="middle" transform="rotate(-90 14 ${M.t + PH / 2})">reboots</text>`,
  );
  out.push('</svg>');
  return out.join('');
}

/** Share of xPU reboots forced at the deadline, one horizontal bar per rack, worst first. */
export function forcedShareByRack(byRack: readonly GroupTotals[]): { svg: string; shown: number; racks: number } {
  const racks = byRack
    .filter((g) => g.forcedShare !== null)
    .sort((a, b) => b.forcedShare! - a.forcedShare! || b.xpu - a.xpu || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const shown = racks.slice(0, MAX_RACK_BARS);
  const title = 'Share of xPU reboots forced at the deadline, by rack';
  const rowH = 22;
  const labelW = 130;
  const valueW = 96;
  const height = shown.length ? M.t + shown.length * rowH + 30 : H;
  if (shown.length === 0) {
    return { svg: open('forced-by-rack', title, height, true) + emptyState(height) + '</svg>', shown: 0, racks: 0 };
  }
  const left = labelW;
  const bwMax = W - labelW - valueW - M.r;
  const out: string[] = [open('forced-by-rack', title, height, false)];
  for (const pct of [0, 0.25, 0.5, 0.75, 1]) {
    const x = left + pct * bwMax;
    out.push(`<line class="grid" x1="${n1(x)}" x2="${n1(x)}" y1="${M.t - 4}" y2="${M.t + shown.length * rowH}"/>`);
    out.push(`<text class="tick" x="${n1(x)}" y="${M.t + shown.length * rowH + 16}" text-anchor="middle">${pct * 100}%</text>`);
  }
  shown.forEach((g, i) => {
    const y = M.t + i * rowH;
    const label = g.key.length > 18 ? `${g.key.slice(0, 17)}…` : g.key;
    const share = g.forcedShare!;
    out.push(`<text class="label" x="${left - 8}" y="${y + 15}" text-anchor="end"><title>${esc(g.key)}</title>${esc(label)}</text>`);
    out.push(`<rect class="track" x="${left}" y="${y + 3}" width="${bwMax}" height="${rowH - 6}"/>`);
    out.push(
      `<rect class="bar${share > 0 ? ' forced' : ''}" data-share="${share}" x="${left}" y="${y + 3}" width="${n1(share * bwMax)}" height="${rowH - 6}"><title>${esc(`${g.key}: ${g.forced} of ${g.xpu} forced`)}</title></rect>`,
    );
    out.push(`<text class="value" x="${left + bwMax + 8}" y="${y + 15}">${esc(`${formatShare(share)} (${g.forced}/${g.xpu})`)}</text>`);
  });
  out.push('</svg>');
  return { svg: out.join(''), shown: shown.length, racks: racks.length };
}

/** Recovery time of each recovered reboot against when it went down, xPU and host reboots apart. */
export function recoveryScatter(rows: readonly ReportRow[], fromIso: string, toIso: string): string {
  const pts = rows
    .filter((r) => r.recoverySeconds !== null)
    .map((r) => ({ r, t: Date.parse(r.wentDownAt ?? r.notifiedAt), v: r.recoverySeconds! }))
    .filter((p) => Number.isFinite(p.t));
  const title = 'Recovery time by when the reboot went down';
  if (pts.length === 0) return open('recovery-scatter', title, WIDE_H, true, WIDE_W) + emptyState(WIDE_H, WIDE_W) + '</svg>';

  // The window is the frame; a reboot that went down after `to` widens it rather than falling off.
  let t0 = Date.parse(fromIso);
  let t1 = Date.parse(toIso);
  let vMax = 0;
  for (const p of pts) {
    if (p.t < t0) t0 = p.t;
    if (p.t > t1) t1 = p.t;
    if (p.v > vMax) vMax = p.v;
  }
  // 5% headroom so the slowest recovery is not drawn on the frame.
  const yStep = niceSeconds(Math.max(vMax * 1.05, 1) / 5);
  const yMax = Math.ceil(Math.max(vMax * 1.05, 1) / yStep) * yStep;
  const pw = WIDE_W - M.l - M.r;
  const ph = WIDE_H - M.t - M.b;
  const x = (t: number) => M.l + ((t - t0) / (t1 - t0)) * pw;
  const y = (v: number) => M.t + ph - (v / yMax) * ph;

  const out: string[] = [open('recovery-scatter', title, WIDE_H, false, WIDE_W)];
  for (let v = 0; v <= yMax; v += yStep) {
    out.push(`<line class="grid" x1="${M.l}" x2="${M.l + pw}" y1="${n1(y(v))}" y2="${n1(y(v))}"/>`);
    out.push(`<text class="tick" x="${M.l - 6}" y="${n1(y(v) + 4)}" text-anchor="end">${esc(formatDurationShort(v))}</text>`);
  }
  const tStep = TIME_STEPS_MS.find((s) => s >= (t1 - t0) / 10) ?? Math.ceil((t1 - t0) / 10 / 86400000) * 86400000;
  for (let t = Math.ceil(t0 / tStep) * tStep; t <= t1; t += tStep) {
    const iso = new Date(t).toISOString();
    const label = tStep >= 86400000 ? iso.slice(5, 10) : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
    out.push(`<line class="grid" x1="${n1(x(t))}" x2="${n1(x(t))}" y1="${M.t}" y2="${M.t + ph}"/>`);
    out.push(`<text class="tick" x="${n1(x(t))}" y="${M.t + ph + 16}" text-anchor="middle">${label}</text>`);
  }
  out.push(`<line class="axis" x1="${M.l}" x2="${M.l + pw}" y1="${M.t + ph}" y2="${M.t + ph}"/>`);
  for (const p of pts) {
    out.push(
      `<circle class="point ${p.r.kind}" cx="${n1(x(p.t))}" cy="${n1(y(p.v))}" r="3"><title>${esc(`${p.r.id} (${p.r.node}${p.r.xpu ? `/${p.r.xpu}` : ''}): ${formatDuration(p.v)}`)}</title></circle>`,
    );
  }
  out.push(
    `<circle class="point-legend xpu" cx="${M.l + pw - 110}" cy="${M.t + 6}" r="4"/><text class="tick" x="${M.l + pw - 102}" y="${M.t + 10}">xPU</text>`,
  );
  out.push(
    `<circle class="point-legend host" cx="${M.l + pw - 60}" cy="${M.t + 6}" r="4"/><text class="tick" x="${M.l + pw - 52}" y="${M.t + 10}">host</text>`,
  );
  out.push(`<text class="axis-label" x="${M.l + pw / 2}" y="${WIDE_H - 6}" text-anchor="middle">went down (UTC)</text>`);
  out.push(
    `<text class="axis-label" x="14" y="${M.t + ph / 2}" text-anchor="middle" transform="rotate(-90 14 ${M.t + ph / 2})">recovery</text>`,
  );
  out.push('</svg>');
  return out.join('');
}

// A loop, not Math.max(...xs): spreading tens of thousands of arguments can overflow the stack.
function maxOf(xs: readonly number[]): number {
  let m = -Infinity;
  for (const x of xs) if (x > m) m = x;
  return m;
}

function mostCommon(values: readonly number[]): number | null {
  const counts = new Map<number, number>();
  let best: number | null = null;
  let bestCount = 0;
  for (const v of values) {
    const c = (counts.get(v) ?? 0) + 1;
    counts.set(v, c);
    if (c > bestCount || (c === bestCount && best !== null && v < best)) {
      best = v;
      bestCount = c;
    }
  }
  return best;
}
