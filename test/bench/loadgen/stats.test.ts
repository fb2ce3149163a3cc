import t from 'tap';
import {
  computeReport,
  errorCause,
  mean,
  meetsSlo,
  percentile,
  requestTimings,
  summarize,
} from '../../../src/bench/loadgen/stats.ts';
import type { RequestRecord } from '../../../src/bench/loadgen/types.ts';

/** A successful request: sent at `send`, content chunks at `chunks`, ended at `end` (ms). */
function okRecord(
  id: number,
  send: number,
  chunks: number[],
  end: number,
  extra: Partial<RequestRecord> = {},
): RequestRecord {
  return {
    id,
    rank: 0,
    sendMs: send,
    chunkMs: chunks,
    endMs: end,
    status: 200,
    ok: true,
    errorKind: null,
    error: null,
    promptTokens: 20,
    outputTokens: chunks.length,
    outputTokensFrom: 'usage',
    finishReason: 'length',
    ...extra,
  };
}

function failed(
  id: number,
  kind: RequestRecord['errorKind'],
  status: number | null,
  end: number,
  error = 'boom',
): RequestRecord {
  return {
    ...okRecord(id, 0, [], end),
    ok: false,
    errorKind: kind,
    status,
    error,
    promptTokens: null,
    outputTokens: 0,
  };
}

t.test('percentile: linear interpolation between closest ranks, as numpy.percentile', async (t) => {
  // numpy.percentile([15, 20, 35, 40, 50], [0, 25, 50, 90, 95, 99, 100]) = [15, 20, 35, 46, 48, 49.6, 50]
  const xs = [15, 20, 35, 40, 50];
  const expected: Array<[number, number]> = [
    [0, 15],
    [25, 20],
    [50, 35],
    [90, 46],
    [95, 48],
    [99, 49.6],
    [100, 50],
  ];
  for (const [p, want] of expected) t.ok(Math.abs((percentile(xs, p) ?? NaN) - want) < 1e-9, `p${p} = ${want}`);
  // numpy.percentile([1, 2, 3, 4], 90) = 3.7; median of an even count is the midpoint
  t.ok(Math.abs((percentile([1, 2, 3, 4], 90) ?? NaN) - 3.7) < 1e-9);
  t.equal(percentile([1, 2, 3, 4], 50), 2.5);
  t.equal(percentile([7], 99), 7);
  t.equal(percentile([], 50), null);
});

t.test('mean and summarize', async (t) => {
  t.equal(mean([]), null);
  t.equal(mean([1, 2, 3, 6]), 3);
  const s = summarize([50, 15, 40, 20, 35]); // unsorted input
  t.same(s, { n: 5, mean: 32, p50: 35, p90: 46, p95: 48, p99: s.p99 });
  t.ok(Math.abs((s.p99 ?? 0) - 49.6) < 1e-9);
  t.same(summarize([]), { n: 0, mean: null, p50: null, p90: null, p95: null, p99: null });
});

t.test('per-request timings: TTFT, E2E, TPOT, ITL', async (t) => {
  const r = okRecord(0, 1000, [1100, 1120, 1140, 1160], 1165);
  const x = requestTimings(r);
  t.equal(x.ttftMs, 100, 'TTFT = first content chunk - send');
  t.equal(x.e2eMs, 165, 'E2E = last chunk - send');
  t.ok(Math.abs((x.tpotMs ?? 0) - 65 / 3) < 1e-9, 'TPOT = (E2E - TTFT) / (n - 1)');
  t.same(x.itlMs, [20, 20, 20], 'ITL = gaps between consecutive chunks');

  // usage says 7 tokens in 4 chunks: TPOT divides by tokens, ITL stays per chunk
  t.ok(Math.abs((requestTimings({ ...r, outputTokens: 7 }).tpotMs ?? 0) - 65 / 6) < 1e-9);
  t.equal(requestTimings({ ...r, outputTokens: 1, chunkMs: [1100] }).tpotMs, null, 'no TPOT for one token');
  t.same(requestTimings({ ...r, outputTokens: 0, chunkMs: [] }), { ttftMs: null, e2eMs: 165, tpotMs: null, itlMs: [] });
});

