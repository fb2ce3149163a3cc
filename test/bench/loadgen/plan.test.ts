import t from 'tap';
import {
  CHARS_PER_TOKEN,
  mulberry32,
  planRanks,
  poissonArrivals,
  promptText,
  splitRequests,
} from '../../../src/bench/loadgen/plan.ts';

t.test('requests split as evenly as possible, interleaved', async (t) => {
  t.same(splitRequests(10, 2), [
    [0, 2, 4, 6, 8],
    [1, 3, 5, 7, 9],
  ]);
  t.same(splitRequests(7, 3), [
    [0, 3, 6],
    [1, 4],
    [2, 5],
  ]);
  const counts = splitRequests(101, 8).map((ids) => ids.length);
  t.equal(Math.max(...counts) - Math.min(...counts), 1);
  t.equal(
    counts.reduce((a, b) => a + b),
    101,
  );
});

t.test('prompts: deterministic per seed and request, about 4 characters per token', async (t) => {
  const a = promptText(1, 0, 128);
  t.equal(promptText(1, 0, 128), a, 'same seed and id, same text');
  t.not(promptText(1, 1, 128), a, 'each request its own text');
  t.not(promptText(2, 0, 128), a, 'another seed, another text');
  t.ok(a.length >= 128 * CHARS_PER_TOKEN && a.length < 128 * CHARS_PER_TOKEN + 20, `${a.length} characters`);
  t.match(a, /^[A-Z][a-z]+( [a-z]+\.?| [A-Z][a-z]+)+\.?$/, 'English-like words and sentences');
  t.ok(promptText(1, 0, 1).length >= CHARS_PER_TOKEN);
});

t.test('Poisson arrivals: increasing, exponential gaps with mean 1/rate', async (t) => {
  const arrivals = poissonArrivals(4000, 20, mulberry32(7));
  t.ok(arrivals.every((x, k) => k === 0 || x > (arrivals[k - 1] ?? 0)));
  const gaps = arrivals.map((x, k) => x - (k ? (arrivals[k - 1] ?? 0) : 0));
  const mean = gaps.reduce((a, b) => a + b) / gaps.length;
  t.ok(Math.abs(mean - 50) < 3, `mean gap ${mean.toFixed(2)} ms ~ 50`);
  const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / gaps.length);
  t.ok(Math.abs(sd / mean - 1) < 0.1, 'exponential: standard deviation ~ mean');
});

t.test('rank plans: closed loop has no arrival times, open loop gives each rank its share of the rate', async (t) => {
  const closed = planRanks({ requests: 5, ranks: 2, rate: null, seed: 1 });
  t.same(closed, [
    {
      rank: 0,
      requests: [
        { id: 0, atMs: null },
        { id: 2, atMs: null },
        { id: 4, atMs: null },
      ],
    },
    {
      rank: 1,
      requests: [
        { id: 1, atMs: null },
        { id: 3, atMs: null },
      ],
    },
  ]);
  const open = planRanks({ requests: 2000, ranks: 4, rate: 100, seed: 1 });
  t.same(planRanks({ requests: 2000, ranks: 4, rate: 100, seed: 1 }), open, 'deterministic');
  for (const plan of open) {
    const last = plan.requests.at(-1)?.atMs ?? 0;
    const rate = (plan.requests.length / last) * 1000;
    t.ok(Math.abs(rate - 25) < 2.5, `rank ${plan.rank}: ${rate.toFixed(1)} requests/s ~ 100 / 4`);
  }
  t.not(open[0]?.requests[0]?.atMs, open[1]?.requests[0]?.atMs, 'ranks draw independent arrivals');
});
