// One self-contained HTML page (inline SVG and CSS, no scripts, nothing fetched): the text report,
// latency CDFs (TTFT, E2E, ITL), output tokens/s over time, and one timeline row per rank showing how
// requests overlap (a bar from send to end, the TTFT part shaded).
import { formatReport, type RunInfo } from './report.ts';
import { type LoadgenReport, requestTimings } from './stats.ts';
import type { RequestRecord } from './types.ts';

const WIDTH = 720;
const MARGIN = { left: 64, right: 24, top: 16, bottom: 44 };

export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

/** Round tick values (1, 2, 5 x 10^k) covering [0, max]. */
export function niceTicks(max: number, target = 6): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / target;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= raw) ?? 10) * magnitude;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if ((ticks.at(-1) ?? 0) < max) ticks.push(Number(((ticks.at(-1) ?? 0) + step).toPrecision(12)));
  return ticks;
}

const num = (v: number): string => (Math.round(v * 10) / 10).toString();
const label = (v: number): string =>
  Math.abs(v) >= 1000 ? v.toLocaleString('en-US') : String(Number(v.toPrecision(6)));

interface Frame {
  height: number;
  x: (v: number) => number;
  y: (v: number) => number;
  parts: string[];
}

function frame(
  height: number,
  xMax: number,
  yMax: number,
  xTitle: string,
  yTitle: string,
  yTicks?: number[],
): Frame & { xMax: number; yMax: number } {
  const xt = niceTicks(xMax);
  const yt = yTicks ?? niceTicks(yMax, 4);
  const xEnd = xt.at(-1) ?? 1;
  const yEnd = yt.at(-1) ?? 1;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const x = (v: number): number => MARGIN.left + (v / xEnd) * plotW;
  const y = (v: number): number => MARGIN.top + plotH - (v / yEnd) * plotH;
  const parts: string[] = [];
  for (const v of yt) {
    parts.push(
      `<line class="grid" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${num(y(v))}" y2="${num(y(v))}"/>`,
    );
    parts.push(`<text class="tick" x="${MARGIN.left - 6}" y="${num(y(v) + 4)}" text-anchor="end">${label(v)}</text>`);
  }
  for (const v of xt) {
    parts.push(
      `<line class="grid" x1="${num(x(v))}" x2="${num(x(v))}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}"/>`,
    );
    parts.push(
      `<text class="tick" x="${num(x(v))}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${label(v)}</text>`,
    );
  }
  parts.push(`<rect class="axis" x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}"/>`);
  parts.push(
    `<text class="title" x="${MARGIN.left + plotW / 2}" y="${height - 6}" text-anchor="middle">${escapeHtml(xTitle)}</text>`,
  );
  parts.push(
    `<text class="title" transform="translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(yTitle)}</text>`,
  );
  return { height, x, y, parts, xMax: xEnd, yMax: yEnd };
}

const svg = (f: Frame, body: string[]): string =>
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${f.height}" width="${WIDTH}" height="${f.height}">${[...f.parts, ...body].join('')}</svg>`;

/** Empirical CDF as a step path: F(x) = fraction of values <= x. */
export function cdfChart(values: readonly number[], xTitle: string): string {
  if (values.length === 0) return '<p class="empty">no data</p>';
  const sorted = [...values].sort((a, b) => a - b);
  const f = frame(240, sorted.at(-1) ?? 1, 1, xTitle, 'fraction <= x', [0, 0.25, 0.5, 0.75, 1]);
  const n = sorted.length;
  let d = `M${num(f.x(0))},${num(f.y(0))}`;
  sorted.forEach((v, i) => {
    d += ` H${num(f.x(v))} V${num(f.y((i + 1) / n))}`;
  });
  return svg(f, [`<path class="cdf" d="${d}"/>`]);
}

/** Output tokens per second in time bins since go: each content chunk carries its request's tokens / chunks. */
export function tokensOverTime(
  records: readonly RequestRecord[],
  goMs: number,
  wallMs: number,
): { binMs: number; tokensPerSecond: number[] } {
  const binMs = Math.max(50, niceTicks(Math.max(wallMs, 1), 40)[1] ?? 1000);
  const bins = new Array<number>(Math.max(1, Math.ceil(wallMs / binMs))).fill(0);
  for (const r of records) {
    if (!r.ok || r.chunkMs.length === 0) continue;
    const perChunk = r.outputTokens / r.chunkMs.length;
    for (const t of r.chunkMs) {
      const k = Math.min(bins.length - 1, Math.max(0, Math.floor((t - goMs) / binMs)));
      bins[k] = (bins[k] ?? 0) + perChunk;
    }
  }
  return { binMs, tokensPerSecond: bins.map((tokens) => (tokens * 1000) / binMs) };
}

function throughputChart(records: readonly RequestRecord[], goMs: number, wallMs: number): string {
  const { binMs, tokensPerSecond } = tokensOverTime(records, goMs, wallMs);
  const seconds = (tokensPerSecond.length * binMs) / 1000;
  const f = frame(240, seconds, Math.max(1, ...tokensPerSecond), 'seconds since the go signal', 'output tokens/s');
  const bars = tokensPerSecond.map((v, k) => {
    const x0 = f.x((k * binMs) / 1000);
    const x1 = f.x(((k + 1) * binMs) / 1000);
    return `<rect class="tps" x="${num(x0)}" y="${num(f.y(v))}" width="${num(Math.max(0.5, x1 - x0 - 0.5))}" height="${num(f.y(0) - f.y(v))}"><title>${num((k * binMs) / 1000)}-${num(((k + 1) * binMs) / 1000)} s: ${v.toFixed(1)} tokens/s</title></rect>`;
  });
  return svg(f, bars);
}

