/**
 * The readings chart (VERIFIER.md §4.6): our own inline SVG, sized by viewBox so the same drawing prints sharply.
 * Bucket means as a line and min-max as a band; the line breaks at missing buckets and a hatched band covers
 * missing seq ranges (gaps are never joined); non-N flags and failed readings get shaped markers, not only
 * colours (C ▲, M ■, D ✕, failed: red ✕ in a circle); a dashed red limit line when the bundle carries a limit.
 */
import { formatTime } from '@stele/core/verify';
import { s } from './dom.ts';
import type { BundleInfo, Series } from './protocol.ts';

const W = 760;
const H = 300;
const M = { left: 56, right: 16, top: 16, bottom: 46 };

/** HH:MM (UTC+08:00) of a time in ms. */
export const hhmm = (ms: number): string => formatTime(ms).slice(11, 16);

function niceTicks(min: number, max: number, count: number): number[] {
  const span = max - min || Math.abs(max) || 1;
  const step0 = span / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= step0) ?? step0;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function fmtNum(v: number): string {
  return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v * 100) / 100) : v.toPrecision(4).replace(/\.?0+$/, '');
}

/** The chart of one series; `summary` is its text alternative (aria-label). */
export function drawChart(info: BundleInfo, series: Series, summary: string): SVGElement {
  const from = info.timeRange?.fromMs ?? 0;
  const to = Math.max(info.timeRange?.toMs ?? 1, from + 1);
  let lo = Infinity;
  let hi = -Infinity;
  for (const b of series.buckets) {
    lo = Math.min(lo, b.min);
    hi = Math.max(hi, b.max);
  }
  if (info.limit !== undefined) {
    lo = Math.min(lo, info.limit);
    hi = Math.max(hi, info.limit);
  }
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  if (lo === hi) [lo, hi] = [lo - 1, hi + 1];
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const x = (t: number): number => M.left + ((t - from) / (to - from)) * (W - M.left - M.right);
  const y = (v: number): number => M.top + (1 - (v - lo) / (hi - lo)) * (H - M.top - M.bottom);
  const f = (n: number): string => n.toFixed(1);

  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': summary });
  svg.append(
    s('title', {}, summary),
    s(
      'defs',
      {},
      s(
        'pattern',
        { id: `hatch-${series.code}`, width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
        s('line', { x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#8a5a00', 'stroke-width': 2 }),
      ),
    ),
  );
  // Axes and grid.
  for (const v of niceTicks(lo, hi, 5)) {
    svg.append(
      s('line', { x1: M.left, x2: W - M.right, y1: f(y(v)), y2: f(y(v)), class: 'grid' }),
      s('text', { x: M.left - 6, y: f(y(v) + 4), 'text-anchor': 'end', class: 'tick' }, fmtNum(v)),
    );
  }
  const xTicks = niceTicks(from, to, 6).filter((t) => t >= from && t <= to);
  for (const t of xTicks) {
    svg.append(s('text', { x: f(x(t)), y: H - M.bottom + 16, 'text-anchor': 'middle', class: 'tick' }, hhmm(t)));
  }
  svg.append(
    s('line', { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: 'axis' }),
    s('line', { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: 'axis' }),
    s('text', { x: (W + M.left) / 2, y: H - 8, 'text-anchor': 'middle', class: 'axis-title zh' }, `设备时间（北京时间 UTC+08:00），${formatTime(from).slice(0, 10)}`),
    s('text', { x: (W + M.left) / 2, y: H - 8, 'text-anchor': 'middle', class: 'axis-title en' }, `device time (Beijing, UTC+08:00), ${formatTime(from).slice(0, 10)}`),
    s('text', { x: 12, y: M.top + 4, class: 'axis-title', transform: `rotate(-90 12 ${M.top + 4})`, 'text-anchor': 'end' }, `${series.code}${series.unit ? ` (${series.unit})` : ''}`),
  );
  // Gaps: hatched bands over missing seq ranges.
  for (const g of info.gaps) {
    const a = x(g.fromMs ?? from);
    const b = x(g.toMs ?? to);
    svg.append(s('rect', { x: f(a), y: M.top, width: f(Math.max(2, b - a)), height: H - M.top - M.bottom, fill: `url(#hatch-${series.code})`, class: 'gap' }));
  }
  // Min-max band and mean line, broken wherever buckets are not adjacent.
  const runs: (typeof series.buckets)[] = [];
  for (const b of series.buckets) {
    const last = runs.at(-1);
    if (last !== undefined && last.at(-1)!.endMs === b.startMs) last.push(b);
    else runs.push([b]);
  }
  const mid = (b: { startMs: number; endMs: number }): number => x(Math.min(to, Math.max(from, (b.startMs + b.endMs) / 2)));
  for (const run of runs) {
    if (run.length === 1) {
      const b = run[0]!;
      svg.append(s('line', { x1: f(mid(b)), x2: f(mid(b)), y1: f(y(b.min)), y2: f(y(b.max)), class: 'band-line' }));
      svg.append(s('circle', { cx: f(mid(b)), cy: f(y(b.mean)), r: 2, class: 'mean-dot' }));
      continue;
    }
    const top = run.map((b) => `${f(mid(b))},${f(y(b.max))}`);
    const bottom = run.map((b) => `${f(mid(b))},${f(y(b.min))}`).reverse();
    svg.append(s('polygon', { points: [...top, ...bottom].join(' '), class: 'band' }));
    svg.append(s('polyline', { points: run.map((b) => `${f(mid(b))},${f(y(b.mean))}`).join(' '), class: 'mean' }));
  }
  if (info.limit !== undefined) {
    const ly = f(y(info.limit));
    svg.append(
      s('line', { x1: M.left, x2: W - M.right, y1: ly, y2: ly, class: 'limit' }),
      s('text', { x: W - M.right - 4, y: Number(ly) - 4, 'text-anchor': 'end', class: 'limit-label zh' }, `限值 ${fmtNum(info.limit)}`),
      s('text', { x: W - M.right - 4, y: Number(ly) - 4, 'text-anchor': 'end', class: 'limit-label en' }, `limit ${fmtNum(info.limit)}`),
    );
  }
  for (const m of series.markers) {
    const cx = x(m.timeMs);
    const cy = y(m.value);
    const g = s('g', { class: `marker marker-${m.kind === 'FAIL' ? 'fail' : 'flag'}` });
    g.append(s('title', {}, `seq ${m.seq} · ${formatTime(m.timeMs)} · ${fmtNum(m.value)} · ${m.kind}`));
    if (m.kind === 'FAIL') {
      g.append(
        s('circle', { cx: f(cx), cy: f(cy), r: 6, fill: 'none' }),
        s('path', { d: `M${f(cx - 4)} ${f(cy - 4)}L${f(cx + 4)} ${f(cy + 4)}M${f(cx + 4)} ${f(cy - 4)}L${f(cx - 4)} ${f(cy + 4)}` }),
      );
    } else if (m.kind === 'C') g.append(s('path', { d: `M${f(cx)} ${f(cy - 5)}L${f(cx + 5)} ${f(cy + 4)}L${f(cx - 5)} ${f(cy + 4)}Z` }));
    else if (m.kind === 'M') g.append(s('rect', { x: f(cx - 4), y: f(cy - 4), width: 8, height: 8 }));
    else if (m.kind === 'D') g.append(s('path', { d: `M${f(cx - 4)} ${f(cy - 4)}L${f(cx + 4)} ${f(cy + 4)}M${f(cx + 4)} ${f(cy - 4)}L${f(cx - 4)} ${f(cy + 4)}` }));
    else g.append(s('circle', { cx: f(cx), cy: f(cy), r: 4 }));
    svg.append(g);
  }
  return svg;
}
