import t from 'tap';
import {
  assignLanes,
  cdfChart,
  escapeHtml,
  niceTicks,
  renderHtml,
  tokensOverTime,
} from '../../../src/bench/loadgen/html.ts';
import type { RunInfo } from '../../../src/bench/loadgen/report.ts';
import { computeReport } from '../../../src/bench/loadgen/stats.ts';
import type { RequestRecord } from '../../../src/bench/loadgen/types.ts';

const rec = (
  id: number,
  rank: number,
  send: number,
  chunks: number[],
  end: number,
  over: Partial<RequestRecord> = {},
): RequestRecord => ({
  id,
  rank,
  sendMs: send,
  chunkMs: chunks,
  endMs: end,
  status: 200,
  ok: true,
  errorKind: null,
  error: null,
  promptTokens: 10,
  outputTokens: chunks.length,
  outputTokensFrom: 'usage',
  finishReason: 'length',
  ...over,
});

t.test('axis ticks: round steps covering the range', async (t) => {
  t.same(niceTicks(1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  t.same(niceTicks(4130), [0, 1000, 2000, 3000, 4000, 5000]);
  t.same(niceTicks(0), [0, 1]);
  t.same(niceTicks(Number.NaN), [0, 1]);
});

t.test('lanes: overlapping requests of one rank stack, others reuse the first free lane', async (t) => {
  const lanes = assignLanes([
    rec(0, 0, 0, [], 100),
    rec(1, 0, 50, [], 120),
    rec(2, 0, 110, [], 200),
    rec(3, 0, 130, [], 140),
  ]);
  t.same(
    [...lanes.entries()].sort((a, b) => a[0] - b[0]),
    [
      [0, 0],
      [1, 1],
      [2, 0],
      [3, 1],
    ],
  );
});

t.test('tokens over time: each chunk carries its share of the usage tokens', async (t) => {
  // 4 tokens in 2 chunks at 10 ms and 1010 ms after go; wall 2 s -> 50 ms bins
  const { binMs, tokensPerSecond } = tokensOverTime(
    [rec(0, 0, 0, [10, 1010], 1020, { outputTokens: 4 }), rec(1, 0, 0, [5], 6, { ok: false })],
    0,
    2000,
  );
  t.equal(binMs, 50);
  t.equal(tokensPerSecond.length, 40);
  t.equal(tokensPerSecond[0], 2 * 20, '2 tokens in the first 50 ms bin = 40 tokens/s; failed requests left out');
  t.equal(tokensPerSecond[20], 40);
  t.equal(tokensPerSecond.reduce((a, b) => a + b) / 20, 4, 'the bins sum back to the tokens');
});

t.test('the page: self-contained, escaped, one row per rank, TTFT shaded', async (t) => {
  const records = [
    rec(0, 0, 1000, [1100, 1150], 1160),
    rec(1, 1, 1000, [1050, 1100, 1150], 1160),
    rec(2, 0, 1160, [], 1170, { ok: false, status: 500, errorKind: 'http', error: 'HTTP 500: <oops> & "bad"' }),
  ];
  const info: RunInfo = {
    url: 'http://127.0.0.1:8090',
    model: '<model>',
    ranks: 2,
    requests: 3,
    rate: null,
    maxTokens: 8,
    promptTokens: 8,
    seed: 1,
    timeoutMs: 1000,
    goMs: 1000,
  };
  const html = renderHtml(
    computeReport(records, { goMs: 1000, requests: 3, ranks: 2, slo: { ttftMs: null, tpotMs: null } }),
    info,
    records,
  );
  t.match(html, /^<!doctype html>\n<html lang="en">/);
  t.notMatch(html, /<script|<link|<img|<iframe|src=|url\(|@import/i);
  t.notMatch(html, /<oops>|<model>/, 'text is escaped');
  t.match(html, '&lt;oops&gt; &amp; &quot;bad&quot;');
  t.equal((html.match(/<svg /g) ?? []).length, 5);
  t.equal((html.match(/class="req"/g) ?? []).length, 2);
  t.equal((html.match(/class="req-err"/g) ?? []).length, 1);
  t.equal((html.match(/class="ttft"/g) ?? []).length, 2, 'a TTFT part for each request with a first chunk');
  t.match(html, />rank 0<\/text>.*>rank 1<\/text>/s);
  t.equal(cdfChart([], 'x'), '<p class="empty">no data</p>');
  t.equal(escapeHtml(`<a href='x'>`), '&lt;a href=&#39;x&#39;&gt;');
});