/** Lanes within one rank so overlapping requests (open loop) stack instead of hiding each other. */
export function assignLanes(records: readonly RequestRecord[]): Map<number, number> {
  const laneEnds: number[] = [];
  const lanes = new Map<number, number>();
  for (const r of [...records].sort((a, b) => a.sendMs - b.sendMs || a.id - b.id)) {
    let lane = laneEnds.findIndex((end) => end <= r.sendMs);
    if (lane < 0) lane = laneEnds.push(0) - 1;
    laneEnds[lane] = r.endMs;
    lanes.set(r.id, lane);
  }
  return lanes;
}

function timelineChart(records: readonly RequestRecord[], goMs: number, wallMs: number, ranks: number): string {
  const LANE = 12;
  const GAP = 10;
  const byRank = Array.from({ length: ranks }, (_, rank) => records.filter((r) => r.rank === rank));
  const layout = byRank.map((rs) => {
    const lanes = assignLanes(rs);
    return { rs, lanes, count: Math.max(1, ...[...lanes.values()].map((l) => l + 1)) };
  });
  const plotH = layout.reduce((h, l) => h + l.count * LANE + GAP, GAP);
  const f = frame(
    plotH + MARGIN.top + MARGIN.bottom,
    Math.max(wallMs / 1000, 0.001),
    1,
    'seconds since the go signal',
    '',
    [],
  );
  const body: string[] = [];
  let top = MARGIN.top + GAP;
  layout.forEach(({ rs, lanes, count }, rank) => {
    body.push(
      `<text class="tick" x="${MARGIN.left - 6}" y="${num(top + (count * LANE) / 2 + 4)}" text-anchor="end">rank ${rank}</text>`,
    );
    if (rank > 0)
      body.push(
        `<line class="grid" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${num(top - GAP / 2)}" y2="${num(top - GAP / 2)}"/>`,
      );
    for (const r of rs) {
      const t = requestTimings(r);
      const y = top + (lanes.get(r.id) ?? 0) * LANE + 1;
      const x0 = f.x((r.sendMs - goMs) / 1000);
      const x1 = f.x((r.endMs - goMs) / 1000);
      const tip = escapeHtml(
        `request ${r.id}, rank ${r.rank}: ${r.ok ? 'ok' : `failed (${r.error ?? r.errorKind})`}; ` +
          `send ${((r.sendMs - goMs) / 1000).toFixed(3)} s, TTFT ${t.ttftMs === null ? 'n/a' : `${t.ttftMs.toFixed(1)} ms`}, ` +
          `E2E ${t.e2eMs.toFixed(1)} ms, ${r.outputTokens} tokens`,
      );
      body.push(`<g><title>${tip}</title>`);
      body.push(
        `<rect class="${r.ok ? 'req' : 'req-err'}" x="${num(x0)}" y="${num(y)}" width="${num(Math.max(1, x1 - x0))}" height="${LANE - 2}"/>`,
      );
      if (t.ttftMs !== null) {
        const xf = f.x((r.sendMs + t.ttftMs - goMs) / 1000);
        body.push(
          `<rect class="ttft" x="${num(x0)}" y="${num(y)}" width="${num(Math.max(0.5, xf - x0))}" height="${LANE - 2}"/>`,
        );
      }
      body.push('</g>');
    }
    top += count * LANE + GAP;
  });
  return svg(f, body);
}

export function renderHtml(report: LoadgenReport, info: RunInfo, records: readonly RequestRecord[]): string {
  const timings = records.filter((r) => r.ok).map(requestTimings);
  const ttft = timings.flatMap((t) => (t.ttftMs === null ? [] : [t.ttftMs]));
  const e2e = timings.map((t) => t.e2eMs);
  const itl = timings.flatMap((t) => t.itlMs);
  const title = `Load test: ${info.ranks} ranks, ${info.requests} requests, ${new Date(info.goMs).toISOString()}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 780px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
pre { background: #f6f6f6; padding: 12px; overflow-x: auto; font-size: 12px; }
p.note, p.empty { color: #555; font-size: 13px; }
svg { display: block; margin: 8px 0; }
.grid { stroke: #e4e4e4; stroke-width: 1; }
.axis { fill: none; stroke: #999; }
.tick { font-size: 11px; fill: #555; }
.title { font-size: 12px; fill: #333; }
.cdf { fill: none; stroke: #1f77b4; stroke-width: 2; }
.tps { fill: #2ca02c; }
.req { fill: #9ecae1; }
.req-err { fill: #e6550d; }
.ttft { fill: #3182bd; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<pre>${escapeHtml(formatReport(report, info))}</pre>
<h2>TTFT: cumulative distribution</h2>
<p class="note">TTFT = first content chunk - send; ${ttft.length} successful requests.</p>
${cdfChart(ttft, 'TTFT (ms)')}
<h2>E2E latency: cumulative distribution</h2>
<p class="note">E2E = last chunk - send; ${e2e.length} successful requests.</p>
${cdfChart(e2e, 'E2E (ms)')}
<h2>ITL: cumulative distribution</h2>
<p class="note">ITL = gaps between consecutive content chunks, pooled over requests; ${itl.length} gaps.</p>
${cdfChart(itl, 'ITL (ms)')}
<h2>Output tokens/s over time</h2>
<p class="note">Successful requests; each content chunk counts its request's usage.completion_tokens / chunks.</p>
${throughputChart(records, info.goMs, report.wallMs)}
<h2>Requests per rank over time</h2>
<p class="note">One row per rank; a bar per request from send to end, the darker part is TTFT; failed requests in orange.
Overlapping requests of one rank (open loop) stack in lanes. Hover a bar for its figures.</p>
${timelineChart(records, info.goMs, report.wallMs, info.ranks)}
</body>
</html>
`;
}