t.test('error causes: 429 apart, other statuses, network, timeout, in-stream', async (t) => {
  t.equal(errorCause(okRecord(0, 0, [1], 2)), null);
  t.equal(errorCause(failed(0, 'http', 429, 1)), 'HTTP 429');
  t.equal(errorCause(failed(0, 'http', 503, 1)), 'HTTP 503');
  t.equal(errorCause(failed(0, 'network', null, 1)), 'network');
  t.equal(errorCause(failed(0, 'timeout', null, 1)), 'timeout');
  t.equal(errorCause(failed(0, 'stream', 200, 1)), 'in-stream');
});

t.test('report: counts, wall time from go, rates, goodput', async (t) => {
  const go = 10_000;
  const records = [
    // TTFT 100, E2E 400, 4 tokens -> TPOT 100
    okRecord(0, go, [go + 100, go + 200, go + 300, go + 400], go + 400),
    // TTFT 50, E2E 250, 5 tokens -> TPOT 50
    okRecord(1, go + 500, [go + 550, go + 600, go + 650, go + 700, go + 750], go + 750),
    // TTFT 30, one token: no TPOT, counts as meeting any TPOT SLO
    okRecord(2, go + 800, [go + 830], go + 840, { outputTokensFrom: 'chunks', promptTokens: null }),
    failed(3, 'http', 429, go + 900, 'HTTP 429: queue full'),
    failed(4, 'http', 429, go + 950),
    failed(5, 'http', 500, go + 960),
    failed(6, 'network', null, go + 970, 'fetch failed: ECONNRESET'),
    failed(7, 'stream', 200, go + 2000, 'decode failed'), // the last response ends the wall time
  ];
  const r = computeReport(records, { goMs: go, requests: 9, ranks: 2, slo: { ttftMs: 60, tpotMs: 60 } });
  t.equal(r.completed, 8);
  t.equal(r.ok, 3);
  t.equal(r.errors, 5, 'every failed request, 429s included');
  t.equal(r.rejected, 2, '429s counted apart');
  t.same(
    r.errorsByCause.map((e) => [e.cause, e.count]),
    [
      ['HTTP 429', 2],
      ['HTTP 500', 1],
      ['in-stream', 1],
      ['network', 1],
    ],
  );
  t.equal(r.errorsByCause[0]?.example, 'HTTP 429: queue full');
  t.equal(r.wallMs, 2000, 'go signal -> end of the last response');
  t.same([r.ttftMs.n, r.ttftMs.mean], [3, 60]);
  t.same([r.e2eMs.n, r.e2eMs.mean, r.e2eMs.p50], [3, (400 + 250 + 40) / 3, 250]);
  t.same([r.tpotMs.n, r.tpotMs.mean], [2, 75]);
  t.equal(r.itlMs.n, 3 + 4, 'ITL pooled over requests');
  t.equal(r.itlMs.mean, 500 / 7);
  t.same([r.promptTokens.n, r.promptTokens.mean], [2, 20]);
  t.equal(r.outputTokens, 4 + 5 + 1);
  t.equal(r.outputTokensFromChunks, 1);
  t.equal(r.requestsPerSecond, 3 / 2);
  t.equal(r.outputTokensPerSecond, 10 / 2);
  t.same(r.goodput, { slo: { ttftMs: 60, tpotMs: 60 }, requests: 2, perSecond: 1 }, 'requests 1 and 2 meet both SLOs');

  const noSlo = computeReport(records, { goMs: go, requests: 9, ranks: 2, slo: { ttftMs: null, tpotMs: null } });
  t.equal(noSlo.goodput, null);
  const ttftOnly = computeReport(records, { goMs: go, requests: 9, ranks: 2, slo: { ttftMs: 100, tpotMs: null } });
  t.equal(ttftOnly.goodput?.requests, 3);
});

t.test('meetsSlo: a missing TTFT fails a TTFT SLO', async (t) => {
  t.notOk(meetsSlo({ ttftMs: null, e2eMs: 5, tpotMs: null, itlMs: [] }, { ttftMs: 100, tpotMs: null }));
  t.ok(meetsSlo({ ttftMs: null, e2eMs: 5, tpotMs: null, itlMs: [] }, { ttftMs: null, tpotMs: 10 }));
});

t.test('report of nothing: no division by zero', async (t) => {
  const r = computeReport([], { goMs: 5, requests: 2, ranks: 1, slo: { ttftMs: 1, tpotMs: null } });
  t.equal(r.wallMs, 0);
  t.equal(r.requestsPerSecond, null);
  t.equal(r.outputTokensPerSecond, null);
  t.equal(r.e2eMs.mean, null);
  t.same(r.goodput, { slo: { ttftMs: 1, tpotMs: null }, requests: 0, perSecond: null });
});
