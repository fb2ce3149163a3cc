import { availableParallelism } from 'node:os';
import t from 'tap';
import {
  type CompareRun,
  compareTargets,
  firstTokenBreakdown,
  formatCompare,
  median,
  parseCompareArgs,
  workloadsOf,
} from '../../src/bench/compare.ts';
import type { LoadgenReport } from '../../src/bench/loadgen/stats.ts';

t.test('--spec: both servers draft, and this server also runs without drafts', async (t) => {
  const o = parseCompareArgs([
    '-m',
    'x.gguf',
    '--spec',
    ' -md d.gguf  --spec-type draft-simple --spec-synth-len 3',
    '--ours-args',
    '--spec-policy max',
    '--peer',
    'defaults',
  ]);
  t.same(o.spec, ['-md', 'd.gguf', '--spec-type', 'draft-simple', '--spec-synth-len', '3']);
  const list = compareTargets(o, '/bin/llama-server');
  t.same(
    list.map((x) => x.label),
    ['ours', 'ours, no drafts', 'llama-server'],
  );
  const [ours, plain, peer] = list.map((x) => x.describe);
  t.match(ours, /--spec-policy max -md d\.gguf --spec-type draft-simple --spec-synth-len 3$/);
  t.notMatch(plain, /-md/);
  t.match(plain, /--spec-policy max$/);
  t.match(peer, /-md d\.gguf --spec-type draft-simple --spec-synth-len 3$/);
  t.notMatch(peer, /--spec-policy/);
});

t.test("defaults: llama-server's -c and the issue's 8 slots, ranks from --parallel, both peer columns", async (t) => {
  t.same(parseCompareArgs(['-m', 'x.gguf']), {
    model: 'x.gguf',
    parallel: 8,
    ranks: [8],
    requestsPerRank: 3,
    maxTokens: 64,
    promptTokens: 128,
    systemTokens: 0,
    multiTurn: false,
    ctxSize: 8192,
    threads: availableParallelism(),
    rate: null,
    warm: false,
    workloads: ['ranks', 'returning'],
    repeat: 1,
    kvUnified: false,
    peer: 'both',
    spec: [],
    oursArgs: [],
    json: null,
  });
  t.match(parseCompareArgs(['-m', 'x', '--workloads', 'returning', '--repeat', '3']), {
    workloads: ['returning'],
    repeat: 3,
  });
  t.match(parseCompareArgs(['--model', 'x', '--parallel', '3']), { ranks: [3] });
  t.match(parseCompareArgs(['--model', 'x', '--ranks', '1,2,8,16', '--warm', '--peer', 'defaults']), {
    ranks: [1, 2, 8, 16],
    warm: true,
    peer: 'defaults',
  });
  t.match(parseCompareArgs(['--model', 'x', '--multi-turn', '--system-tokens', '1000', '--rate', '2.5'].slice(0, 5)), {
    multiTurn: true,
    systemTokens: 1000,
  });
  t.match(parseCompareArgs(['--model', 'x', '--rate', '2.5', '--json', 'o.json']), { rate: 2.5, json: 'o.json' });
});

t.test('bad flags name themselves', async (t) => {
  const bad: Array<[string[], RegExp]> = [
    [[], /--model is required/],
    [['-m', 'x', '-c', '32'], /-c must be at least 64, got 32/],
    [['-m', 'x', '--peer', 'nobody'], /--peer: must be defaults, matched or both, got 'nobody'/],
    [['-m', 'x', '--multi-turn', '--rate', '1'], /--multi-turn needs the closed loop/],
    [['-m', 'x', '--ranks', '2,0'], /--ranks/],
    [['-m', 'x', '--rate', '0'], /--rate must be greater than 0/],
    [['-m', 'x', '--parallel', 'two'], /--parallel must be an integer, got 'two'/],
    [['-m', 'x', '--slots', '2'], /unknown option '--slots'/],
    [['-m', 'x', '--workloads', 'ranks,nope'], /--workloads: 'nope' is not one of ranks, returning/],
  ];
  for (const [argv, message] of bad) t.throws(() => parseCompareArgs(argv), message, argv.join(' '));
});

