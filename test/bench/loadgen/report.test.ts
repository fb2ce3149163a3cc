import t from 'tap';
import {
  formatDetails,
  formatReport,
  formatSeedBlock,
  type RunInfo,
  reportJson,
} from '../../../src/bench/loadgen/report.ts';
import { computeReport, type LoadgenReport, type Summary } from '../../../src/bench/loadgen/stats.ts';
import type { RequestRecord } from '../../../src/bench/loadgen/types.ts';

const info: RunInfo = {
  url: 'http://127.0.0.1:8090',
  model: 'gemma',
  ranks: 2,
  requests: 10,
  rate: null,
  maxTokens: 64,
  promptTokens: 128,
  seed: 1,
  timeoutMs: 600_000,
  goMs: 1_000,
};
const empty: Summary = { n: 0, mean: null, p50: null, p90: null, p95: null, p99: null };

t.test("the seed's block, character for character", async (t) => {
  const seed = computeReport([], { goMs: 0, requests: 10, ranks: 2, slo: { ttftMs: null, tpotMs: null } });
  const r: LoadgenReport = {
    ...seed,
    ok: 10,
    errors: 0,
    outputTokens: 539,
    outputTokensPerSecond: 16.1234,
    e2eMs: { n: 10, mean: 3342.5531, p50: 3317.2, p90: 4000, p95: 4010.0259, p99: 4129.7431 },
  };
  t.equal(
    formatSeedBlock(r),
    '=== llama-server latency (ms) ===\nmean=3342.553 p50=3317.200 p95=4010.026 p99=4129.743\n\n=== throughput ===\ntokens=539 tokens/sec=16.12 ok=10 err=0\n',
  );
  t.equal(
    formatSeedBlock({ ...r, ok: 0, errors: 10, outputTokens: 0, outputTokensPerSecond: null, e2eMs: empty }),
    '=== llama-server latency (ms) ===\nmean=n/a p50=n/a p95=n/a p99=n/a\n\n=== throughput ===\ntokens=0 tokens/sec=n/a ok=0 err=10\n',
    'nothing succeeded: n/a, not a made-up zero',
  );
});

function rec(id: number, rank: number, over: Partial<RequestRecord>): RequestRecord {
  return {
    id,
    rank,
    sendMs: 1000,
    chunkMs: [1100, 1150],
    endMs: 1160,
    status: 200,
    ok: true,
    errorKind: null,
    error: null,
    promptTokens: 140,
    outputTokens: 2,
    outputTokensFrom: 'usage',
    finishReason: 'length',
    ...over,
  };
}

const records = [
  rec(0, 0, {}),
  rec(1, 1, {
    sendMs: 1010,
    chunkMs: [1200, 1210, 1220],
    endMs: 1225,
    outputTokens: 3,
    outputTokensFrom: 'chunks',
    promptTokens: null,
  }),
  rec(2, 0, {
    ok: false,
    status: 429,
    errorKind: 'http',
    error: 'HTTP 429: queue full',
    chunkMs: [],
    endMs: 1170,
    outputTokens: 0,
  }),
  rec(3, 1, {
    ok: false,
    status: null,
    errorKind: 'network',
    error: 'fetch failed: ECONNRESET',
    chunkMs: [],
    endMs: 1300,
    outputTokens: 0,
  }),
];

t.test('details: formulas beside the figures, 429 apart, notes', async (t) => {
  const r = computeReport(records, { goMs: 1000, requests: 4, ranks: 2, slo: { ttftMs: 150, tpotMs: null } });
  const text = formatDetails(r, { ...info, requests: 4, rate: 2 });
  t.match(
    text,
    /^=== details ===\nhttp:\/\/127\.0\.0\.1:8090 \| model gemma \| 2 ranks, open loop, Poisson arrivals at 2 requests\/s\n/,
  );
  t.match(text, 'requests 4: 2 ok, 2 errors (1 rejected with HTTP 429)');
  t.match(text, 'wall time = go signal -> end of the last response: 0.300 s');
  t.match(text, 'prompt tokens (usage.prompt_tokens): mean=140.0');
  t.match(text, 'note: 1 successful requests had no usage');
  t.match(text, /\nTTFT\s+145\.000\s+145\.000\s+.*\s2\s+TTFT = first content chunk - send\n/);
  t.match(text, /\nE2E\s+.*E2E = last chunk - send\n/);
  t.match(text, /\nTPOT\s+.*TPOT = \(E2E - TTFT\) \/ \(n - 1\), n = output tokens, requests with n > 1\n/);
  t.match(text, /\nITL\s+.*\s3\s+ITL = gaps between consecutive content chunks, pooled over requests\n/);
  t.match(text, 'percentiles: linear interpolation between closest ranks (numpy default)');
  t.match(text, /goodput \(req\/s\)\s+3\.333\s+1 of 4 requests with TTFT <= 150 ms \/ wall time/);
  t.match(text, /HTTP 429 \(rejected, counted apart\)\s+1\s+e\.g\. HTTP 429: queue full/);
  t.match(text, /network\s+1\s+e\.g\. fetch failed: ECONNRESET/);
  t.ok(formatReport(r, info).startsWith('=== llama-server latency (ms) ===\n'));
  t.match(
    formatDetails(computeReport([], { goMs: 0, requests: 1, ranks: 1, slo: { ttftMs: null, tpotMs: null } }), info),
    'goodput (req/s)  n/a  give --slo-ttft',
  );
});

t.test('JSON: figures, formulas, and every request relative to go', async (t) => {
  const r = computeReport(records, { goMs: 1000, requests: 4, ranks: 2, slo: { ttftMs: null, tpotMs: null } });
  const json = JSON.parse(JSON.stringify(reportJson(r, info, [...records].reverse()))) as {
    run: RunInfo & { goTime: string };
    formulas: Record<string, string>;
    report: LoadgenReport;
    requests: Array<Record<string, unknown>>;
  };
  t.equal(json.run.goTime, new Date(1000).toISOString());
  t.match(json.formulas.ttft, 'first content chunk - send');
  t.equal(json.report.ok, 2);
  t.same(
    json.requests.map((q) => q.id),
    [0, 1, 2, 3],
    'sorted by id',
  );
  t.match(json.requests[1], {
    rank: 1,
    sendMs: 10,
    chunkMs: [200, 210, 220],
    endMs: 225,
    ttftMs: 190,
    e2eMs: 215,
    tpotMs: 12.5,
    outputTokensFrom: 'chunks',
  });
  t.match(json.requests[3], { ok: false, status: null, errorKind: 'network', ttftMs: null });
});
