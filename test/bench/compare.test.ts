import { availableParallelism } from 'node:os';
import t from 'tap';
import { parseCompareArgs } from '../../src/bench/compare.ts';

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
    peer: 'both',
    json: null,
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
  ];
  for (const [argv, message] of bad) t.throws(() => parseCompareArgs(argv), message, argv.join(' '));
});