t.test('the returning-clients workload: three phases on one server, earlier prompts again', async (t) => {
  const o = parseCompareArgs(['-m', 'x', '--parallel', '8']);
  t.same(workloadsOf(o), [
    { name: '8 ranks', steps: [{ label: 'cold', ranks: 8, requests: 24 }] },
    {
      name: 'returning',
      steps: [
        { label: '1 cold, 8 ranks', ranks: 8, requests: 24 },
        { label: '2 most seen, 16 ranks', ranks: 16, requests: 32 },
        { label: '3 all seen, 8 ranks', ranks: 8, requests: 24 },
      ],
    },
  ]);
  t.same(
    workloadsOf(parseCompareArgs(['-m', 'x', '--workloads', 'ranks', '--ranks', '2', '--warm'])).map((w) => w.steps),
    [
      [
        { label: 'cold', ranks: 2, requests: 6 },
        { label: 'warm', ranks: 2, requests: 6 },
      ],
    ],
  );
});

t.test(
  'medians over alternating runs, the ratio as the median of per-run ratios, and the first-token breakdown',
  async (t) => {
    t.equal(median([3, 1, 2]), 2);
    t.equal(median([4, 1, 2, 3]), 2.5);
    t.equal(median([]), null);
    const summary = (mean: number) => ({ mean, p50: mean, p95: mean, p99: mean }) as unknown as LoadgenReport['ttftMs'];
    const report = (tps: number, ttft: number) =>
      ({
        outputTokensPerSecond: tps,
        requestsPerSecond: 1,
        ttftMs: summary(ttft),
        e2eMs: summary(ttft * 10),
        itlMs: summary(50),
        tpotMs: summary(50),
        ok: 24,
        errors: 0,
      }) as unknown as LoadgenReport;
    const timed = (ttft: number, t: Record<string, number>) => ({ ok: true, ttftMs: ttft, serverTimings: t });
    const runs: CompareRun[] = [10, 12, 11].flatMap((ours, k) => [
      {
        target: 'ours',
        workload: 'returning',
        step: '3 all seen, 8 ranks',
        ranks: 8,
        repeat: k + 1,
        report: report(ours, 500),
        requests: [
          timed(500, {
            prompt_ms: 100,
            cache_n: 90,
            prompt_n: 10,
            queue_ms: 300,
            prepare_ms: 20,
            restored_n: 45,
            prefill_steps: 1,
            prefill_steps_ms: 80,
          }),
        ],
      },
      {
        target: 'llama-server',
        workload: 'returning',
        step: '3 all seen, 8 ranks',
        ranks: 8,
        repeat: k + 1,
        report: report(10, 1000),
        requests: [timed(1000, { prompt_ms: 400, cache_n: 50, prompt_n: 50 })],
      },
    ]);
    const text = formatCompare({
      options: { ...parseCompareArgs(['-m', 'm.gguf', '--repeat', '3']) },
      commands: { ours: 'a', 'llama-server': 'b' },
      runs,
    });
    t.match(text, /3 alternating runs: median \(min-max\)/);
    t.match(text, /### returning: 3 all seen, 8 ranks/);
    t.match(
      text,
      /\| output tokens\/s \| 11\.00 \(10\.00-12\.00\) \| 10\.00 \(10\.00-10\.00\) \| 1\.100 \(1\.000-1\.200\) \|/,
    );
    t.match(text, /\| TTFT less prompt_ms: waiting, admission, network \(ms\) \| 400\.0 \(400\.0-400\.0\) \| 600\.0 /);
    t.match(text, /\| of which restored from host RAM \(%\) \| 45\.0 \(45\.0-45\.0\) \| - \|/);
    t.same(firstTokenBreakdown([timed(20, { prompt_ms: 5 }), { ok: false, ttftMs: null, serverTimings: null }]), {
      ttftMs: 20,
      promptMs: 5,
      beforeMs: 15,
      cachedShare: null,
      queueMs: null,
      prepareMs: null,
      restoredShare: null,
      prefillSteps: null,
      prefillStepsMs: null,
    });
  },
);
