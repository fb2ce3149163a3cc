// The live view's aggregator against a fake clock: per-second buckets, rates, percentiles over a window.
import t from 'tap';
import { LiveStats } from '../../src/metrics/live-stats.ts';
import { type ResponseRecord, ServerMetrics } from '../../src/metrics/server-metrics.ts';
import type { StepStats } from '../../src/scheduler/types.ts';

/** A clock that moves only when told to; starts at an exact second. */
function fakeClock(startMs = 1_700_000_000_000) {
  let ms = startMs;
  return {
    now: () => ms,
    advance(by: number) {
      ms += by;
    },
  };
}

function step(generatedTokens: number, promptTokens = 0): StepStats {
  return {
    durationMs: 5,
    decodeMs: 4,
    batchTokens: generatedTokens + promptTokens,
    promptTokens,
    generatedTokens,
    busySlots: 1,
  };
}

function response(over: Partial<ResponseRecord> = {}): ResponseRecord {
  return { finishReason: 'stop', promptTokens: 10, cachedTokens: 0, completionTokens: 5, e2eSeconds: 1, ...over };
}

t.test('per-second series of completed seconds, oldest first, zeros where nothing happened', async (t) => {
  const clock = fakeClock();
  const live = new LiveStats({ now: clock.now, historySeconds: 5 });
  const t0 = clock.now() / 1000;
  live.onStep(step(3, 7));
  live.onStep(step(2));
  clock.advance(1000);
  live.responded(response());
  live.rejected('queue_full');
  clock.advance(2000);
  live.onStep(step(4));
  live.responded(response({ finishReason: 'cancelled' }));
  clock.advance(500);
  // now = t0 + 3.5 s: completed seconds t0-2 .. t0+2; t0+3 is still filling and not shown.
  const s = live.snapshot().series;
  t.equal(s.start, t0 - 2);
  t.same(s.generatedTokens, [0, 0, 5, 0, 0]);
  t.same(s.promptTokens, [0, 0, 7, 0, 0]);
  t.same(s.requests, [0, 0, 0, 1, 0]);
  t.same(s.rejected, [0, 0, 0, 1, 0]);
  t.same(s.cancelled, [0, 0, 0, 0, 0]);
  clock.advance(500);
  const later = live.snapshot().series;
  t.same(later.generatedTokens, [0, 5, 0, 0, 4], 'a second later the window has moved by one');
  t.same(later.cancelled, [0, 0, 0, 0, 1]);
});

t.test('old buckets are reused without leaking their counts into new seconds', async (t) => {
  const clock = fakeClock();
  const live = new LiveStats({ now: clock.now, historySeconds: 3 });
  live.onStep(step(100));
  clock.advance(3000); // the same ring position as the first second
  live.onStep(step(1));
  clock.advance(1000);
  t.same(live.snapshot().series.generatedTokens, [0, 0, 1]);
  clock.advance(60_000);
  t.same(live.snapshot().series.generatedTokens, [0, 0, 0], 'a quiet minute later nothing is left');
  t.equal(live.snapshot().totals.generatedTokens, 101, 'totals keep everything');
});

t.test('"now" rates average the last rateSeconds completed seconds, or fewer on a young server', async (t) => {
  const clock = fakeClock();
  const live = new LiveStats({ now: clock.now, rateSeconds: 4 });
  live.onStep(step(10));
  clock.advance(1000);
  // One completed second: its count, not a quarter of it.
  t.equal(live.snapshot().now.generatedTokensPerSecond, 10);
  for (let i = 0; i < 6; i++) {
    live.onStep(step(20, 40));
    live.responded(response());
    clock.advance(1000);
  }
  const now = live.snapshot().now;
  t.equal(now.generatedTokensPerSecond, 20);
  t.equal(now.promptTokensPerSecond, 40);
  t.equal(now.requestsPerSecond, 1);
  clock.advance(2000);
  t.equal(live.snapshot().now.generatedTokensPerSecond, 10, 'two idle seconds halve a 4-second average');
});

