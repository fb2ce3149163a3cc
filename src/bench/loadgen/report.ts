// The text report (the seed's block first, unchanged, then the details) and the JSON document.
import { FORMULAS, type LoadgenReport, requestTimings, type Summary } from './stats.ts';
import type { RequestRecord } from './types.ts';

/** What was run, for the report's header lines and the JSON. */
export interface RunInfo {
  url: string;
  model: string | null;
  ranks: number;
  requests: number;
  /** null: closed loop. */
  rate: number | null;
  maxTokens: number;
  promptTokens: number;
  seed: number;
  timeoutMs: number;
  /** Epoch ms of the go signal. */
  goMs: number;
}

const fixed = (value: number | null, digits: number): string => (value === null ? 'n/a' : value.toFixed(digits));

/** The block the seed printed, same text and digits: E2E latency of successful requests, then throughput. */
export function formatSeedBlock(r: LoadgenReport): string {
  const e = r.e2eMs;
  return [
    '=== llama-server latency (ms) ===',
    `mean=${fixed(e.mean, 3)} p50=${fixed(e.p50, 3)} p95=${fixed(e.p95, 3)} p99=${fixed(e.p99, 3)}`,
    '',
    '=== throughput ===',
    `tokens=${r.outputTokens} tokens/sec=${fixed(r.outputTokensPerSecond, 2)} ok=${r.ok} err=${r.errors}`,
    '',
  ].join('\n');
}

function table(rows: string[][], alignLeft: ReadonlySet<number>): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  return rows.map((row) =>
    row
      .map((cell, i) => {
        if (i === row.length - 1) return cell;
        return alignLeft.has(i) ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0);
      })
      .join('  ')
      .trimEnd(),
  );
}

export function formatDetails(r: LoadgenReport, info: RunInfo): string {
  const lines: string[] = ['=== details ==='];
  const loop = info.rate === null ? 'closed loop' : `open loop, Poisson arrivals at ${info.rate} requests/s`;
  lines.push(`${info.url} | model ${info.model ?? '(not sent)'} | ${info.ranks} ranks, ${loop}`);
  lines.push(
    `requests ${r.requests}: ${r.ok} ok, ${r.errors} errors (${r.rejected} rejected with HTTP 429)` +
      (r.completed < r.requests ? `, ${r.requests - r.completed} lost with a failed rank` : ''),
  );
  lines.push(`${FORMULAS.wall}: ${(r.wallMs / 1000).toFixed(3)} s`);
  const p = r.promptTokens;
  const requested = `~${info.promptTokens} requested at ~4 chars/token`;
  lines.push(
    `prompt tokens (usage.prompt_tokens): ${p.n ? `mean=${fixed(p.mean, 1)} p50=${fixed(p.p50, 1)} (${requested})` : `not reported (${requested})`}` +
      ` | max_tokens ${info.maxTokens}`,
  );
  if (r.outputTokensFromChunks > 0) {
    lines.push(
      `note: ${r.outputTokensFromChunks} successful requests had no usage; their output tokens are counted as content chunks`,
    );
  }
  lines.push('');

  const row = (name: string, s: Summary, formula: string): string[] => [
    name,
    fixed(s.mean, 3),
    fixed(s.p50, 3),
    fixed(s.p90, 3),
    fixed(s.p95, 3),
    fixed(s.p99, 3),
    String(s.n),
    formula,
  ];
  lines.push(
    ...table(
      [
        ['latency (ms)', 'mean', 'p50', 'p90', 'p95', 'p99', 'n', 'formula'],
        row('TTFT', r.ttftMs, FORMULAS.ttft),
        row('E2E', r.e2eMs, FORMULAS.e2e),
        row('TPOT', r.tpotMs, FORMULAS.tpot),
        row('ITL', r.itlMs, FORMULAS.itl),
      ],
      new Set([0]),
    ),
  );
  lines.push(
    'percentiles: linear interpolation between closest ranks (numpy default); latency of successful requests only',
  );
  lines.push('');

  const throughput: string[][] = [
    ['throughput', '', ''],
    ['requests/s', fixed(r.requestsPerSecond, 3), FORMULAS.requestsPerSecond],
    ['output tokens/s', fixed(r.outputTokensPerSecond, 2), FORMULAS.tokensPerSecond],
  ];
  if (r.goodput) {
    const slo = [
      r.goodput.slo.ttftMs === null ? null : `TTFT <= ${r.goodput.slo.ttftMs} ms`,
      r.goodput.slo.tpotMs === null ? null : `TPOT <= ${r.goodput.slo.tpotMs} ms`,
    ].filter((x) => x !== null);
    throughput.push([
      'goodput (req/s)',
      fixed(r.goodput.perSecond, 3),
      `${r.goodput.requests} of ${r.completed} requests with ${slo.join(' and ')} / wall time`,
    ]);
  } else {
    throughput.push(['goodput (req/s)', 'n/a', 'give --slo-ttft and/or --slo-tpot']);
  }
  lines.push(...table(throughput, new Set([0])));

  if (r.errorsByCause.length) {
    lines.push('', 'errors');
    lines.push(
      ...table(
        r.errorsByCause.map((e) => [
          e.cause === 'HTTP 429' ? 'HTTP 429 (rejected, counted apart)' : e.cause,
          String(e.count),
          `e.g. ${e.example.slice(0, 160)}`,
        ]),
        new Set([0]),
      ),
    );
  }
  lines.push('');
  return lines.join('\n');
}

export function formatReport(r: LoadgenReport, info: RunInfo): string {
  return `${formatSeedBlock(r)}\n${formatDetails(r, info)}`;
}

/** The JSON report: the run, every figure with its formula, and each request with times relative to go. */
export function reportJson(
  r: LoadgenReport,
  info: RunInfo,
  records: readonly RequestRecord[],
): Record<string, unknown> {
  const rel = (t: number): number => Math.round((t - info.goMs) * 1000) / 1000;
  return {
    tool: 'llama-slots-server loadgen',
    run: { ...info, goTime: new Date(info.goMs).toISOString() },
    formulas: FORMULAS,
    report: r,
    requests: [...records]
      .sort((a, b) => a.id - b.id)
      .map((rec) => {
        const t = requestTimings(rec);
        return {
          id: rec.id,
          rank: rec.rank,
          ok: rec.ok,
          status: rec.status,
          errorKind: rec.errorKind,
          error: rec.error,
          promptTokens: rec.promptTokens,
          outputTokens: rec.outputTokens,
          outputTokensFrom: rec.outputTokensFrom,
          finishReason: rec.finishReason,
          sendMs: rel(rec.sendMs),
          endMs: rel(rec.endMs),
          chunkMs: rec.chunkMs.map(rel),
          ttftMs: t.ttftMs,
          e2eMs: t.e2eMs,
          tpotMs: t.tpotMs,
          serverTimings: rec.serverTimings ?? null,
        };
      }),
  };
}
