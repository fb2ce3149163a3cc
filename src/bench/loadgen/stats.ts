// Figures from request records. Pure: no clock, no I/O. Latency figures use successful requests only;
// failed ones are counted by cause.
import { mean, percentile } from '../../util/stats.ts';
import type { RequestRecord } from './types.ts';

export { mean, percentile } from '../../util/stats.ts';

/** The formulas, printed beside the figures and written to the JSON report. */
export const FORMULAS = {
  ttft: 'TTFT = first content chunk - send',
  e2e: 'E2E = last chunk - send',
  tpot: 'TPOT = (E2E - TTFT) / (n - 1), n = output tokens, requests with n > 1',
  itl: 'ITL = gaps between consecutive content chunks, pooled over requests',
  percentiles:
    'percentiles: linear interpolation between closest ranks (numpy default): x[floor(h)] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)]), h = (n - 1) * p / 100',
  requestsPerSecond: 'requests/s = successful requests / wall time',
  tokensPerSecond: 'output tokens/s = sum of usage.completion_tokens over successful requests / wall time',
  wall: 'wall time = go signal -> end of the last response',
  goodput:
    'goodput = successful requests with TTFT <= slo-ttft and TPOT <= slo-tpot (n <= 1 counts as TPOT 0) / wall time',
} as const;

export interface Summary {
  n: number;
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p95: number | null;
  p99: number | null;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    mean: mean(sorted),
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
  };
}

export interface RequestTimings {
  /** null when no content chunk arrived. */
  ttftMs: number | null;
  e2eMs: number;
  /** null unless n > 1 and a first chunk arrived. */
  tpotMs: number | null;
  itlMs: number[];
}

export function requestTimings(r: RequestRecord): RequestTimings {
  const first = r.chunkMs[0];
  const ttftMs = first === undefined ? null : first - r.sendMs;
  const e2eMs = r.endMs - r.sendMs;
  const tpotMs = ttftMs !== null && r.outputTokens > 1 ? (e2eMs - ttftMs) / (r.outputTokens - 1) : null;
  const itlMs: number[] = [];
  for (let k = 1; k < r.chunkMs.length; k++) itlMs.push((r.chunkMs[k] as number) - (r.chunkMs[k - 1] as number));
  return { ttftMs, e2eMs, tpotMs, itlMs };
}

/** Why a request failed, as reports group it: 'HTTP 429', 'HTTP 500', 'network', 'timeout', 'in-stream'. */
export function errorCause(r: RequestRecord): string | null {
  if (r.ok) return null;
  switch (r.errorKind) {
    case 'http':
      return `HTTP ${r.status ?? '?'}`;
    case 'network':
      return 'network';
    case 'timeout':
      return 'timeout';
    case 'stream':
    case null:
      return 'in-stream';
  }
}

export interface Slo {
  ttftMs: number | null;
  tpotMs: number | null;
}

export function meetsSlo(t: RequestTimings, slo: Slo): boolean {
  if (slo.ttftMs !== null && (t.ttftMs === null || t.ttftMs > slo.ttftMs)) return false;
  if (slo.tpotMs !== null && (t.tpotMs ?? 0) > slo.tpotMs) return false;
  return true;
}

export interface LoadgenReport {
  ranks: number;
  /** Requests planned (--requests). */
  requests: number;
  /** Requests with a record (planned minus those lost with a failed rank). */
  completed: number;
  ok: number;
  /** Every failed request, 429s included. */
  errors: number;
  /** HTTP 429 (queue full), counted apart from the other errors. */
  rejected: number;
  /** Failed requests by cause, most frequent first. */
  errorsByCause: Array<{ cause: string; count: number; example: string }>;
  wallMs: number;
  ttftMs: Summary;
  e2eMs: Summary;
  tpotMs: Summary;
  itlMs: Summary;
  /** usage.prompt_tokens of successful requests. */
  promptTokens: Summary;
  /** Sum of output tokens of successful requests. */
  outputTokens: number;
  /** Successful requests whose output tokens were counted from chunks (no usage in the stream). */
  outputTokensFromChunks: number;
  requestsPerSecond: number | null;
  outputTokensPerSecond: number | null;
  goodput: { slo: Slo; requests: number; perSecond: number | null } | null;
}

export function computeReport(
  records: readonly RequestRecord[],
  run: { goMs: number; requests: number; ranks: number; slo: Slo },
): LoadgenReport {
  const ok = records.filter((r) => r.ok);
  const timings = ok.map(requestTimings);
  const byCause = new Map<string, { count: number; example: string }>();
  for (const r of records) {
    const cause = errorCause(r);
    if (cause === null) continue;
    const entry = byCause.get(cause) ?? { count: 0, example: r.error ?? '' };
    entry.count++;
    byCause.set(cause, entry);
  }
  const errorsByCause = [...byCause.entries()]
    .map(([cause, e]) => ({ cause, count: e.count, example: e.example }))
    .sort((a, b) => b.count - a.count || a.cause.localeCompare(b.cause));
  let lastEnd = run.goMs;
  for (const r of records) lastEnd = Math.max(lastEnd, r.endMs);
  const wallMs = lastEnd - run.goMs;
  const perSecond = (count: number): number | null => (wallMs > 0 ? (count * 1000) / wallMs : null);
  const outputTokens = ok.reduce((sum, r) => sum + r.outputTokens, 0);
  const sloGiven = run.slo.ttftMs !== null || run.slo.tpotMs !== null;
  const good = timings.filter((t) => meetsSlo(t, run.slo)).length;
  return {
    ranks: run.ranks,
    requests: run.requests,
    completed: records.length,
    ok: ok.length,
    errors: records.length - ok.length,
    rejected: records.filter((r) => r.errorKind === 'http' && r.status === 429).length,
    errorsByCause,
    wallMs,
    ttftMs: summarize(timings.flatMap((t) => (t.ttftMs === null ? [] : [t.ttftMs]))),
    e2eMs: summarize(timings.map((t) => t.e2eMs)),
    tpotMs: summarize(timings.flatMap((t) => (t.tpotMs === null ? [] : [t.tpotMs]))),
    itlMs: summarize(timings.flatMap((t) => t.itlMs)),
    promptTokens: summarize(ok.flatMap((r) => (r.promptTokens === null ? [] : [r.promptTokens]))),
    outputTokens,
    outputTokensFromChunks: ok.filter((r) => r.outputTokensFrom === 'chunks').length,
    requestsPerSecond: perSecond(ok.length),
    outputTokensPerSecond: perSecond(outputTokens),
    goodput: sloGiven ? { slo: run.slo, requests: good, perSecond: perSecond(good) } : null,
  };
}