t.test('percentiles of the samples inside the latency window, in milliseconds', async (t) => {
  const clock = fakeClock();
  const live = new LiveStats({ now: clock.now, latencySeconds: 10 });
  for (let i = 1; i <= 5; i++) live.responded(response({ ttftSeconds: 1, e2eSeconds: 10, queueSeconds: 0 }));
  clock.advance(11_000);
  // Only these are inside the window now.
  for (let i = 1; i <= 101; i++) {
    live.responded(response({ ttftSeconds: i / 1000, e2eSeconds: i / 100, queueSeconds: i / 1000 }));
    live.interTokenGap(i / 1000);
  }
  const { ttft, e2e, itl, queue } = live.snapshot().latency;
  t.same(ttft, { count: 101, p50: 51, p90: 91, p99: 100 });
  t.same(e2e, { count: 101, p50: 510, p90: 910, p99: 1000 });
  t.same(itl, { count: 101, p50: 51, p90: 91, p99: 100 });
  t.same(queue, { count: 101, p50: 51, p90: 91, p99: 100 });
  clock.advance(10_001);
  t.same(live.snapshot().latency.ttft, { count: 0, p50: null, p90: null, p99: null }, 'all aged out');
});

t.test('at most maxSamples per kind: the newest replace the oldest', async (t) => {
  const clock = fakeClock();
  const live = new LiveStats({ now: clock.now, maxSamples: 4 });
  for (const ms of [1000, 1000, 1000, 1000, 1, 2, 3]) live.interTokenGap(ms / 1000);
  const itl = live.snapshot().latency.itl;
  t.equal(itl.count, 4);
  t.equal(itl.p50, 2.5, 'three new samples and one old one: [1, 2, 3, 1000]');
});

t.test('totals: requests by finish reason, refusals by cause', async (t) => {
  const live = new LiveStats({ now: fakeClock().now });
  live.responded(response({ cachedTokens: 3 }));
  live.responded(response({ finishReason: 'length', cachedTokens: 4 }));
  live.responded(response({ finishReason: 'cancelled' }));
  live.responded(response({ finishReason: 'cancelled' }));
  live.rejected('queue_full');
  live.rejected('queue_full');
  live.rejected('auth');
  const totals = live.snapshot().totals;
  t.equal(totals.requests, 4);
  t.equal(totals.promptTokensCached, 7);
  t.same(totals.finish, { stop: 1, length: 1, cancelled: 2 });
  t.same(totals.rejected, { queue_full: 2, auth: 1 });
});

t.test('bad options are refused with their name', async (t) => {
  t.throws(() => new LiveStats({ historySeconds: 0 }), /historySeconds/);
  t.throws(() => new LiveStats({ maxSamples: 1.5 }), /maxSamples/);
});

t.test('ServerMetrics hands every event to its listener', async (t) => {
  const clock = fakeClock();
  const live = new LiveStats({ now: clock.now });
  const metrics = new ServerMetrics(
    { busySlots: () => 0, queueLength: () => 0, kvCellsUsed: () => 0, kvCellsRunning: () => 0, kvCellsTotal: () => 1 },
    { processMetrics: false, listener: live },
  );
  metrics.onStep(step(6, 4));
  metrics.responded(response({ ttftSeconds: 0.2 }));
  metrics.interTokenGap(0.05);
  metrics.rejected('queue_full');
  clock.advance(1000);
  const s = live.snapshot();
  t.equal(s.series.generatedTokens.at(-1), 6);
  t.equal(s.series.promptTokens.at(-1), 4);
  t.equal(s.totals.requests, 1);
  t.equal(s.latency.ttft.p50, 200);
  t.equal(s.latency.itl.p50, 50);
  t.same(s.totals.rejected, { queue_full: 1 });
  const text = (await metrics.exposition()).body;
  t.match(text, /llama_slots_rejections_total\{cause="queue_full"\} 1/, 'and still counts them itself');
});
