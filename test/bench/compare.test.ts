import { availableParallelism } from 'node:os';
import t from 'tap';
import { parseCompareArgs } from '../../src/bench/compare.ts';

t.test('defaults follow one another: ranks from --parallel, requests from --ranks', async (t) => {
  t.same(parseCompareArgs(['-m', 'x.gguf']), {
    model: 'x.gguf',
    parallel: 2,
    ranks: 2,
    requests: 8,
    maxTokens: 64,
    promptTokens: 128,
    ctxPerSlot: 1024,
    threads: availableParallelism(),
    rate: null,
    json: null,
  });
  t.match(parseCompareArgs(['--model', 'x', '--parallel', '3']), { ranks: 3, requests: 12 });
  t.match(parseCompareArgs(['--model', 'x', '--parallel', '3', '--ranks', '5']), { ranks: 5, requests: 20 });
  t.match(parseCompareArgs(['--model', 'x', '--requests', '7', '--rate', '2.5', '--json', 'o.json']), {
    requests: 7,
    rate: 2.5,
    json: 'o.json',
  });
});

t.test('bad flags name themselves', async (t) => {
  const bad: Array<[string[], RegExp]> = [
    [[], /--model is required/],
    [['-m', 'x', '--ctx-per-slot', '32'], /--ctx-per-slot must be at least 64, got 32/],
    [['-m', 'x', '--rate', '0'], /--rate must be greater than 0/],
    [['-m', 'x', '--parallel', 'two'], /--parallel must be an integer, got 'two'/],
    [['-m', 'x', '--slots', '2'], /unknown option '--slots'/],
  ];
  for (const [argv, message] of bad) t.throws(() => parseCompareArgs(argv), message, argv.join(' '));
});
