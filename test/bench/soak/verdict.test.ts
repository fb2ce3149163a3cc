// The soak's verdict: RSS growth from medians of a window after the warm-up to the last window, leaked slots,
// server errors, shape errors and /health failures each fail it, with a reason naming the figure.
import t from 'tap';
import { formatVerdict, median, type Sample, soakVerdict, type VerdictInput } from '../../../src/bench/soak/verdict.ts';
import { newCounts } from '../../../src/bench/soak/workload.ts';

const MIB = 1024 * 1024;

/** One sample every 5 s for `seconds`, RSS and the prompt cache in MiB from `rssAt(t)` and `cacheAt(t)`. */
function samples(seconds: number, rssAt: (t: number) => number, cacheAt: (t: number) => number = () => 0): Sample[] {
  const out: Sample[] = [];
  for (let s = 0; s <= seconds; s += 5)
    out.push({
      t: s,
      rssBytes: rssAt(s) * MIB,
      promptCacheBytes: cacheAt(s) * MIB,
      heapUsedBytes: 0,
      lagP99Ms: s === 10 ? 500 : 20,
      lagMaxMs: 40,
      handles: 12,
      busySlots: 0,
      queued: 0,
      healthMs: 3,
    });
  return out;
}

function input(extra: Partial<VerdictInput> = {}): VerdictInput {
  return {
    samples: samples(600, () => 100),
    durationSeconds: 600,
    warmupSeconds: 60,
    counts: newCounts(),
    leakedSlots: 0,
    leftQueued: 0,
    maxRssGrowthPercent: 5,
    ...extra,
  };
}

t.test('median', async (t) => {
  t.equal(median([]), 0);
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
});

t.test('flat RSS and a clean run pass; the warm-up is not judged', async (t) => {
  // Growth during the warm-up (0-60 s) and a lag spike inside it are not the server's steady state.
  const v = soakVerdict(input({ samples: samples(600, (s) => (s < 60 ? 50 + s : 110)) }));
  t.equal(v.pass, true, v.reasons.join('; '));
  t.equal(v.rssStartMiB, 50, 'the first sample');
  t.equal(v.rssWarmMiB, 110);
  t.equal(v.rssEndMiB, 110);
  t.equal(v.rssGrowthPercent, 0);
  t.equal(v.windowSeconds, 60);
  t.equal(v.lagP99MaxMs, 20, 'the spike at 10 s is in the warm-up');
  t.match(
    formatVerdict(v, newCounts(), 600),
    /RSS: 50\.0 MiB at the start, 110\.0 MiB after warm-up .*\nverdict: PASS/s,
  );
});

t.test('RSS growth past the limit fails, measured on medians (one spike does not decide it)', async (t) => {
  const growing = soakVerdict(input({ samples: samples(600, (s) => 100 + s / 50) }));
  t.equal(growing.pass, false);
  // Medians: 100 + 90/50 after the warm-up window (60-120 s), 100 + 570/50 over the last (540-600 s).
  t.ok(Math.abs(growing.rssGrowthPercent - ((111.4 - 101.8) / 101.8) * 100) < 0.01, `${growing.rssGrowthPercent}`);
  t.match(growing.reasons, [/RSS less the prompt cache and checkpoints grew 9\.4% after the warm-up \(limit 5%\)/]);
  const spike = soakVerdict(input({ samples: samples(600, (s) => (s === 580 ? 400 : 100)) }));
  t.equal(spike.pass, true, 'one large sample in the last window');
  t.equal(spike.rssMaxMiB, 400, 'but it is the maximum');
});

t.test(
  'the slots filling their checkpoints (bounded by --ctx-checkpoints) are reported, not judged as growth',
  async (t) => {
    // RSS grows by what the checkpoints hold: 0 -> 30 MiB in a step at 300 s; nothing else grows.
    const stepped = samples(600, (s) => (s < 300 ? 100 : 130));
    for (const x of stepped) x.checkpointBytes = (x.t < 300 ? 0 : 30) * MIB;
    const v = soakVerdict(input({ samples: stepped }));
    t.equal(v.pass, true, v.reasons.join('; '));
    t.equal(v.rssGrowthPercent, 0);
    t.equal(v.checkpointsEndMiB, 30);
    t.match(
      formatVerdict(v, newCounts(), 600),
      /checkpoints \(--ctx-checkpoints\): 0\.0 -> 30\.0 MiB; RSS less both: \+0\.00%/,
    );
    for (const x of stepped) delete x.checkpointBytes;
    t.equal(soakVerdict(input({ samples: stepped })).pass, false, 'the same step without its checkpoints fails');
  },
);

t.test('the prompt cache filling (bounded by --cache-ram) is reported, not judged as growth', async (t) => {
  // RSS grows by exactly what the cache holds: 0 -> 57 MiB over the run.
  const v = soakVerdict(
    input({
      samples: samples(
        600,
        (s) => 100 + s / 10,
        (s) => s / 10,
      ),
    }),
  );
  t.equal(v.pass, true, v.reasons.join('; '));
  t.equal(v.rssGrowthPercent, 0);
  t.ok(v.rssRawGrowthPercent > 40, `raw growth ${v.rssRawGrowthPercent}`);
  t.equal(v.promptCacheEndMiB, 57);
  t.match(
    formatVerdict(v, newCounts(), 600),
    /prompt cache \(--cache-ram\): 9\.0 MiB after warm-up -> 57\.0 MiB; checkpoints \(--ctx-checkpoints\): 0\.0 -> 0\.0 MiB; RSS less both: \+0\.00%/,
  );
  // Growth beside the cache still counts.
  const leak = soakVerdict(
    input({
      samples: samples(
        600,
        (s) => 100 + s / 5,
        (s) => s / 10,
      ),
    }),
  );
  t.equal(leak.pass, false);
});

t.test('leaks, errors and failed health checks each fail it, with their count', async (t) => {
  const counts = { ...newCounts(), serverErrors: 2, shapeErrors: 1, clientTimeouts: 4 };
  const bad = samples(600, () => 100).map((s, i) => (i === 3 ? { ...s, healthMs: null } : s));
  const v = soakVerdict(input({ counts, leakedSlots: 1, leftQueued: 3, samples: bad }));
  t.equal(v.pass, false);
  t.same(v.reasons, [
    '1 slots still busy after the load',
    '3 requests still queued after the load',
    '2 server errors (5xx or server_error events)',
    "1 errors not in OpenAI's shape",
    "4 requests unanswered within the client's 300 s",
    '/health failed 1 times',
  ]);
  t.match(formatVerdict(v, counts, 600), /after the load: 1 slots busy, 3 queued; 5xx\/server errors: 2/);
  const short = soakVerdict(input({ samples: samples(600, () => 100).slice(0, 5) }));
  t.match(short.reasons, [/too few samples after the warm-up/]);
});
